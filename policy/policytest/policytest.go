// Package policytest generates policy Sets and packets for tests and
// benchmarks of the packages that enforce policy (policy itself, the
// dataplane's flow setup, the agent).
//
// Synthetic(n, seed) is a Set isolated both ways with n rules per
// direction in the mix the controller produces for a busy namespace: pod
// peers as /32s (often several per rule, the same pods named by several
// rules), ipBlocks with excepts, AllPeers rules with ports, AllPorts rules,
// single ports and endPort ranges of TCP, UDP and SCTP. It never contains
// a rule with both AllPeers and AllPorts (that rule would decide every
// packet after it and make a benchmark measure nothing). Packets(s, n,
// seed) are packets to check against it: about half to or from its pods
// on its ports, the rest anywhere in 198.18.0.0/15 and beyond on any
// protocol, so both allowed and denied decisions are exercised.
//
// Everything is deterministic in seed; all addresses are in 198.18.0.0/15
// except the 0.0.0.0/0 ipBlocks (with 198.18.0.0/15 excepted) and the
// packets that hit them.
package policytest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/xvr-project/xvr/policy"
)

// Packet is one Check's arguments.
type Packet struct {
	Dir   policy.Direction
	Peer  [4]byte
	Proto uint8
	Port  uint16
}

var (
	single = []policy.Port{
		{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 443}, {Protocol: "TCP", Port: 8080},
		{Protocol: "TCP", Port: 8443}, {Protocol: "TCP", Port: 5432}, {Protocol: "TCP", Port: 6379},
		{Protocol: "TCP", Port: 9090}, {Protocol: "TCP", Port: 3306}, {Protocol: "UDP", Port: 53},
		{Protocol: "TCP", Port: 53}, {Protocol: "UDP", Port: 123}, {Protocol: "UDP", Port: 5353},
		{Protocol: "SCTP", Port: 38412}, {Protocol: "SCTP", Port: 9899},
	}
	ranges = []policy.Port{
		{Protocol: "TCP", Port: 9000, EndPort: 9100}, {Protocol: "TCP", Port: 30000, EndPort: 32767},
		{Protocol: "UDP", Port: 60000, EndPort: 61000}, {Protocol: "TCP", Port: 8000, EndPort: 8099},
		{Protocol: "UDP"},
	}
)

// gen draws one Set.
type gen struct {
	r    *rand.Rand
	pods [][4]byte
}

// Synthetic is a Set with n rules in each direction (see the package doc).
func Synthetic(n int, seed uint64) policy.Set {
	g := newGen(n, seed)
	s := policy.Set{Ingress: true, Egress: true}
	for i := range n {
		s.IngressRules = append(s.IngressRules, g.rule("ingress", i))
	}
	for i := range n {
		s.EgressRules = append(s.EgressRules, g.rule("egress", i))
	}
	return s
}

func newGen(n int, seed uint64) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x8f1c))}
	// Pods on 64 nodes, a /24 each in 198.18.0.0/16: half as many pods
	// as rules (at least 32), so pods recur across rules.
	for range max(32, n/2) {
		g.pods = append(g.pods, [4]byte{198, 18, byte(g.r.IntN(64)), byte(2 + g.r.IntN(250))})
	}
	return g
}

func (g *gen) rule(dir string, i int) policy.Rule {
	r := policy.Rule{Policy: fmt.Sprintf("NetworkPolicy ns%d/%s-%d", i%7, dir, i/7)}
	switch x := g.r.IntN(100); {
	case x < 45: // pods on ports
		r.Peers, r.Ports = g.podPeers(), g.ports()
	case x < 60: // pods, all ports
		r.Peers, r.AllPorts = g.podPeers(), true
	case x < 70: // pods on a range
		r.Peers, r.Ports = g.podPeers(), []policy.Port{ranges[g.r.IntN(len(ranges))]}
	case x < 82: // an ipBlock inside the cluster, with excepts
		r.Peers, r.Ports = []policy.Peer{g.block()}, g.ports()
	case x < 87: // the world but the cluster
		r.Peers = []policy.Peer{{CIDR: "0.0.0.0/0", Except: []string{"198.18.0.0/15"}}}
		r.Ports = g.ports()
	default: // anyone on ports
		r.AllPeers, r.Ports = true, g.ports()
	}
	return r
}

