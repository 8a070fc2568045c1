package policy

import "net/netip"

// refCompiled is the original linear implementation of Compiled, kept as
// the oracle the classifier is tested against: every rule in order, every
// peer, every except, every port.
type refCompiled struct {
	set   Set
	rules [2][]refRule
}

type refRule struct {
	allPeers, allPorts bool
	peers              []refPeer
	ports              []refPort
}

type refPeer struct {
	net    netip.Prefix
	except []netip.Prefix
}

type refPort struct {
	proto  uint8
	lo, hi uint16
}

func refCompile(s *Set) (*refCompiled, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	c := &refCompiled{set: *s}
	for _, d := range []Direction{Ingress, Egress} {
		for _, r := range s.Rules(d) {
			cr := refRule{allPeers: r.AllPeers, allPorts: r.AllPorts}
			for _, p := range r.Peers {
				n, ex, err := p.parse()
				if err != nil {
					return nil, err
				}
				cr.peers = append(cr.peers, refPeer{net: n, except: ex})
			}
			for _, p := range r.Ports {
				proto, lo, hi, err := p.parse()
				if err != nil {
					return nil, err
				}
				cr.ports = append(cr.ports, refPort{proto: proto, lo: lo, hi: hi})
			}
			c.rules[d] = append(c.rules[d], cr)
		}
	}
	return c, nil
}

func (c *refCompiled) Check(d Direction, peer [4]byte, proto uint8, port uint16) Decision {
	if !c.set.Isolated(d) {
		return NotIsolated
	}
	if d != Ingress {
		d = Egress
	}
	a := netip.AddrFrom4(peer)
	for i := range c.rules[d] {
		if c.rules[d][i].match(a, proto, port) {
			return Decision(i)
		}
	}
	return Denied
}

func (r *refRule) match(a netip.Addr, proto uint8, port uint16) bool {
	return (r.allPeers || r.peerMatch(a)) && (r.allPorts || r.portMatch(proto, port))
}

func (r *refRule) peerMatch(a netip.Addr) bool {
	for i := range r.peers {
		p := &r.peers[i]
		if !p.net.Contains(a) {
			continue
		}
		excepted := false
		for _, e := range p.except {
			if e.Contains(a) {
				excepted = true
				break
			}
		}
		if !excepted {
			return true
		}
	}
	return false
}

func (r *refRule) portMatch(proto uint8, port uint16) bool {
	for _, p := range r.ports {
		if p.proto == proto && port >= p.lo && port <= p.hi {
			return true
		}
	}
	return false
}
