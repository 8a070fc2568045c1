package packet

import "encoding/binary"

// IsEchoRequest reports whether the IPv4 packet at b (validated as h) is an
// ICMP echo request with a whole ICMP header.
func IsEchoRequest(b []byte, h *IPv4) bool {
	return h.Proto == ProtoICMP && h.TotalLen-h.HeaderLen >= ICMPLen &&
		b[h.HeaderLen] == ICMPEcho && b[h.HeaderLen+1] == 0
}

// EchoReply turns the Ethernet frame f, holding the echo request h at
// f[EthLen:], into its reply from the same address, sent with source MAC mac.
func EchoReply(f []byte, h *IPv4, mac [6]byte) {
	SetMACs(f, SrcMAC(f), mac)
	b := f[EthLen:]
	copy(b[12:16], h.Dst[:])
	copy(b[16:20], h.Src[:])
	oldTTL := binary.BigEndian.Uint16(b[8:10])
	b[8] = 64
	hc := binary.BigEndian.Uint16(b[10:12])
	binary.BigEndian.PutUint16(b[10:12], UpdateChecksum16(hc, oldTTL, binary.BigEndian.Uint16(b[8:10])))
	icmp := b[h.HeaderLen:]
	icmp[0] = ICMPEchoReply
	ic := binary.BigEndian.Uint16(icmp[2:4])
	binary.BigEndian.PutUint16(icmp[2:4], UpdateChecksum16(ic, uint16(ICMPEcho)<<8, uint16(ICMPEchoReply)<<8))
}

// ErrorAllowed reports whether a router may answer the packet at b
// (validated as h) with an ICMP error (RFC 1812 §4.3.2.7): not for ICMP
// errors, non-first fragments, or non-unicast sources and destinations.
func ErrorAllowed(b []byte, h *IPv4) bool {
	if !IsUnicast(h.Src) || !IsUnicast(h.Dst) {
		return false
	}
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return false
	}
	if h.Proto != ProtoICMP {
		return true
	}
	if h.TotalLen-h.HeaderLen < 1 {
		return false
	}
	t := b[h.HeaderLen]
	return t == ICMPEcho || t == ICMPEchoReply || t == 13 || t == 14
}

// ICMPError rewrites the Ethernet frame held in buf[:n] (IPv4 packet h at
// buf[EthLen:]) into an ICMP error of type typ and code from the router
// address src and source MAC mac, quoting the original header and 8 bytes of
// payload (RFC 792). aux is the second header word (the next-hop MTU for
// "fragmentation needed"). buf is the whole space the frame may grow into.
// It returns the new frame length, or 0 if buf is too small.
func ICMPError(buf []byte, n int, h *IPv4, typ, code uint8, aux uint32, src [4]byte, mac [6]byte) int {
	quote := min(h.HeaderLen+8, h.TotalLen, n-EthLen)
	total := IPv4Min + ICMPLen + quote
	if quote < IPv4Min || EthLen+total > len(buf) {
		return 0
	}
	copy(buf[EthLen+IPv4Min+ICMPLen:], buf[EthLen:EthLen+quote])
	SetMACs(buf, SrcMAC(buf), mac)
	ip := buf[EthLen : EthLen+total]
	ip[0], ip[1] = 0x45, 0xc0
	binary.BigEndian.PutUint16(ip[2:4], uint16(total))
	binary.BigEndian.PutUint32(ip[4:8], 0)
	ip[8], ip[9] = 64, ProtoICMP
	copy(ip[12:16], src[:])
	copy(ip[16:20], h.Src[:])
	SetIPv4Checksum(ip, IPv4Min)
	icmp := ip[IPv4Min:]
	icmp[0], icmp[1], icmp[2], icmp[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(icmp[4:8], aux)
	binary.BigEndian.PutUint16(icmp[2:4], Checksum(icmp))
	return EthLen + total
}
