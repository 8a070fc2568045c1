package gen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

const (
	// MaxFrameLen is the largest frame a Generator sends (1500 MTU + Ethernet).
	MaxFrameLen = 1514
	// MinUDPFrameLen is the smallest Ethernet/IPv4/UDP frame.
	MinUDPFrameLen = ethHdrLen + ipv4HdrLen + udpHdrLen

	ethHdrLen  = 14
	ipv4HdrLen = 20
	udpHdrLen  = 8
)

// Frame64 returns a 64-byte Ethernet/IPv4/UDP frame from src:49152 to
// dst:9 (discard) with valid IPv4 and UDP checksums, or nil when src or dst
// is not IPv4 or a MAC is not 6 bytes.
func Frame64(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr) []byte {
	f, err := FrameUDP(64, srcMAC, dstMAC, netip.AddrPortFrom(src, 49152), netip.AddrPortFrom(dst, 9))
	if err != nil {
		return nil
	}
	return f
}

// FrameUDP returns an Ethernet/IPv4/UDP frame of size bytes
// (MinUDPFrameLen..MaxFrameLen, no FCS) with a zero payload, TTL 64 and
// valid IPv4 and UDP checksums.
func FrameUDP(size int, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort) ([]byte, error) {
	if size < MinUDPFrameLen || size > MaxFrameLen {
		return nil, fmt.Errorf("frame size %d, want %d..%d", size, MinUDPFrameLen, MaxFrameLen)
	}
	if len(srcMAC) != 6 || len(dstMAC) != 6 {
		return nil, fmt.Errorf("MACs %v, %v: want 6 bytes each", srcMAC, dstMAC)
	}
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return nil, fmt.Errorf("addresses %v, %v: want IPv4", src, dst)
	}
	f := make([]byte, size)
	copy(f[0:], dstMAC)
	copy(f[6:], srcMAC)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	putIPv4(f[ethHdrLen:], src.Addr(), dst.Addr())
	putUDP(f[ethHdrLen:], src.Port(), dst.Port())
	return f, nil
}

// putIPv4 writes a 20-byte IPv4 header for a UDP packet that fills pkt.
func putIPv4(pkt []byte, src, dst netip.Addr) {
	h := pkt[:ipv4HdrLen]
	h[0], h[8], h[9] = 0x45, 64, 17 // version/IHL, TTL, UDP
	binary.BigEndian.PutUint16(h[2:], uint16(len(pkt)))
	binary.BigEndian.PutUint16(h[6:], 0x4000) // DF
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], ^fold(sum16(h, 0)))
}

// putUDP writes the UDP header and checksum after the IPv4 header in pkt.
func putUDP(pkt []byte, sport, dport uint16) {
	u := pkt[ipv4HdrLen:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	pseudo := sum16(pkt[12:20], 17+uint32(len(u))) // addresses, protocol, length
	c := ^fold(sum16(u, pseudo))
	if c == 0 {
		c = 0xffff // zero means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(u[6:], c)
}

// sum16 adds b as big-endian 16-bit words (odd tail padded) to acc.
func sum16(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
