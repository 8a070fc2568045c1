package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func ip(a, b, c, d byte) [4]byte { return [4]byte{a, b, c, d} }

func mustCompile(t testing.TB, s *Set) *Compiled {
	t.Helper()
	c, err := Compile(s)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

type probe struct {
	d     Direction
	peer  [4]byte
	proto uint8
	port  uint16
	want  Decision
}

func TestCheckTable(t *testing.T) {
	tcp := func(p, e uint16) Port { return Port{Protocol: "TCP", Port: p, EndPort: e} }
	tests := []struct {
		name   string
		set    Set
		probes []probe
	}{
		{"not isolated allows all", Set{IngressRules: []Rule{{Policy: "p"}}}, []probe{
			{Ingress, ip(198, 18, 0, 1), ProtoTCP, 80, NotIsolated},
			{Egress, ip(0, 0, 0, 0), ProtoICMP, 0, NotIsolated},
		}},
		{"isolated without rules denies", Set{Ingress: true, Egress: true}, []probe{
			{Ingress, ip(198, 18, 0, 1), ProtoTCP, 80, Denied},
			{Egress, ip(255, 255, 255, 255), ProtoUDP, 53, Denied},
			{Egress, ip(0, 0, 0, 0), ProtoICMP, 0, Denied},
		}},
		{"one direction isolated", Set{Egress: true}, []probe{
			{Ingress, ip(1, 2, 3, 4), ProtoTCP, 1, NotIsolated},
			{Egress, ip(1, 2, 3, 4), ProtoTCP, 1, Denied},
		}},
		{"except at the CIDR edges", Set{Ingress: true, IngressRules: []Rule{{
			Peers:    []Peer{{CIDR: "198.18.0.0/24", Except: []string{"198.18.0.0/28", "198.18.0.240/28"}}},
			AllPorts: true,
		}}}, []probe{
			{Ingress, ip(198, 17, 255, 255), ProtoTCP, 80, Denied},
			{Ingress, ip(198, 18, 0, 0), ProtoTCP, 80, Denied},
			{Ingress, ip(198, 18, 0, 15), ProtoTCP, 80, Denied},
			{Ingress, ip(198, 18, 0, 16), ProtoTCP, 80, 0},
			{Ingress, ip(198, 18, 0, 239), ProtoTCP, 80, 0},
			{Ingress, ip(198, 18, 0, 240), ProtoTCP, 80, Denied},
			{Ingress, ip(198, 18, 0, 255), ProtoTCP, 80, Denied},
			{Ingress, ip(198, 18, 1, 0), ProtoTCP, 80, Denied},
		}},
		{"except equal to the CIDR matches nothing", Set{Ingress: true, IngressRules: []Rule{{
			Peers: []Peer{{CIDR: "198.18.0.0/24", Except: []string{"198.18.0.0/24"}}}, AllPorts: true,
		}}}, []probe{
			{Ingress, ip(198, 18, 0, 7), ProtoTCP, 80, Denied},
		}},
		{"another peer of the rule covers the except", Set{Ingress: true, IngressRules: []Rule{{
			Peers: []Peer{
				{CIDR: "198.18.0.0/16", Except: []string{"198.18.1.0/24"}},
				{CIDR: "198.18.1.5/32"},
			}, AllPorts: true,
		}}}, []probe{
			{Ingress, ip(198, 18, 1, 4), ProtoTCP, 80, Denied},
			{Ingress, ip(198, 18, 1, 5), ProtoTCP, 80, 0},
			{Ingress, ip(198, 18, 2, 5), ProtoTCP, 80, 0},
		}},
		{"endPort inclusive", Set{Egress: true, EgressRules: []Rule{{
			AllPeers: true, Ports: []Port{tcp(8000, 8080)},
		}}}, []probe{
			{Egress, ip(9, 9, 9, 9), ProtoTCP, 7999, Denied},
			{Egress, ip(9, 9, 9, 9), ProtoTCP, 8000, 0},
			{Egress, ip(9, 9, 9, 9), ProtoTCP, 8080, 0},
			{Egress, ip(9, 9, 9, 9), ProtoTCP, 8081, Denied},
			{Egress, ip(9, 9, 9, 9), ProtoUDP, 8000, Denied},
		}},
		{"port edges and port 0 is all ports", Set{Egress: true, EgressRules: []Rule{
			{AllPeers: true, Ports: []Port{tcp(65535, 0), {Protocol: "SCTP", Port: 1}}},
			{AllPeers: true, Ports: []Port{{Protocol: "UDP"}}},
		}}, []probe{
			{Egress, ip(9, 9, 9, 9), ProtoTCP, 65535, 0},
			{Egress, ip(9, 9, 9, 9), ProtoTCP, 65534, Denied},
			{Egress, ip(9, 9, 9, 9), ProtoTCP, 0, Denied},
			{Egress, ip(9, 9, 9, 9), ProtoSCTP, 1, 0},
			{Egress, ip(9, 9, 9, 9), ProtoSCTP, 0, Denied},
			{Egress, ip(9, 9, 9, 9), ProtoSCTP, 2, Denied},
			{Egress, ip(9, 9, 9, 9), ProtoUDP, 0, 1},
			{Egress, ip(9, 9, 9, 9), ProtoUDP, 65535, 1},
		}},
		{"/0 and /32", Set{Ingress: true, IngressRules: []Rule{
			{Peers: []Peer{{CIDR: "198.18.0.9/32"}}, Ports: []Port{tcp(80, 0)}},
			{Peers: []Peer{{CIDR: "0.0.0.0/0"}}, Ports: []Port{tcp(443, 0)}},
			{Peers: []Peer{{CIDR: "255.255.255.255/32"}}, AllPorts: true},
			{Peers: []Peer{{CIDR: "0.0.0.0/32"}}, AllPorts: true},
		}}, []probe{
			{Ingress, ip(198, 18, 0, 9), ProtoTCP, 80, 0},
			{Ingress, ip(198, 18, 0, 8), ProtoTCP, 80, Denied},
			{Ingress, ip(198, 18, 0, 10), ProtoTCP, 80, Denied},
			{Ingress, ip(0, 0, 0, 0), ProtoTCP, 443, 1},
			{Ingress, ip(255, 255, 255, 255), ProtoTCP, 443, 1},
			{Ingress, ip(255, 255, 255, 255), ProtoTCP, 80, 2},
			{Ingress, ip(255, 255, 255, 254), ProtoTCP, 80, Denied},
			{Ingress, ip(0, 0, 0, 0), ProtoICMP, 0, 3},
			{Ingress, ip(0, 0, 0, 1), ProtoICMP, 0, Denied},
		}},
		{"AllPorts matches ICMP, a ports rule never does", Set{Egress: true, EgressRules: []Rule{
			{AllPeers: true, Ports: []Port{{Protocol: "TCP"}, {Protocol: "UDP"}, {Protocol: "SCTP"}}},
			{Peers: []Peer{{CIDR: "198.18.0.0/15"}}, AllPorts: true},
		}}, []probe{
			{Egress, ip(8, 8, 8, 8), ProtoICMP, 0, Denied},
			{Egress, ip(8, 8, 8, 8), ProtoICMP, 7, Denied},
			{Egress, ip(8, 8, 8, 8), 47, 0, Denied},
			{Egress, ip(198, 19, 1, 1), ProtoICMP, 0, 1},
			{Egress, ip(198, 19, 1, 1), 47, 0, 1},
			{Egress, ip(198, 19, 1, 1), ProtoTCP, 22, 0},
		}},
		{"first matching rule wins", Set{Ingress: true, IngressRules: []Rule{
			{Policy: "a", Peers: []Peer{{CIDR: "198.18.0.0/16"}}, Ports: []Port{tcp(81, 0)}},
			{Policy: "b", AllPeers: true, AllPorts: true},
			{Policy: "c", Peers: []Peer{{CIDR: "198.18.0.1/32"}}, AllPorts: true},
		}}, []probe{
			{Ingress, ip(198, 18, 0, 1), ProtoTCP, 81, 0},
			{Ingress, ip(198, 18, 0, 1), ProtoTCP, 80, 1},
			{Ingress, ip(1, 1, 1, 1), ProtoICMP, 0, 1},
		}},
		{"rules without peers or ports match nothing", Set{Ingress: true, IngressRules: []Rule{
			{AllPorts: true},
			{AllPeers: true},
			{Peers: []Peer{{CIDR: "0.0.0.0/0"}}},
		}}, []probe{
			{Ingress, ip(1, 1, 1, 1), ProtoTCP, 80, Denied},
			{Ingress, ip(1, 1, 1, 1), ProtoICMP, 0, Denied},
		}},
		{"rule 64 and beyond", Set{Ingress: true, IngressRules: append(make([]Rule, 200),
			Rule{Policy: "last", Peers: []Peer{{CIDR: "198.18.0.1/32"}}, AllPorts: true})}, []probe{
			{Ingress, ip(198, 18, 0, 1), ProtoUDP, 5, 200},
			{Ingress, ip(198, 18, 0, 2), ProtoUDP, 5, Denied},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCompile(t, &tt.set)
			ref, err := refCompile(&tt.set)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.probes {
				got := c.Check(p.d, p.peer, p.proto, p.port)
				if got != p.want {
					t.Errorf("Check(%v, %v, %d, %d) = %d, want %d", p.d, p.peer, p.proto, p.port, got, p.want)
				}
				if r := ref.Check(p.d, p.peer, p.proto, p.port); r != p.want {
					t.Errorf("reference Check(%v, %v, %d, %d) = %d, want %d (table wrong?)", p.d, p.peer, p.proto, p.port, r, p.want)
				}
			}
		})
	}
}

func TestPolicyName(t *testing.T) {
	s := Set{Ingress: true, IngressRules: []Rule{
		{Policy: "NetworkPolicy x/a", Peers: []Peer{{CIDR: "198.18.0.0/24"}}, AllPorts: true},
		{Policy: "NetworkPolicy x/b", AllPeers: true, AllPorts: true},
	}}
	c := mustCompile(t, &s)
	for _, tt := range []struct {
		peer [4]byte
		want string
	}{{ip(198, 18, 0, 3), "NetworkPolicy x/a"}, {ip(198, 18, 1, 3), "NetworkPolicy x/b"}} {
		x := c.Check(Ingress, tt.peer, ProtoTCP, 80)
		if got := c.Policy(Ingress, x); got != tt.want {
			t.Errorf("Policy of %v = %q, want %q", tt.peer, got, tt.want)
		}
	}
	for _, x := range []Decision{NotIsolated, Denied, 2, 1000} {
		if got := c.Policy(Ingress, x); got != "" {
			t.Errorf("Policy(%d) = %q, want empty", x, got)
		}
	}
	if !c.Isolated(Ingress) || c.Isolated(Egress) {
		t.Errorf("Isolated = %v, %v", c.Isolated(Ingress), c.Isolated(Egress))
	}
	if c.Set().IngressRules[1].Policy != "NetworkPolicy x/b" {
		t.Errorf("Set() is not the compiled Set")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, s := range []Set{
		{IngressRules: []Rule{{Peers: []Peer{{CIDR: "2001:db8::/32"}}}}},
		{IngressRules: []Rule{{Peers: []Peer{{CIDR: "198.18.0.0/33"}}}}},
		{EgressRules: []Rule{{Peers: []Peer{{CIDR: "198.18.0.0/24", Except: []string{"198.19.0.0/24"}}}}}},
		{EgressRules: []Rule{{Peers: []Peer{{CIDR: "198.18.0.0/24", Except: []string{"198.18.0.0/16"}}}}}},
		{EgressRules: []Rule{{Ports: []Port{{Protocol: "ICMP"}}}}},
		{EgressRules: []Rule{{Ports: []Port{{Protocol: "TCP", Port: 80, EndPort: 79}}}}},
		{EgressRules: []Rule{{Ports: []Port{{Protocol: "TCP", EndPort: 79}}}}},
		{IngressRules: make([]Rule, MaxRules+1)},
	} {
		if _, err := Compile(&s); !errors.Is(err, ErrInvalid) {
			t.Errorf("Compile(%+v): %v, want ErrInvalid", s.Rules(Ingress), err)
		}
	}
	s := Set{Ingress: true, IngressRules: make([]Rule, MaxRules)}
	s.IngressRules[MaxRules-1] = Rule{AllPeers: true, AllPorts: true}
	c := mustCompile(t, &s)
	if got := c.Check(Ingress, ip(1, 1, 1, 1), ProtoTCP, 1); got != MaxRules-1 {
		t.Errorf("last of MaxRules rules: %d", got)
	}
}

// randomSet is a Set drawn to make rules overlap: addresses from a few
// small blocks (and the whole space), few ports, every shape of rule.
func randomSet(r *rand.Rand, maxRules int) Set {
	s := Set{Ingress: r.IntN(8) != 0, Egress: r.IntN(8) != 0}
	for d := range 2 {
		rules := make([]Rule, r.IntN(maxRules+1))
		for i := range rules {
			rules[i] = randomRule(r, i)
		}
		if d == 0 {
			s.IngressRules = rules
		} else {
			s.EgressRules = rules
		}
	}
	return s
}

func randomRule(r *rand.Rand, i int) Rule {
	ru := Rule{Policy: fmt.Sprintf("NetworkPolicy ns/p%d", i)}
	switch r.IntN(10) {
	case 0:
		ru.AllPeers = true
	case 1: // no peers: matches nothing
	default:
		for range 1 + r.IntN(3) {
			ru.Peers = append(ru.Peers, randomPeer(r))
		}
	}
	switch r.IntN(10) {
	case 0, 1:
		ru.AllPorts = true
	case 2: // no ports
	default:
		for range 1 + r.IntN(3) {
			ru.Ports = append(ru.Ports, randomPort(r))
		}
	}
	return ru
}

var blocks = [][4]byte{{198, 18, 0, 0}, {198, 18, 1, 0}, {198, 19, 255, 0}, {0, 0, 0, 0}, {255, 255, 255, 0}}

func randomAddr(r *rand.Rand) [4]byte {
	a := blocks[r.IntN(len(blocks))]
	a[3] = byte(r.IntN(256))
	if r.IntN(8) == 0 {
		binary.BigEndian.PutUint32(a[:], r.Uint32())
	}
	return a
}

func randomPeer(r *rand.Rand) Peer {
	a := randomAddr(r)
	bits := []int{32, 32, 32, 31, 30, 28, 26, 24, 23, 16, 15, 8, 1, 0}[r.IntN(14)]
	p := Peer{CIDR: prefixString(a, bits)}
	if bits < 32 && r.IntN(3) == 0 {
		for range 1 + r.IntN(3) {
			eb := bits + r.IntN(33-bits)
			// an address inside the CIDR: keep its first bits bits.
			x := binary.BigEndian.Uint32(a[:])
			var mask uint32
			if bits > 0 {
				mask = ^uint32(0) << (32 - bits)
			}
			e := x&mask | randomAddrUint(r)&^mask
			var ea [4]byte
			binary.BigEndian.PutUint32(ea[:], e)
			p.Except = append(p.Except, prefixString(ea, eb))
		}
	}
	return p
}

func randomAddrUint(r *rand.Rand) uint32 {
	a := randomAddr(r)
	return binary.BigEndian.Uint32(a[:])
}

func prefixString(a [4]byte, bits int) string {
	return fmt.Sprintf("%d.%d.%d.%d/%d", a[0], a[1], a[2], a[3], bits)
}

var protos = []string{"TCP", "UDP", "SCTP", ""}

func randomPort(r *rand.Rand) Port {
	p := Port{Protocol: protos[r.IntN(len(protos))]}
	switch r.IntN(6) {
	case 0: // all ports
	case 1, 2:
		p.Port = randomPortNumber(r)
	default:
		p.Port = randomPortNumber(r)
		p.EndPort = p.Port + uint16(r.IntN(int(65535-p.Port)+1)%200)
	}
	return p
}

var portNumbers = []uint16{1, 53, 79, 80, 81, 443, 8080, 65534, 65535}

func randomPortNumber(r *rand.Rand) uint16 {
	if r.IntN(3) == 0 {
		return uint16(1 + r.IntN(65535))
	}
	return portNumbers[r.IntN(len(portNumbers))]
}

var packetProtos = []uint8{ProtoTCP, ProtoUDP, ProtoSCTP, ProtoICMP, 0, 47, 255}

// edgeAddrs are the first and last addresses of s's CIDRs and excepts and
// their neighbours: where an off-by-one would show.
func edgeAddrs(s *Set) [][4]byte {
	var out [][4]byte
	add := func(cidr string) {
		p, err := parsePrefix(cidr)
		if err != nil {
			return
		}
		lo, end := span(p)
		for _, x := range []uint64{lo - 1, lo, end - 1, end} {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], uint32(x))
			out = append(out, a)
		}
	}
	for _, d := range []Direction{Ingress, Egress} {
		for _, ru := range s.Rules(d) {
			for _, p := range ru.Peers {
				add(p.CIDR)
				for _, e := range p.Except {
					add(e)
				}
			}
		}
	}
	return out
}

