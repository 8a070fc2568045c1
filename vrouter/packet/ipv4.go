package packet

import "encoding/binary"

// IPv4Error says why an IPv4 header was refused.
type IPv4Error uint8

// Reasons an IPv4 header is refused by ParseIPv4.
const (
	IPv4OK        IPv4Error = iota
	IPv4Truncated           // shorter than 20 bytes or than its IHL says
	IPv4Version             // version is not 4
	IPv4BadIHL              // IHL below 5
	IPv4BadLength           // total length below IHL*4 or beyond the frame
	IPv4Checksum            // header checksum does not verify
)

// IPv4 is a validated view of an IPv4 header inside a frame.
// Offsets are relative to the start of the IP header.
type IPv4 struct {
	HeaderLen int
	TotalLen  int
	Proto     uint8
	TTL       uint8
	Src, Dst  [4]byte
}

// ParseIPv4 validates the IPv4 header at the start of b (an Ethernet payload)
// and fills h. b may be longer than the packet (Ethernet padding).
func ParseIPv4(b []byte, h *IPv4) IPv4Error {
	if len(b) < IPv4Min {
		return IPv4Truncated
	}
	if b[0]>>4 != 4 {
		return IPv4Version
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < IPv4Min {
		return IPv4BadIHL
	}
	if len(b) < ihl {
		return IPv4Truncated
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total < ihl || total > len(b) {
		return IPv4BadLength
	}
	if fold(sum(b[:ihl], 0)) != 0xffff {
		return IPv4Checksum
	}
	h.HeaderLen, h.TotalLen = ihl, total
	h.Proto, h.TTL = b[9], b[8]
	copy(h.Src[:], b[12:16])
	copy(h.Dst[:], b[16:20])
	return IPv4OK
}

// DecTTL decrements the TTL of the IPv4 header at the start of b and updates
// its checksum incrementally (RFC 1624). The caller has checked TTL > 1.
func DecTTL(b []byte) {
	old := binary.BigEndian.Uint16(b[8:10])
	b[8]--
	hc := binary.BigEndian.Uint16(b[10:12])
	binary.BigEndian.PutUint16(b[10:12], UpdateChecksum16(hc, old, binary.BigEndian.Uint16(b[8:10])))
}

// SetIPv4Checksum computes and stores the header checksum of the IPv4 header at b.
func SetIPv4Checksum(b []byte, ihl int) {
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:12], Checksum(b[:ihl]))
}

// IsUnicast reports whether a is usable as a unicast destination
// (not 0.0.0.0/8, multicast, limited broadcast or class E).
func IsUnicast(a [4]byte) bool {
	return a[0] != 0 && a[0] < 224
}
