package encap

import (
	"encoding/binary"

	"github.com/xvr-project/xvr/vrouter/packet"
)

// Label and VNI ranges.
const (
	MinLabel = 16        // labels 0-15 are reserved (RFC 3032 §2.1)
	MaxLabel = 1<<20 - 1 // 20-bit MPLS label
	MaxVNI   = 1<<24 - 1 // 24-bit VXLAN network identifier
)

// ephemeralBase is the first port of the range RFC 7510 §3 and RFC 7348 §5
// recommend for the entropy-carrying source port (49152–65535).
const ephemeralBase = 0xc000

// defaultTTL is the outer TTL when Outer.TTL is 0.
const defaultTTL = 64

// Outer is the outer Ethernet and IPv4 header of a tunnel: this node's
// fabric MAC and IP (Src) towards the remote node (Dst) through the next
// hop's MAC. The agent keeps one per remote node; Encap only reads it.
type Outer struct {
	SrcMAC, DstMAC [6]byte
	Src, Dst       [4]byte
	TTL            uint8 // 0 means 64
	DF             bool  // set Don't Fragment on the outer header
}

// Encap encapsulates the Ethernet frame buf[off:off+n] as kind towards o,
// with label (the MPLS label, MinLabel..MaxLabel, or the VNI, 0..MaxVNI)
// and entropy (FlowEntropy of the inner packet) as the UDP source port's
// low bits. It writes the outer headers into the headroom before the inner
// packet and touches nothing after it: MPLSoUDP overwrites the inner
// Ethernet header (the frame must be IPv4, at least 34 bytes) and VXLAN keeps
// the whole frame. The encapsulated frame is buf[newOff:newOff+newLen];
// newLen is n + Overhead(kind). On error buf is unchanged.
func Encap(buf []byte, off, n int, kind Kind, label uint32, o *Outer, entropy uint16) (newOff, newLen int, err error) {
	if err := checkBounds(buf, off, n); err != nil {
		return 0, 0, err
	}
	if o == nil {
		return 0, 0, ErrBadKind
	}
	switch kind {
	case MPLSoUDP:
		return encapMPLS(buf, off, n, label, o, entropy)
	case VXLAN:
		return encapVXLAN(buf, off, n, label, o, entropy)
	}
	return 0, 0, ErrBadKind
}

func checkBounds(buf []byte, off, n int) error {
	if off < 0 || n < 0 || off > len(buf) || n > len(buf)-off {
		return ErrBounds
	}
	return nil
}

func encapMPLS(buf []byte, off, n int, label uint32, o *Outer, entropy uint16) (int, int, error) {
	if label < MinLabel || label > MaxLabel {
		return 0, 0, ErrBadLabel
	}
	if n < packet.EthLen+packet.IPv4Min {
		return 0, 0, ErrTruncated
	}
	if packet.EtherType(buf[off:off+n]) != packet.EtherTypeIPv4 || buf[off+packet.EthLen]>>4 != 4 {
		return 0, 0, ErrInnerNotIPv4
	}
	start, total, err := placeOuter(off, n, MPLSoUDP)
	if err != nil {
		return 0, 0, err
	}
	ttl := buf[off+packet.EthLen+8]
	h := buf[start : start+mplsHdrs]
	writeOuter(h, total, o, entropy, PortMPLSoUDP)
	binary.BigEndian.PutUint32(h[42:46], label<<12|1<<8|uint32(ttl))
	return start, total, nil
}

func encapVXLAN(buf []byte, off, n int, vni uint32, o *Outer, entropy uint16) (int, int, error) {
	if vni > MaxVNI {
		return 0, 0, ErrBadLabel
	}
	if n < packet.EthLen {
		return 0, 0, ErrTruncated
	}
	start, total, err := placeOuter(off, n, VXLAN)
	if err != nil {
		return 0, 0, err
	}
	h := buf[start : start+vxlanHdrs]
	writeOuter(h, total, o, entropy, PortVXLAN)
	binary.BigEndian.PutUint32(h[42:46], 0x08<<24) // flags: I; reserved 0
	binary.BigEndian.PutUint32(h[46:50], vni<<8)   // VNI; reserved 0
	return start, total, nil
}

// placeOuter returns where the encapsulated frame starts and how long it is.
func placeOuter(off, n int, k Kind) (start, total int, err error) {
	oh := Overhead(k)
	if off < oh {
		return 0, 0, ErrHeadroom
	}
	if n+oh-packet.EthLen > 0xffff {
		return 0, 0, ErrTooBig
	}
	return off - oh, n + oh, nil
}

// writeOuter fills the outer Ethernet, IPv4 and UDP headers h[0:42] of a
// frame of total bytes.
func writeOuter(h []byte, total int, o *Outer, entropy uint16, dport uint16) {
	_ = h[41]
	copy(h[0:6], o.DstMAC[:])
	copy(h[6:12], o.SrcMAC[:])
	binary.BigEndian.PutUint16(h[12:14], packet.EtherTypeIPv4)
	writeIPv4(h[14:34], total-packet.EthLen, o)
	u := h[34:42]
	binary.BigEndian.PutUint16(u[0:2], ephemeralBase|entropy&0x3fff)
	binary.BigEndian.PutUint16(u[2:4], dport)
	binary.BigEndian.PutUint16(u[4:6], uint16(total-packet.EthLen-packet.IPv4Min))
	u[6], u[7] = 0, 0 // checksum zero: RFC 7348 §5, RFC 7510 §3
}

func writeIPv4(ip []byte, total int, o *Outer) {
	_ = ip[19]
	var frag uint16
	if o.DF {
		frag = 0x4000
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}
	binary.BigEndian.PutUint32(ip[0:4], 0x4500<<16|uint32(total))
	binary.BigEndian.PutUint32(ip[4:8], uint32(frag)) // ID 0, flags, offset 0
	copy(ip[12:16], o.Src[:])
	copy(ip[16:20], o.Dst[:])
	// The checksum is summed from the values, not read back from the bytes
	// just stored (that read stalls on store forwarding).
	acc := uint32(0x4500) + uint32(total) + uint32(frag) + uint32(ttl)<<8 + packet.ProtoUDP
	acc += addrSum(o.Src[:]) + addrSum(o.Dst[:])
	binary.BigEndian.PutUint32(ip[8:12], uint32(ttl)<<24|packet.ProtoUDP<<16|uint32(^fold32(acc)))
}

// addrSum is the sum of the two 16-bit words of the address a.
func addrSum(a []byte) uint32 {
	v := binary.BigEndian.Uint32(a)
	return v>>16 + v&0xffff
}

func fold32(acc uint32) uint16 {
	acc = acc>>16 + acc&0xffff
	return uint16(acc>>16 + acc&0xffff)
}
