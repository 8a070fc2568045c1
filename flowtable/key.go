package flowtable

import "encoding/binary"

// Key identifies one direction of a flow. For ICMP echo request and reply,
// set both ports to the echo identifier, so that Reverse of a request's key
// is its reply's key.
type Key struct {
	VRF              uint32
	Src, Dst         [4]byte
	SrcPort, DstPort uint16
	Proto            uint8
}

// Reverse returns the key of the return traffic of k when nothing rewrites
// it (no NAT): addresses and ports swapped.
func (k Key) Reverse() Key {
	return Key{VRF: k.VRF, Src: k.Dst, Dst: k.Src, SrcPort: k.DstPort, DstPort: k.SrcPort, Proto: k.Proto}
}

// packed is a Key in the three words a slot stores.
type packed struct {
	k0, k1 uint64 // src<<32|dst, vrf<<32|sport<<16|dport
	proto  uint8
}

func pack(k *Key) packed {
	return packed{
		k0:    uint64(be32(k.Src))<<32 | uint64(be32(k.Dst)),
		k1:    uint64(k.VRF)<<32 | uint64(k.SrcPort)<<16 | uint64(k.DstPort),
		proto: k.Proto,
	}
}

func (p packed) key() Key {
	return Key{
		VRF: uint32(p.k1 >> 32), Src: ip4(uint32(p.k0 >> 32)), Dst: ip4(uint32(p.k0)),
		SrcPort: uint16(p.k1 >> 16), DstPort: uint16(p.k1), Proto: p.proto,
	}
}

func be32(a [4]byte) uint32 { return binary.BigEndian.Uint32(a[:]) }

func ip4(v uint32) (a [4]byte) {
	binary.BigEndian.PutUint32(a[:], v)
	return a
}
