package dataplane

import (
	"encoding/binary"
	"errors"
	"sync/atomic"

	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/packet"
)

// Network policy in the pipeline. A packet whose source or destination is a
// local pod vif with a Policy goes through the flow table: the first packet
// of a flow is checked against the source pod's egress and the destination
// pod's ingress, and the verdict is cached in the flow's two entries (the
// reverse entry lets replies through); later packets take the verdict from
// the entry. Entries remember the snapshot's PolicyGen they were decided
// under: after a policy change a flow is decided again on its next packet.
// Packets between vifs without policy never touch the flow table.
//
// How a policy entry's Action is used (Forward: allowed, Drop: denied):
//   - forward entry: NextHop = polMark | vif<<1 | direction of the decision
//     (0 ingress of the destination, 1 egress of the source), Port = the
//     decision (polDenied, polOpen, polNode, or polRule + rule index);
//   - reverse entry: NextHop = the host interface's next hop for a flow the
//     kernel forwarded (hostpath.go: the reply goes back through it), else
//     NHIDDiscard; Port 0;
//   - both: IP = the generation (gen(s)).

const polMark = 1 << 31

// Decisions kept in a forward entry's Port.
const (
	polDenied = 1 // no rule of an isolated direction allowed it
	polOpen   = 2 // neither end isolated in the direction that applies
	polNode   = 3 // from the node itself: always allowed
	polDefer  = 4 // to a Service: egress is checked after the kernel's DNAT
	polRule   = 5 // polRule + i: rule i of the direction allowed it
)

// PolicyStats counts the flows the pipeline decided (new flows and flows
// decided again after a policy change), shared by every snapshot and
// poller.
type PolicyStats struct {
	Allowed, Denied atomic.Uint64
}

// gen is the snapshot's policy generation as kept in entries (never 0, so
// flows made before any policy read as stale).
func gen(s *Snapshot) [4]byte {
	g := s.PolicyGen + 1
	if g == 0 {
		g = 1
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], g)
	return b
}

// policed is the vif's index when it is a local vif with a policy, else -1.
func (s *Snapshot) policed(i uint32) int64 {
	if v := s.vif(i); v != nil && v.Policy != nil && !(s.Host.Valid && i == s.Host.Vif) {
		return int64(i)
	}
	return -1
}

// polPorts reads a packet's ports for policy: TCP, UDP and SCTP ports; the
// identifier of an ICMP echo request or reply as both ports; 0 otherwise
// (other protocols, fragments).
func polPorts(ip []byte, h *packet.IPv4) (src, dst uint16) {
	if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return 0, 0
	}
	l4 := ip[h.HeaderLen:h.TotalLen]
	switch {
	case (h.Proto == packet.ProtoTCP || h.Proto == packet.ProtoUDP || h.Proto == policy.ProtoSCTP) && len(l4) >= 4:
		return binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	case h.Proto == packet.ProtoICMP && len(l4) >= 8 && (l4[0] == packet.ICMPEcho || l4[0] == packet.ICMPEchoReply):
		id := binary.BigEndian.Uint16(l4[4:6])
		return id, id
	}
	return 0, 0
}

// flowEnds is what a packet's flow decision depends on.
type flowEnds struct {
	src, dst int64 // policed local vifs at either end, or -1
	fromNode bool  // the node itself sent it (through the host vif)
	deferred bool  // to a Service through the kernel: egress checked after DNAT
	hostFlow bool  // the kernel forwarded it for a pod: replies go back to the kernel
}

// seenFlow is a flow entry enforce found and used as it was (a cached
// verdict), for the rest of the packet's path.
type seenFlow struct {
	ok  bool
	k   flowtable.Key
	ref flowtable.Ref
	act flowtable.Action
}

