package packet

import "encoding/binary"

// ARP is an Ethernet/IPv4 ARP message.
type ARP struct {
	Op  uint16
	SHA [6]byte
	SPA [4]byte
	THA [6]byte
	TPA [4]byte
}

// ParseARP validates the Ethernet/IPv4 ARP message at the start of b (an
// Ethernet payload) and fills a. It reports false for anything else.
func ParseARP(b []byte, a *ARP) bool {
	if len(b) < ARPLen {
		return false
	}
	if binary.BigEndian.Uint16(b[0:2]) != 1 || binary.BigEndian.Uint16(b[2:4]) != EtherTypeIPv4 ||
		b[4] != 6 || b[5] != 4 {
		return false
	}
	a.Op = binary.BigEndian.Uint16(b[6:8])
	copy(a.SHA[:], b[8:14])
	copy(a.SPA[:], b[14:18])
	copy(a.THA[:], b[18:24])
	copy(a.TPA[:], b[24:28])
	return true
}

// ARPReply turns the frame f, which holds the request a, into the reply that
// says a.TPA is at mac, and returns the reply's length. f must be at least
// EthLen+ARPLen bytes (ParseARP checked that).
func ARPReply(f []byte, a *ARP, mac [6]byte) int {
	SetMACs(f, a.SHA, mac)
	b := f[EthLen:]
	binary.BigEndian.PutUint16(b[6:8], ARPOpReply)
	copy(b[8:14], mac[:])
	copy(b[14:18], a.TPA[:])
	copy(b[18:24], a.SHA[:])
	copy(b[24:28], a.SPA[:])
	return EthLen + ARPLen
}
