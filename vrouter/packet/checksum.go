package packet

import "encoding/binary"

// Checksum is the Internet checksum (RFC 1071) of b, folded and complemented.
func Checksum(b []byte) uint16 {
	return ^fold(sum(b, 0))
}

func sum(b []byte, acc uint64) uint64 {
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b[0:4]))
		acc += uint64(binary.BigEndian.Uint32(b[4:8]))
		b = b[8:]
	}
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

func fold(acc uint64) uint16 {
	for acc > 0xffff {
		acc = (acc >> 16) + (acc & 0xffff)
	}
	return uint16(acc)
}

// UpdateChecksum16 returns checksum hc after a 16-bit field changed from old
// to new, per RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
func UpdateChecksum16(hc, old, new uint16) uint16 {
	acc := uint64(^hc) + uint64(^old) + uint64(new)
	return ^fold(acc)
}
