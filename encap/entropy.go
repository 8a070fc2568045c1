package encap

import (
	"encoding/binary"

	"github.com/xvr-project/xvr/vrouter/packet"
)

// FlowEntropy hashes the IPv4 packet starting at ip into 16 bits for Encap's
// source port, so that every packet of one flow takes one path through the
// fabric. It hashes source, destination and protocol, plus the ports for TCP
// and UDP. Fragments (first ones included) are hashed without ports so that
// all pieces of a datagram stay together. Anything that is not an IPv4
// header hashes to 0. The hash is fixed (no per-node seed).
func FlowEntropy(ip []byte) uint16 {
	if len(ip) < packet.IPv4Min || ip[0]>>4 != 4 {
		return 0
	}
	addrs := binary.BigEndian.Uint64(ip[12:20])
	proto := ip[9]
	key := uint64(proto)
	ihl := int(ip[0]&0x0f) * 4
	fragment := binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0
	if (proto == packet.ProtoTCP || proto == packet.ProtoUDP) && !fragment && ihl >= packet.IPv4Min && len(ip) >= ihl+4 {
		key |= uint64(binary.BigEndian.Uint32(ip[ihl:ihl+4])) << 8
	}
	h := mix(addrs ^ key*0x9e3779b97f4a7c15)
	return uint16(h ^ h>>16 ^ h>>32 ^ h>>48)
}

// mix is the 64-bit finaliser of MurmurHash3: every input bit affects every
// output bit.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
