package dataplane

import (
	"encoding/binary"

	"github.com/xvr-project/xvr/vrouter/packet"
)

// icmpChecksumBad reports whether the IPv4 packet ip (validated as h) is an
// ICMP message, not a fragment, whose checksum does not verify (RFC 792: over
// the whole ICMP message). The vRouter checks every ICMP message it answers
// (echo to the gateway, ICMP errors quoting it) or rewrites (SNAT of echo)
// with it; a fragment is not checked here (its checksum covers data the
// vRouter does not have).
func icmpChecksumBad(ip []byte, h *packet.IPv4) bool {
	if h.Proto != packet.ProtoICMP || isFragment(ip) {
		return false
	}
	return packet.Checksum(ip[h.HeaderLen:h.TotalLen]) != 0
}

// echoRefused is why the vRouter does not answer the echo request ip
// (validated as h), or Forward: a fragment is not reassembled
// (ReceiveUnhandled), a wrong checksum is ICMPChecksum.
func echoRefused(ip []byte, h *packet.IPv4) Reason {
	switch {
	case isFragment(ip):
		return ReceiveUnhandled
	case icmpChecksumBad(ip, h):
		return ICMPChecksum
	}
	return Forward
}

// isFragment reports whether the IPv4 packet ip is a fragment (MF set or an offset).
func isFragment(ip []byte) bool { return binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 }