// guard applies policy (and records the kernel-forwarded flows of
// hostpath.go) to a packet parsed into p.ip, received on c.in and routed
// to nh; Forward lets it go on.
func (p *Pipeline) guard(c *batchCtx, f []byte, nh *NextHop) Reason {
	p.seen.ok = false
	s, h := c.s, &c.s.Host
	if nh.Type != NHEncap && nh.Type != NHTunnel && nh.Type != NHFabric {
		return Forward // to the router, discarded, or source-NATed (snat.go checks egress)
	}
	if nh.Type == NHEncap && nh.Vif == c.in {
		return Forward // back where it came from: toVif decides
	}
	e := flowEnds{src: -1, dst: -1}
	fromHost := h.Valid && c.in == h.Vif
	switch {
	case !fromHost:
		e.src = s.policed(c.in)
	case p.ip.Src == h.IP:
		e.fromNode = true
	case c.vrf.Contains(p.ip.Src):
		// The kernel forwarded a pod's packet (a Service's, after DNAT):
		// the pod's egress applies, and its reply goes back to the kernel.
		if pn := s.localNH(c.vrf, p.ip.Src); pn != nil {
			e.src = s.policed(pn.Vif)
		}
		e.hostFlow = s.Flows != nil && (p.ip.Proto == packet.ProtoTCP || p.ip.Proto == packet.ProtoUDP)
	}
	if nh.Type == NHEncap {
		// To a Service: the kernel's DNAT picks the endpoint, and the pod's
		// egress is checked when the packet comes back through the host vif.
		// The flow is still recorded (allowed), so that the reply the kernel
		// un-DNATs (from the ClusterIP) passes the pod's ingress.
		e.deferred = h.Valid && nh.Vif == h.Vif && s.inServiceNet(p.ip.Dst)
		e.dst = s.policed(nh.Vif)
	}
	if e.src < 0 && e.dst < 0 && !e.hostFlow {
		return Forward
	}
	return p.enforce(c, f, &e)
}

// guardIn applies the destination pod's ingress policy to a packet from
// the fabric (decapsulated, or natively forwarded) about to be delivered
// through nh.
func (p *Pipeline) guardIn(c *batchCtx, f []byte, nh *NextHop) Reason {
	p.seen.ok = false
	e := flowEnds{src: -1, dst: c.s.policed(nh.Vif)}
	if e.dst < 0 {
		return Forward
	}
	return p.enforce(c, f, &e)
}