func (g *gen) podPeers() []policy.Peer {
	ps := make([]policy.Peer, 1+g.r.IntN(4))
	for i := range ps {
		a := g.pods[g.r.IntN(len(g.pods))]
		ps[i] = policy.Peer{CIDR: fmt.Sprintf("%d.%d.%d.%d/32", a[0], a[1], a[2], a[3])}
	}
	return ps
}

func (g *gen) ports() []policy.Port {
	ps := make([]policy.Port, 1+g.r.IntN(2))
	for i := range ps {
		if g.r.IntN(5) == 0 {
			ps[i] = ranges[g.r.IntN(len(ranges))]
		} else {
			ps[i] = single[g.r.IntN(len(single))]
		}
	}
	return ps
}

// block is a /16../28 in 198.18.0.0/15 with up to two excepts.
func (g *gen) block() policy.Peer {
	bits := 16 + g.r.IntN(13)
	x := uint32(198)<<24 | uint32(18)<<16 | g.r.Uint32()&0x1ffff
	x &= ^uint32(0) << (32 - bits)
	p := policy.Peer{CIDR: cidr(x, bits)}
	for range g.r.IntN(3) {
		eb := bits + 1 + g.r.IntN(32-bits)
		e := x | g.r.Uint32()&(1<<(32-bits)-1)
		e &= ^uint32(0) << (32 - eb)
		p.Except = append(p.Except, cidr(e, eb))
	}
	return p
}

func cidr(x uint32, bits int) string {
	return fmt.Sprintf("%d.%d.%d.%d/%d", x>>24, x>>16&0xff, x>>8&0xff, x&0xff, bits)
}

var protos = []uint8{policy.ProtoTCP, policy.ProtoTCP, policy.ProtoTCP, policy.ProtoUDP, policy.ProtoUDP,
	policy.ProtoSCTP, policy.ProtoICMP, 47}

// Packets are n packets to check against s (see the package doc).
func Packets(s *policy.Set, n int, seed uint64) []Packet {
	r := rand.New(rand.NewPCG(seed, 0x51ab))
	out := make([]Packet, n)
	for i := range out {
		p := &out[i]
		p.Dir = policy.Direction(r.IntN(2))
		rules := s.Rules(p.Dir)
		if len(rules) > 0 && r.IntN(2) == 0 {
			// Near one rule: one of its peers, maybe one of its ports.
			ru := &rules[r.IntN(len(rules))]
			p.Peer = peerAddr(r, ru)
			p.Proto, p.Port = policy.ProtoTCP, uint16(r.IntN(1024))
			if len(ru.Ports) > 0 && r.IntN(4) != 0 {
				pt := ru.Ports[r.IntN(len(ru.Ports))]
				p.Proto, _ = policy.ProtoNumber(pt.Protocol)
				p.Port = pt.Port + uint16(r.IntN(int(max(pt.EndPort, pt.Port)-pt.Port)+1))
			}
			continue
		}
		x := uint32(198)<<24 | uint32(18)<<16 | r.Uint32()&0x1ffff
		if r.IntN(8) == 0 {
			x = r.Uint32()
		}
		p.Peer = [4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}
		p.Proto = protos[r.IntN(len(protos))]
		switch p.Proto {
		case policy.ProtoICMP, 47:
		default:
			p.Port = single[r.IntN(len(single))].Port
			if r.IntN(2) == 0 {
				p.Port = uint16(r.Uint32())
			}
		}
	}
	return out
}

// peerAddr is an address inside one of ru's peers (excepts ignored), or
// anywhere in 198.18.0.0/15 for AllPeers.
func peerAddr(r *rand.Rand, ru *policy.Rule) [4]byte {
	if len(ru.Peers) == 0 {
		x := uint32(198)<<24 | uint32(18)<<16 | r.Uint32()&0x1ffff
		return [4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}
	}
	c, err := netip.ParsePrefix(ru.Peers[r.IntN(len(ru.Peers))].CIDR)
	if err != nil || !c.Addr().Is4() {
		return [4]byte{}
	}
	a, bits := c.Masked().Addr().As4(), c.Bits()
	x := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	if bits < 32 {
		x |= r.Uint32() & (1<<(32-bits) - 1)
	}
	return [4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}
}
