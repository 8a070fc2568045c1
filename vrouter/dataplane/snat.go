package dataplane

import (
	"encoding/binary"
	"errors"

	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/vrouter/afxdp"
	"github.com/xvr-project/xvr/vrouter/packet"
)

// SNATVRF is the VRF of the reverse flow entries of source-NATed flows:
// their return traffic arrives on the fabric, in no VN.
const SNATVRF = 0

// l4Ports reads the ports of a TCP or UDP packet, or the identifier of an
// ICMP echo (request when out, reply when in) as both ports. ok is false
// for anything else, fragments included.
func l4Ports(ip []byte, h *packet.IPv4, out bool) (src, dst uint16, ok bool) {
	if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 { // MF or an offset
		return 0, 0, false
	}
	l4 := ip[h.HeaderLen:h.TotalLen]
	switch {
	case h.Proto == packet.ProtoTCP && len(l4) >= 20, h.Proto == packet.ProtoUDP && len(l4) >= 8:
		return binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4]), true
	case h.Proto == packet.ProtoICMP && len(l4) >= 8:
		want := uint8(packet.ICMPEchoReply)
		if out {
			want = packet.ICMPEcho
		}
		if l4[0] != want || l4[1] != 0 {
			return 0, 0, false
		}
		id := binary.BigEndian.Uint16(l4[4:6])
		return id, id, true
	}
	return 0, 0, false
}

// rewrite changes the source (src true) or destination address and port of
// the IPv4 packet ip to a and port, updating the IP and L4 checksums
// incrementally (RFC 1624). For ICMP echo the port is the identifier.
func rewrite(ip []byte, h *packet.IPv4, src bool, a [4]byte, port uint16) {
	aOff, pOff := 16, 2
	if src {
		aOff, pOff = 12, 0
	}
	l4 := ip[h.HeaderLen:h.TotalLen]
	csum := -1 // offset of the L4 checksum the address is part of (pseudo-header), -1: none
	switch h.Proto {
	case packet.ProtoTCP:
		csum = 16
	case packet.ProtoUDP:
		if binary.BigEndian.Uint16(l4[6:8]) != 0 {
			csum = 6
		}
	case packet.ProtoICMP:
		pOff = 4
	}
	for i := 0; i < 4; i += 2 {
		old, new := binary.BigEndian.Uint16(ip[aOff+i:]), binary.BigEndian.Uint16(a[i:])
		update(ip[10:12], old, new)
		if csum >= 0 {
			update(l4[csum:csum+2], old, new)
		}
		binary.BigEndian.PutUint16(ip[aOff+i:], new)
	}
	oldPort := binary.BigEndian.Uint16(l4[pOff:])
	binary.BigEndian.PutUint16(l4[pOff:], port)
	switch {
	case h.Proto == packet.ProtoICMP:
		update(l4[2:4], oldPort, port)
	case csum >= 0:
		update(l4[csum:csum+2], oldPort, port)
		if h.Proto == packet.ProtoUDP && binary.BigEndian.Uint16(l4[6:8]) == 0 {
			binary.BigEndian.PutUint16(l4[6:8], 0xffff) // 0 means "no checksum" in UDP
		}
	}
}

func update(sum []byte, old, new uint16) {
	binary.BigEndian.PutUint16(sum, packet.UpdateChecksum16(binary.BigEndian.Uint16(sum), old, new))
}

// toSNAT sends a pod's packet of a fabric-SNAT VN to the outside with the
// node IP as its source: the flow's NAT entry pair is found, or made with a
// port from TF's pools, in the data path.
func (p *Pipeline) toSNAT(c *batchCtx, d *afxdp.Desc, f []byte, nh *NextHop) Verdict {
	s := c.s
	switch {
	case !s.Fabric.Valid || s.Flows == nil || s.SNAT == nil:
		return Verdict{Reason: InvalidNextHop}
	case nh.Outer.DstMAC == [6]byte{}:
		return Verdict{Reason: NoNeighbor}
	case p.ip.TTL <= 1:
		return p.timeExceeded(c, d, f)
	case s.Fabric.MTU > 0 && p.ip.TotalLen > s.Fabric.MTU:
		return p.fragNeeded(c, d, f, s.Fabric.MTU)
	}
	ip := f[packet.EthLen:]
	sport, dport, ok := l4Ports(ip, &p.ip, true)
	if !ok {
		return Verdict{Reason: SNATUnsupported}
	}
	if icmpChecksumBad(ip, &p.ip) {
		return Verdict{Reason: ICMPChecksum}
	}
	if !p.egressAllowed(c, dport) {
		return Verdict{Reason: PolicyDenied}
	}
	k := flowtable.Key{VRF: c.vif.VRF, Src: p.ip.Src, Dst: p.ip.Dst, SrcPort: sport, DstPort: dport, Proto: p.ip.Proto}
	ref, act, hit := s.Flows.Lookup(&k)
	if !hit {
		var r Reason
		if ref, act, r = p.newSNATFlow(c, &k); r != Forward {
			return Verdict{Reason: r}
		}
	}
	s.Flows.Account(ref, int(p.ip.TotalLen), p.Now)
	rewrite(ip, &p.ip, true, act.IP, act.Port)
	packet.DecTTL(ip)
	packet.SetMACs(f, nh.Outer.DstMAC, nh.Outer.SrcMAC)
	return Verdict{Vif: s.Fabric.Vif}
}