func (s *Snapshot) inServiceNet(a [4]byte) bool {
	for _, n := range s.ServiceNets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// enforce looks the packet's flow up, deciding it when it is new or was
// decided under another policy generation.
func (p *Pipeline) enforce(c *batchCtx, f []byte, e *flowEnds) Reason {
	s := c.s
	policed := e.src >= 0 || e.dst >= 0
	if s.Flows == nil {
		if policed {
			return FlowTableFull // never let a policed packet through unchecked
		}
		return Forward
	}
	ip := f[packet.EthLen:]
	sport, dport := polPorts(ip, &p.ip)
	// The key is built in place in p.seen (no copy on the fast path).
	sn := &p.seen
	sn.k = flowtable.Key{VRF: s.Host.VRF, Src: p.ip.Src, Dst: p.ip.Dst, SrcPort: sport, DstPort: dport, Proto: p.ip.Proto}
	switch {
	case e.dst >= 0:
		sn.k.VRF = s.Vifs[e.dst].VRF
	case e.src >= 0:
		sn.k.VRF = s.Vifs[e.src].VRF
	}
	g := gen(s)
	var hit bool
	sn.ref, sn.act, hit = s.Flows.Lookup(&sn.k)
	if hit && (sn.act.IP == g || !policed && sn.act.IP != [4]byte{}) {
		sn.ok = true
		return p.cached(s, sn.ref, &sn.act, ip)
	}
	k, ref, act := sn.k, sn.ref, sn.act
	if hit && act.Kind.IsNAT() {
		return Forward // a NAT entry of the same key: snat.go owns it
	}
	back := uint32(NHIDDiscard)
	if e.hostFlow {
		back = s.Host.NH
	}
	if hit && act.NextHop&polMark == 0 { // the reply's entry: decide the flow's first direction
		back = act.NextHop
		k = k.Reverse()
		sport, dport = dport, sport
		e = &flowEnds{src: e.dst, dst: e.src, fromNode: s.Host.Valid && p.ip.Dst == s.Host.IP}
	}
	if hit {
		s.Flows.Delete(ref)
	}
	fa, ra := p.decide(s, e, &k, g, back)
	_, err := s.Flows.Insert(k, fa, k.Reverse(), ra, p.Now)
	switch {
	case err == nil, errors.Is(err, flowtable.ErrExists):
	case policed:
		return FlowTableFull
	default:
		return Forward // a kernel-forwarded flow not recorded: routed as usual
	}
	if hit && k.Src != p.ip.Src { // decided for the first direction; this is a reply
		fa = ra
	}
	if fa.Kind == flowtable.Drop {
		return PolicyDenied
	}
	return Forward
}

// cached applies a flow entry's verdict.
func (p *Pipeline) cached(s *Snapshot, ref flowtable.Ref, act *flowtable.Action, ip []byte) Reason {
	s.Flows.Account(ref, int(p.ip.TotalLen), p.Now)
	if act.Kind == flowtable.Drop {
		return PolicyDenied
	}
	if p.ip.Proto == packet.ProtoTCP && int(p.ip.HeaderLen)+14 <= len(ip) && ip[p.ip.HeaderLen+13]&0x05 != 0 {
		s.Flows.Close(ref) // FIN or RST
	}
	return Forward
}

// decide checks the flow k (its first direction) against the source pod's
// egress and the destination pod's ingress, and returns its entries'
// actions; the decision is counted.
func (p *Pipeline) decide(s *Snapshot, e *flowEnds, k *flowtable.Key, g [4]byte, back uint32) (fa, ra flowtable.Action) {
	by, dec := uint32(0), uint16(polOpen)
	allow := true
	if e.src >= 0 && e.deferred {
		by, dec = uint32(e.src)<<1|1, polDefer
	} else if e.src >= 0 {
		switch d := s.Vifs[e.src].Policy.Check(policy.Egress, k.Dst, k.Proto, k.DstPort); {
		case d == policy.Denied:
			allow, by, dec = false, uint32(e.src)<<1|1, polDenied
		case d >= 0:
			by, dec = uint32(e.src)<<1|1, ruleCode(d)
		}
	}
	if allow && e.dst >= 0 {
		switch d := s.Vifs[e.dst].Policy.Check(policy.Ingress, k.Src, k.Proto, k.DstPort); {
		case e.fromNode:
			by, dec = uint32(e.dst)<<1, polNode
		case d == policy.Denied:
			allow, by, dec = false, uint32(e.dst)<<1, polDenied
		case d >= 0:
			by, dec = uint32(e.dst)<<1, ruleCode(d)
		}
	}
	kind := flowtable.Forward
	if !allow {
		kind = flowtable.Drop
	}
	if st := s.PolicyStats; st != nil && (e.src >= 0 || e.dst >= 0) {
		if allow {
			st.Allowed.Add(1)
		} else {
			st.Denied.Add(1)
		}
	}
	fa = flowtable.Action{Kind: kind, NextHop: polMark | by, IP: g, Port: dec}
	ra = flowtable.Action{Kind: kind, NextHop: back, IP: g}
	return fa, ra
}

func ruleCode(d policy.Decision) uint16 {
	return uint16(min(int64(d)+polRule, 0xffff))
}

// egressAllowed is the source pod's egress verdict for a packet about to
// be source-NATed (checked per packet: NAT entries keep no verdict).
func (p *Pipeline) egressAllowed(c *batchCtx, dport uint16) bool {
	if c.vif.Policy == nil {
		return true
	}
	return c.vif.Policy.Check(policy.Egress, p.ip.Dst, p.ip.Proto, dport) != policy.Denied
}

// FlowPolicy describes a flow entry's policy verdict for introspection:
// "allow" or "deny" and what decided it, or two empty strings for an entry
// that is not a policy decision (NAT, or a reverse entry: read its forward
// entry). s is the snapshot the names come from.
func FlowPolicy(s *Snapshot, a flowtable.Action) (verdict, decidedBy string) {
	if a.Kind.IsNAT() || a.NextHop&polMark == 0 {
		return "", ""
	}
	verdict = "allow"
	if a.Kind == flowtable.Drop {
		verdict = "deny"
	}
	if a.IP != gen(s) {
		verdict += " (stale)"
	}
	vi, dir := (a.NextHop&^polMark)>>1, policy.Ingress
	if a.NextHop&1 == 1 {
		dir = policy.Egress
	}
	name := "?"
	v := s.vif(vi)
	if v != nil {
		name = v.Name
	}
	where := " (" + dir.String() + " of " + name + ")"
	switch {
	case a.Port == polDenied:
		return verdict, "default deny" + where
	case a.Port == polNode:
		return verdict, "from the node" + where
	case a.Port == polDefer:
		return verdict, "to a Service, checked after DNAT" + where
	case a.Port >= polRule && v != nil && v.Policy != nil:
		return verdict, v.Policy.Policy(dir, policy.Decision(a.Port-polRule)) + where
	}
	return verdict, "not isolated"
}