func edgePorts(s *Set) []uint16 {
	out := []uint16{0, 1, 65535}
	for _, d := range []Direction{Ingress, Egress} {
		for _, ru := range s.Rules(d) {
			for _, p := range ru.Ports {
				out = append(out, p.Port-1, p.Port, p.Port+1, p.EndPort, p.EndPort+1)
			}
		}
	}
	return out
}

// TestCheckMatchesReference compares the classifier with the linear
// reference on random sets: every edge address and port of the set, and
// random packets.
func TestCheckMatchesReference(t *testing.T) {
	sets, packets := 3000, 0
	if testing.Short() {
		sets = 300
	}
	for seed := range uint64(sets) {
		r := rand.New(rand.NewPCG(seed, 15))
		s := randomSet(r, []int{3, 10, 70, 200}[seed%4])
		c := mustCompile(t, &s)
		ref, err := refCompile(&s)
		if err != nil {
			t.Fatal(err)
		}
		check := func(d Direction, a [4]byte, proto uint8, port uint16) {
			packets++
			got, want := c.Check(d, a, proto, port), ref.Check(d, a, proto, port)
			if got != want {
				t.Fatalf("seed %d: Check(%v, %v, %d, %d) = %d, reference %d\nset %+v", seed, d, a, proto, port, got, want, s)
			}
		}
		addrs, ports := edgeAddrs(&s), edgePorts(&s)
		for _, d := range []Direction{Ingress, Egress, 7} {
			for _, a := range addrs {
				check(d, a, packetProtos[r.IntN(len(packetProtos))], ports[r.IntN(len(ports))])
			}
			for range 50 {
				check(d, addrs0(r, addrs), packetProtos[r.IntN(len(packetProtos))], ports[r.IntN(len(ports))])
				check(d, randomAddr(r), packetProtos[r.IntN(len(packetProtos))], uint16(r.Uint32()))
			}
		}
	}
	t.Logf("%d sets, %d packets agree with the reference", sets, packets)
}

func addrs0(r *rand.Rand, addrs [][4]byte) [4]byte {
	if len(addrs) == 0 {
		return randomAddr(r)
	}
	return addrs[r.IntN(len(addrs))]
}

func TestCheckAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := randomSet(r, 500)
	s.Ingress, s.Egress = true, true
	c := mustCompile(t, &s)
	var sink Decision
	n := testing.AllocsPerRun(1000, func() {
		a := randomAddr(r)
		sink += c.Check(Ingress, a, ProtoTCP, 80)
		sink += c.Check(Egress, a, ProtoUDP, 53)
		sink += c.Check(Egress, a, ProtoICMP, 0)
	})
	if n != 0 {
		t.Errorf("Check allocates %v times per run, want 0", n)
	}
	_ = sink
}
