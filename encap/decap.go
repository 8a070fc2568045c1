package encap

import (
	"encoding/binary"

	"github.com/xvr-project/xvr/vrouter/packet"
)

// Decapped describes a frame Decap accepted. Offsets are into the buf given
// to Decap.
type Decapped struct {
	Kind     Kind
	Label    uint32  // MPLS label or VXLAN VNI
	Src, Dst [4]byte // outer IPv4 addresses: the sending and this node
	SrcPort  uint16  // outer UDP source port (the sender's flow entropy)
	// InnerOff and InnerLen bound the inner packet: an IPv4 packet for
	// MPLSoUDP, an Ethernet frame for VXLAN (InnerIsEthernet).
	InnerOff, InnerLen int
	InnerIsEthernet    bool
}

// Decap validates the overlay frame buf[off:off+n] and fills d. It checks
// the outer Ethernet type (IPv4), the outer IPv4 header (version, IHL,
// lengths, checksum; a fragment is refused, options are skipped), the UDP
// header (length within the IP payload, where the data then ends, as Linux
// does; a non-zero checksum is verified), then by destination port one MPLS
// entry (S=1, label >= 16, an IPv4 packet behind it) or a VXLAN header (I
// flag set, reserved bits ignored per RFC 7348 §5, an Ethernet header
// behind it). It reads nothing outside buf[off:off+n] and writes nothing
// into buf. Errors are Error values (ErrNotOverlay: not UDP to an overlay
// port); after an error d holds nothing meaningful.
func Decap(buf []byte, off, n int, d *Decapped) error {
	if err := checkBounds(buf, off, n); err != nil {
		return err
	}
	f := buf[off : off+n : off+n]
	if len(f) < packet.EthLen {
		return ErrTruncated
	}
	if packet.EtherType(f) != packet.EtherTypeIPv4 {
		return ErrNotOverlay
	}
	l4, udp, err := outerUDP(f[packet.EthLen:], d)
	if err != nil {
		return err
	}
	d.SrcPort = binary.BigEndian.Uint16(udp[0:2])
	payOff := off + packet.EthLen + l4 + 8
	switch binary.BigEndian.Uint16(udp[2:4]) {
	case PortMPLSoUDP:
		return decapMPLS(udp[8:], payOff, d)
	case PortVXLAN:
		return decapVXLAN(udp[8:], payOff, d)
	}
	return ErrNotOverlay
}

// outerUDP validates the outer IPv4 header at the start of b and the UDP
// header behind it, and returns the UDP header's offset in b and the UDP
// datagram (header and data, as long as the UDP length says).
func outerUDP(b []byte, d *Decapped) (int, []byte, error) {
	var ip packet.IPv4
	if err := ipv4Error(b, packet.ParseIPv4(b, &ip)); err != nil {
		return 0, nil, err
	}
	if binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 {
		return 0, nil, ErrOuterFragment
	}
	if ip.Proto != packet.ProtoUDP {
		return 0, nil, ErrNotOverlay
	}
	l4 := b[ip.HeaderLen:ip.TotalLen]
	if len(l4) < 8 {
		return 0, nil, ErrTruncated
	}
	ulen := int(binary.BigEndian.Uint16(l4[4:6]))
	if ulen < 8 || ulen > len(l4) {
		return 0, nil, ErrUDPLength
	}
	udp := l4[:ulen]
	if dp := binary.BigEndian.Uint16(udp[2:4]); dp != PortMPLSoUDP && dp != PortVXLAN {
		return 0, nil, ErrNotOverlay
	}
	if !udpChecksumOK(udp, &ip) {
		return 0, nil, ErrUDPChecksum
	}
	d.Src, d.Dst = ip.Src, ip.Dst
	return ip.HeaderLen, udp, nil
}

// ipv4Error maps ParseIPv4's verdict on b to an Error.
func ipv4Error(b []byte, e packet.IPv4Error) error {
	switch e {
	case packet.IPv4OK:
		return nil
	case packet.IPv4Truncated:
		return ErrTruncated
	case packet.IPv4Checksum:
		return ErrOuterChecksum
	case packet.IPv4BadLength:
		// Total length beyond the frame is a cut frame; below the header, a bad one.
		if int(binary.BigEndian.Uint16(b[2:4])) > len(b) {
			return ErrTruncated
		}
	}
	return ErrOuterIPv4
}

// udpChecksumOK verifies udp's checksum with the IPv4 pseudo header; zero
// means none was sent (allowed over IPv4).
func udpChecksumOK(udp []byte, ip *packet.IPv4) bool {
	if udp[6] == 0 && udp[7] == 0 {
		return true
	}
	acc := uint64(^packet.Checksum(udp))
	acc += uint64(binary.BigEndian.Uint16(ip.Src[0:2])) + uint64(binary.BigEndian.Uint16(ip.Src[2:4]))
	acc += uint64(binary.BigEndian.Uint16(ip.Dst[0:2])) + uint64(binary.BigEndian.Uint16(ip.Dst[2:4]))
	acc += packet.ProtoUDP + uint64(len(udp))
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return acc == 0xffff
}

func decapMPLS(p []byte, payOff int, d *Decapped) error {
	if len(p) < 4 {
		return ErrTruncated
	}
	e := binary.BigEndian.Uint32(p[0:4])
	label := e >> 12
	if e&(1<<8) == 0 || label < MinLabel {
		return ErrBadMPLS
	}
	inner := p[4:]
	if len(inner) < packet.IPv4Min {
		return ErrTruncated
	}
	if inner[0]>>4 != 4 {
		return ErrInnerNotIPv4
	}
	setInner(d, MPLSoUDP, label, payOff+4, len(inner))
	return nil
}

func decapVXLAN(p []byte, payOff int, d *Decapped) error {
	if len(p) < 8 {
		return ErrTruncated
	}
	if p[0]&0x08 == 0 {
		return ErrBadVXLAN
	}
	inner := p[8:]
	if len(inner) < packet.EthLen {
		return ErrTruncated
	}
	setInner(d, VXLAN, binary.BigEndian.Uint32(p[4:8])>>8, payOff+8, len(inner))
	return nil
}

// setInner fills d's inner fields one by one (a whole-struct store right
// after Decap's field stores costs a store-forwarding stall).
func setInner(d *Decapped, k Kind, label uint32, off, n int) {
	d.Kind, d.Label = k, label
	d.InnerOff, d.InnerLen = off, n
	d.InnerIsEthernet = k == VXLAN
}

// InnerEthernet returns the bounds in buf of the inner packet of d (filled
// by a successful Decap of buf) as an Ethernet frame with destination dst and
// source src. For MPLSoUDP it writes an Ethernet header (type IPv4) into the
// 14 bytes just before the inner IP packet, which held outer headers; for
// VXLAN it rewrites the inner frame's MACs. (To keep a VXLAN frame's own
// MACs, use d.InnerOff and d.InnerLen directly.) It returns n == 0 and
// writes nothing when d does not describe a frame inside buf.
func InnerEthernet(buf []byte, d *Decapped, dst, src [6]byte) (off, n int) {
	off, n = d.InnerOff, d.InnerLen
	if !d.InnerIsEthernet {
		off, n = off-packet.EthLen, n+packet.EthLen
	}
	if checkBounds(buf, off, n) != nil || n < packet.EthLen {
		return 0, 0
	}
	f := buf[off : off+n]
	packet.SetMACs(f, dst, src)
	if !d.InnerIsEthernet {
		binary.BigEndian.PutUint16(f[12:14], packet.EtherTypeIPv4)
	}
	return off, n
}
