package encap

// Error is why Encap or Decap refused a frame. The values are small
// comparable constants: count drops with an array indexed by Error (size
// NumErrors), get one back with err.(Error) or test one with errors.Is.
type Error uint8

// Reasons a frame is refused.
const (
	ErrBounds        Error = iota + 1 // off/n outside buf
	ErrTruncated                      // a header or the inner packet is cut short
	ErrNotOverlay                     // not IPv4/UDP to port 6635 or 4789 (not ours to decapsulate)
	ErrOuterIPv4                      // outer IPv4 header malformed (version, IHL, total length)
	ErrOuterChecksum                  // outer IPv4 header checksum wrong
	ErrOuterFragment                  // outer packet is a fragment (MF set or offset non-zero)
	ErrUDPLength                      // UDP length below 8 or beyond the IP payload
	ErrUDPChecksum                    // non-zero UDP checksum does not verify
	ErrBadMPLS                        // label stack is not one entry with S=1, or a reserved label (0-15)
	ErrBadVXLAN                       // VXLAN I flag not set
	ErrInnerNotIPv4                   // MPLSoUDP: inner packet (or frame, on Encap) is not IPv4
	ErrBadKind                        // unknown Kind
	ErrBadLabel                       // Encap: label or VNI out of range (reserved MPLS label, VNI >= 2^24)
	ErrHeadroom                       // Encap: fewer than Overhead(kind) bytes before off
	ErrTooBig                         // Encap: outer IPv4 packet would exceed 65535 bytes
	numErrors
)

// NumErrors is one more than the largest Error, the size of a counter array.
const NumErrors = int(numErrors)

var errText = [numErrors]string{
	ErrBounds:        "frame bounds outside buffer",
	ErrTruncated:     "truncated",
	ErrNotOverlay:    "not overlay traffic",
	ErrOuterIPv4:     "bad outer ipv4 header",
	ErrOuterChecksum: "bad outer ipv4 checksum",
	ErrOuterFragment: "outer ipv4 fragment",
	ErrUDPLength:     "bad udp length",
	ErrUDPChecksum:   "bad udp checksum",
	ErrBadMPLS:       "bad mpls label stack",
	ErrBadVXLAN:      "bad vxlan header",
	ErrInnerNotIPv4:  "inner packet not ipv4",
	ErrBadKind:       "unknown encapsulation",
	ErrBadLabel:      "label or vni out of range",
	ErrHeadroom:      "not enough headroom",
	ErrTooBig:        "encapsulated packet too big",
}

func (e Error) Error() string {
	if e == 0 || e >= numErrors {
		return "encap: unknown error"
	}
	return "encap: " + errText[e]
}
