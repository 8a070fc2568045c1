package packet

import "encoding/binary"

// Header sizes and field values.
const (
	EthLen  = 14
	ARPLen  = 28
	IPv4Min = 20
	ICMPLen = 8

	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86dd
	EtherTypeVLAN = 0x8100

	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17

	ICMPEchoReply    = 0
	ICMPDestUnreach  = 3
	ICMPEcho         = 8
	ICMPTimeExceeded = 11

	ARPOpRequest = 1
	ARPOpReply   = 2
)

// Broadcast is the Ethernet broadcast address.
var Broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// EtherType returns the frame's EtherType, or 0 if it is shorter than an Ethernet header.
func EtherType(f []byte) uint16 {
	if len(f) < EthLen {
		return 0
	}
	return binary.BigEndian.Uint16(f[12:14])
}

// DstMAC and SrcMAC return the frame's addresses; f must hold an Ethernet header.
func DstMAC(f []byte) (m [6]byte) { copy(m[:], f[0:6]); return m }

// SrcMAC returns the source MAC; f must hold an Ethernet header.
func SrcMAC(f []byte) (m [6]byte) { copy(m[:], f[6:12]); return m }

// SetMACs rewrites the Ethernet addresses; f must hold an Ethernet header.
func SetMACs(f []byte, dst, src [6]byte) {
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
}

// IsMulticastMAC reports whether the group bit is set (multicast or broadcast).
func IsMulticastMAC(m [6]byte) bool { return m[0]&1 == 1 }
