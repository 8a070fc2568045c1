package policy

import (
	"fmt"
	"net/netip"
)

// Decision is the outcome of Compiled.Check: the index of the deciding rule
// (in Set.Rules of the direction) when allowed, or one of the constants.
type Decision int32

const (
	// NotIsolated: the direction is not isolated; allowed.
	NotIsolated Decision = -1
	// Denied: isolated and no rule allows it.
	Denied Decision = -2
)

// Allowed reports whether d lets the packet through.
func (d Decision) Allowed() bool { return d != Denied }

// Compiled is a Set ready for the data path: Check allocates nothing.
type Compiled struct {
	set   Set
	rules [2][]rule
}

type rule struct {
	allPeers, allPorts bool
	peers              []peer
	ports              []portRange
}

type peer struct {
	net    netip.Prefix
	except []netip.Prefix
}

type portRange struct {
	proto  uint8
	lo, hi uint16
}

// Compile validates s and returns its compiled form.
func Compile(s *Set) (*Compiled, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	c := &Compiled{set: *s}
	for _, d := range []Direction{Ingress, Egress} {
		for _, r := range s.Rules(d) {
			cr := rule{allPeers: r.AllPeers, allPorts: r.AllPorts}
			for _, p := range r.Peers {
				n, ex, err := p.parse()
				if err != nil {
					return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
				}
				cr.peers = append(cr.peers, peer{net: n, except: ex})
			}
			for _, p := range r.Ports {
				proto, lo, hi, err := p.parse()
				if err != nil {
					return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
				}
				cr.ports = append(cr.ports, portRange{proto: proto, lo: lo, hi: hi})
			}
			c.rules[d] = append(c.rules[d], cr)
		}
	}
	return c, nil
}

// Set is the Set c was compiled from (do not modify it).
func (c *Compiled) Set() *Set { return &c.set }

// Isolated reports whether c isolates d.
func (c *Compiled) Isolated(d Direction) bool { return c.set.Isolated(d) }

// Check decides a packet crossing the interface in direction d: peer is
// the other end's address (the source for ingress, the destination for
// egress), proto the IP protocol, port the destination port (0 where the
// protocol has none). Safe for concurrent use; no allocation.
func (c *Compiled) Check(d Direction, peer [4]byte, proto uint8, port uint16) Decision {
	if !c.set.Isolated(d) {
		return NotIsolated
	}
	a := netip.AddrFrom4(peer)
	for i := range c.rules[d] {
		if c.rules[d][i].match(a, proto, port) {
			return Decision(i)
		}
	}
	return Denied
}

// Policy names the object behind decision x in direction d: a rule's
// Policy, or "" for NotIsolated and Denied.
func (c *Compiled) Policy(d Direction, x Decision) string {
	r := c.set.Rules(d)
	if x < 0 || int(x) >= len(r) {
		return ""
	}
	return r[x].Policy
}

func (r *rule) match(a netip.Addr, proto uint8, port uint16) bool {
	return (r.allPeers || r.peerMatch(a)) && (r.allPorts || r.portMatch(proto, port))
}

func (r *rule) peerMatch(a netip.Addr) bool {
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

func (r *rule) portMatch(proto uint8, port uint16) bool {
	for _, p := range r.ports {
		if p.proto == proto && port >= p.lo && port <= p.hi {
			return true
		}
	}
	return false
}