// newSNATFlow makes the forward (rewrite the source) and reverse (rewrite
// the destination back, deliver to the pod) entries of a new flow.
func (p *Pipeline) newSNATFlow(c *batchCtx, k *flowtable.Key) (flowtable.Ref, flowtable.Action, Reason) {
	s := c.s
	podNH, ok := c.view.Lookup(k.Src) // the pod's own /32
	if !ok {
		return 0, flowtable.Action{}, InvalidNextHop
	}
	port, ok := s.SNAT.Alloc(k.Proto)
	if !ok {
		return 0, flowtable.Action{}, SNATPortsExhausted
	}
	fa := flowtable.Action{Kind: flowtable.NATSrc, IP: s.Fabric.IP, Port: port}
	rk := flowtable.Key{VRF: SNATVRF, Src: k.Dst, Dst: s.Fabric.IP, SrcPort: k.DstPort, DstPort: port, Proto: k.Proto}
	if k.Proto == packet.ProtoICMP {
		rk.SrcPort = port
	}
	ra := flowtable.Action{Kind: flowtable.NATDst, IP: k.Src, Port: k.SrcPort, NextHop: podNH}
	ref, err := s.Flows.Insert(*k, fa, rk, ra, p.Now)
	switch {
	case err == nil:
		return ref, fa, Forward
	case errors.Is(err, flowtable.ErrExists): // another poller made it first
		s.SNAT.Free(k.Proto, port)
		if ref, act, ok := s.Flows.Lookup(k); ok {
			return ref, act, Forward
		}
		return 0, flowtable.Action{}, FlowTableFull
	case errors.Is(err, flowtable.ErrFull):
		s.SNAT.Free(k.Proto, port)
		return 0, flowtable.Action{}, FlowTableFull
	}
	s.SNAT.Free(k.Proto, port)
	return 0, flowtable.Action{}, SNATUnsupported
}

// snatReturn translates return traffic of a source-NATed flow back to its
// pod. Traffic to the node IP without a flow (unsolicited) is dropped.
func (p *Pipeline) snatReturn(c *batchCtx, f []byte) Verdict {
	s := c.s
	ip := f[packet.EthLen:]
	sport, dport, ok := l4Ports(ip, &p.ip, false)
	if !ok {
		return Verdict{Reason: SNATNoFlow}
	}
	if icmpChecksumBad(ip, &p.ip) {
		return Verdict{Reason: ICMPChecksum}
	}
	k := flowtable.Key{VRF: SNATVRF, Src: p.ip.Src, Dst: p.ip.Dst, SrcPort: sport, DstPort: dport, Proto: p.ip.Proto}
	ref, act, hit := s.Flows.Lookup(&k)
	if !hit || act.Kind != flowtable.NATDst {
		return Verdict{Reason: SNATNoFlow}
	}
	nh := s.nh(act.NextHop)
	if nh == nil || nh.Type != NHEncap || s.vif(nh.Vif) == nil {
		return Verdict{Reason: InvalidNextHop}
	}
	if p.ip.TTL <= 1 {
		return Verdict{Reason: TTLExceeded}
	}
	s.Flows.Account(ref, int(p.ip.TotalLen), p.Now)
	rewrite(ip, &p.ip, false, act.IP, act.Port)
	packet.DecTTL(ip)
	packet.SetMACs(f, nh.DstMAC, s.MAC)
	return Verdict{Vif: nh.Vif}
}
