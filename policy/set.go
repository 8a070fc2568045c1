package policy

import (
	"errors"
	"fmt"
	"net/netip"
)

// Direction is which way a packet crosses the interface.
type Direction uint8

// Directions.
const (
	Ingress Direction = iota // to the interface's pod
	Egress                   // from the interface's pod
)

func (d Direction) String() string {
	if d == Ingress {
		return "ingress"
	}
	return "egress"
}

// IP protocol numbers a Port may name.
const (
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoSCTP = 132
)

// Set is one interface's policy: the union of what every policy selecting
// it allows. The zero Set isolates nothing.
type Set struct {
	// Ingress and Egress say the interface is isolated in that direction
	// (a policy selecting it has that policy type).
	Ingress bool `json:"ingress,omitempty"`
	Egress  bool `json:"egress,omitempty"`
	// IngressRules allow traffic to the pod from their peers; EgressRules
	// from the pod to their peers.
	IngressRules []Rule `json:"ingressRules,omitempty"`
	EgressRules  []Rule `json:"egressRules,omitempty"`
}

// Rule allows traffic with its peers on its ports.
type Rule struct {
	// Policy names the object the rule came from, for flows and counters:
	// "NetworkPolicy <ns>/<name>" or "MultiNetworkPolicy <ns>/<name>".
	Policy string `json:"policy"`
	// AllPeers: any address (the upstream rule had no from/to); otherwise
	// Peers (none: the rule matches nothing).
	AllPeers bool   `json:"allPeers,omitempty"`
	Peers    []Peer `json:"peers,omitempty"`
	// AllPorts: any protocol and port (the upstream rule had no ports);
	// otherwise Ports (none: the rule matches nothing).
	AllPorts bool   `json:"allPorts,omitempty"`
	Ports    []Port `json:"ports,omitempty"`
}

// Peer is an IPv4 prefix minus the prefixes in Except (an ipBlock; a pod
// is its address as a /32).
type Peer struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

// Port is a protocol and a destination port range: Port 0 is every port
// of the protocol; EndPort 0 is Port alone.
type Port struct {
	Protocol string `json:"protocol"` // TCP, UDP or SCTP
	Port     uint16 `json:"port,omitempty"`
	EndPort  uint16 `json:"endPort,omitempty"`
}

// Isolated reports whether s isolates d.
func (s *Set) Isolated(d Direction) bool {
	if d == Ingress {
		return s.Ingress
	}
	return s.Egress
}

// Rules are s's rules for d.
func (s *Set) Rules(d Direction) []Rule {
	if d == Ingress {
		return s.IngressRules
	}
	return s.EgressRules
}

// ProtoNumber is the IP protocol number of a Port's Protocol.
func ProtoNumber(name string) (uint8, error) {
	switch name {
	case "TCP", "":
		return ProtoTCP, nil
	case "UDP":
		return ProtoUDP, nil
	case "SCTP":
		return ProtoSCTP, nil
	}
	return 0, fmt.Errorf("protocol %q: want TCP, UDP or SCTP", name)
}

// ErrInvalid wraps every validation error of Validate and Compile.
var ErrInvalid = errors.New("invalid policy")

// MaxRules is the most rules a Set may have in one direction.
const MaxRules = 65535

// Validate checks every rule of s: IPv4 CIDRs, excepts inside their CIDR,
// known protocols, port ranges, at most MaxRules rules per direction.
func (s *Set) Validate() error {
	for _, d := range []Direction{Ingress, Egress} {
		if n := len(s.Rules(d)); n > MaxRules {
			return fmt.Errorf("%w: %d %s rules, at most %d", ErrInvalid, n, d, MaxRules)
		}
		for i := range s.Rules(d) {
			if err := s.Rules(d)[i].validate(); err != nil {
				return fmt.Errorf("%w: %s rule %d: %w", ErrInvalid, d, i, err)
			}
		}
	}
	return nil
}

func (r *Rule) validate() error {
	for _, p := range r.Peers {
		if _, _, err := p.parse(); err != nil {
			return err
		}
	}
	for _, p := range r.Ports {
		if _, _, _, err := p.parse(); err != nil {
			return err
		}
	}
	return nil
}

// parse returns the peer's prefix and its excepts.
func (p *Peer) parse() (netip.Prefix, []netip.Prefix, error) {
	c, err := parsePrefix(p.CIDR)
	if err != nil {
		return c, nil, err
	}
	ex := make([]netip.Prefix, 0, len(p.Except))
	for _, s := range p.Except {
		e, err := parsePrefix(s)
		if err != nil {
			return c, nil, err
		}
		if e.Bits() < c.Bits() || !c.Contains(e.Addr()) {
			return c, nil, fmt.Errorf("except %s is not inside %s", e, c)
		}
		ex = append(ex, e)
	}
	return c, ex, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("cidr %q: %w", s, err)
	}
	if !p.Addr().Is4() {
		return p, fmt.Errorf("cidr %q is not IPv4", s)
	}
	return p.Masked(), nil
}

// parse returns the port's protocol number and inclusive range.
func (p *Port) parse() (proto uint8, lo, hi uint16, err error) {
	proto, err = ProtoNumber(p.Protocol)
	if err != nil {
		return 0, 0, 0, err
	}
	switch {
	case p.Port == 0 && p.EndPort != 0:
		return 0, 0, 0, fmt.Errorf("endPort %d without port", p.EndPort)
	case p.Port == 0:
		return proto, 0, 65535, nil
	case p.EndPort == 0:
		return proto, p.Port, p.Port, nil
	case p.EndPort < p.Port:
		return 0, 0, 0, fmt.Errorf("endPort %d below port %d", p.EndPort, p.Port)
	}
	return proto, p.Port, p.EndPort, nil
}

// Clone is a deep copy of s.
func (s *Set) Clone() Set {
	out := Set{Ingress: s.Ingress, Egress: s.Egress}
	out.IngressRules = cloneRules(s.IngressRules)
	out.EgressRules = cloneRules(s.EgressRules)
	return out
}

func cloneRules(rs []Rule) []Rule {
	if rs == nil {
		return nil
	}
	out := make([]Rule, len(rs))
	for i, r := range rs {
		out[i] = r
		if r.Peers != nil {
			out[i].Peers = make([]Peer, len(r.Peers))
			for j, p := range r.Peers {
				out[i].Peers[j] = Peer{CIDR: p.CIDR, Except: append([]string(nil), p.Except...)}
			}
		}
		out[i].Ports = append([]Port(nil), r.Ports...)
	}
	return out
}
