package dataplane

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/policy/policytest"
	"github.com/xvr-project/xvr/vrouter/afxdp"
	"github.com/xvr-project/xvr/vrouter/packet"
)

func compile(t testing.TB, s policy.Set) *policy.Compiled {
	t.Helper()
	c, err := policy.Compile(&s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tcpRule(name string, peers []string, ports ...uint16) policy.Rule {
	r := policy.Rule{Policy: name, AllPeers: peers == nil}
	for _, p := range peers {
		r.Peers = append(r.Peers, policy.Peer{CIDR: p})
	}
	for _, p := range ports {
		r.Ports = append(r.Ports, policy.Port{Protocol: "TCP", Port: p})
	}
	return r
}

// policySnapshot is hostSnapshot with B (vif 2) isolated both ways: ingress
// from A on TCP 80 only, no egress.
func policySnapshot(t testing.TB) *Snapshot {
	s := hostSnapshot(t)
	s.Vifs[2].Name = "x/b eth0"
	s.Vifs[2].Policy = compile(t, policy.Set{Ingress: true, Egress: true,
		IngressRules: []policy.Rule{tcpRule("NetworkPolicy x/allow-a", []string{"198.18.10.1/32"}, 80)}})
	s.PolicyStats = new(PolicyStats)
	s.PolicyGen = 1
	return s
}

func verdictOf(t *testing.T, s *Snapshot, in uint32, f []byte) Verdict {
	t.Helper()
	_, _, v := processWith(s, in, f)
	return v[0]
}

func TestPolicyIngressAndReplies(t *testing.T) {
	s := policySnapshot(t)
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, ipB, 40000, 80)); v != (Verdict{Vif: 2}) {
		t.Fatalf("A -> B:80 (allowed): %+v", v)
	}
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, ipB, 40000, 81)); v.Reason != PolicyDenied {
		t.Fatalf("A -> B:81: %+v, want policy_denied", v)
	}
	// B's egress is isolated with no rule, but the reply of A's connection passes.
	if v := verdictOf(t, s, 2, tcpFrame(t, ipB, ipA, 80, 40000)); v != (Verdict{Vif: 1}) {
		t.Fatalf("B's reply: %+v", v)
	}
	if v := verdictOf(t, s, 2, tcpFrame(t, ipB, ipA, 80, 40001)); v.Reason != PolicyDenied {
		t.Fatalf("B -> A (new, egress denied): %+v", v)
	}
	// Cached: the same denied flow again, from the flow entry.
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, ipB, 40000, 81)); v.Reason != PolicyDenied {
		t.Fatalf("A -> B:81 again: %+v", v)
	}
	if a, d := s.PolicyStats.Allowed.Load(), s.PolicyStats.Denied.Load(); a != 1 || d != 2 {
		t.Fatalf("stats allowed %d denied %d, want 1 and 2", a, d)
	}
	// Unpoliced pairs make no flow.
	n := s.Flows.Len()
	if v := verdictOf(t, s, 1, udpFrame(t, ipA, [4]byte{198, 18, 10, 252}, 64, 10)); v != (Verdict{Vif: 4}) || s.Flows.Len() != n {
		t.Fatalf("A -> host: %+v, flows %d -> %d", v, n, s.Flows.Len())
	}
	// The forward entry says what decided.
	var got []string
	s.Flows.Flows(func(f flowtable.FlowInfo) bool {
		v, by := FlowPolicy(s, f.Fwd.Action)
		got = append(got, fmt.Sprintf("%d>%d %s %s", f.Fwd.Key.SrcPort, f.Fwd.Key.DstPort, v, by))
		return true
	})
	want := []string{"40000>80 allow NetworkPolicy x/allow-a (ingress of x/b eth0)",
		"40000>81 deny default deny (ingress of x/b eth0)", "80>40001 deny default deny (egress of x/b eth0)"}
	for _, w := range want {
		if !strings.Contains(strings.Join(got, "\n"), w) {
			t.Errorf("flows %q lack %q", got, w)
		}
	}
}

func TestPolicyFromTheNode(t *testing.T) {
	s := policySnapshot(t)
	// The node (the host interface's own address) reaches B on any port;
	// B's replies to it pass although B's egress is isolated.
	if v := verdictOf(t, s, 4, tcpFrame(t, ipHost, ipB, 41000, 8080)); v != (Verdict{Vif: 2}) {
		t.Fatalf("node -> B:8080: %+v", v)
	}
	if v := verdictOf(t, s, 2, tcpFrame(t, ipB, ipHost, 8080, 41000)); v != (Verdict{Vif: 4}) {
		t.Fatalf("B -> node (reply): %+v", v)
	}
	var by string
	s.Flows.Flows(func(f flowtable.FlowInfo) bool { _, by = FlowPolicy(s, f.Fwd.Action); return true })
	if by != "from the node (ingress of x/b eth0)" {
		t.Fatalf("decided by %q", by)
	}
}

func TestPolicyChangeDecidesAgain(t *testing.T) {
	s := policySnapshot(t)
	est := tcpFrame(t, ipA, ipB, 40000, 80)
	if v := verdictOf(t, s, 1, est); v != (Verdict{Vif: 2}) {
		t.Fatalf("before: %+v", v)
	}
	// The policy no longer allows port 80: the established flow stops, in
	// both directions.
	deny := *s
	deny.Vifs = append([]Vif(nil), s.Vifs...)
	deny.Vifs[2].Policy = compile(t, policy.Set{Ingress: true, Egress: true})
	deny.PolicyGen = 2
	if v := verdictOf(t, &deny, 1, est); v.Reason != PolicyDenied {
		t.Fatalf("after deny: %+v", v)
	}
	if v := verdictOf(t, &deny, 2, tcpFrame(t, ipB, ipA, 80, 40000)); v.Reason != PolicyDenied {
		t.Fatalf("reply after deny: %+v", v)
	}
	// Allowed again: decided again from the reply's side too.
	allow := *s
	allow.PolicyGen = 3
	if v := verdictOf(t, &allow, 2, tcpFrame(t, ipB, ipA, 80, 40000)); v != (Verdict{Vif: 1}) {
		t.Fatalf("reply after allow: %+v", v)
	}
	if v := verdictOf(t, &allow, 1, est); v != (Verdict{Vif: 2}) {
		t.Fatalf("after allow: %+v", v)
	}
	if s.Flows.Len() != 1 {
		t.Fatalf("%d flows, want 1", s.Flows.Len())
	}
}

func TestPolicyServiceAfterDNAT(t *testing.T) {
	s := hostSnapshot(t)
	s.Vifs[1].Name = "x/a eth0"
	s.Vifs[1].Policy = compile(t, policy.Set{Egress: true,
		EgressRules: []policy.Rule{tcpRule("NetworkPolicy x/to-b", []string{"198.18.10.2/32"}, 8080)}})
	s.PolicyGen = 1
	// Without the Service CIDR, A's packet to a ClusterIP is egress it may not do.
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, clusterIP, 40000, 80)); v.Reason != PolicyDenied {
		t.Fatalf("A -> ClusterIP, no service CIDR: %+v", v)
	}
	s.ServiceNets = []Prefix4{{Net: 0xc6126000, Mask: 0xffffff00}} // 198.18.96.0/24
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, clusterIP, 40001, 80)); v != (Verdict{Vif: 4}) {
		t.Fatalf("A -> ClusterIP: %+v, want the kernel", v)
	}
	// After DNAT, from the host vif with A's source: A's egress applies.
	if v := verdictOf(t, s, 4, tcpFrame(t, ipA, ipB, 40001, 8080)); v != (Verdict{Vif: 2}) {
		t.Fatalf("kernel -> B:8080 for A: %+v", v)
	}
	if v := verdictOf(t, s, 4, tcpFrame(t, ipA, ipB, 40002, 9090)); v.Reason != PolicyDenied {
		t.Fatalf("kernel -> B:9090 for A: %+v, want policy_denied", v)
	}
	// B's reply goes back through the kernel (the host-path flow carries the verdict).
	if v := verdictOf(t, s, 2, tcpFrame(t, ipB, ipA, 8080, 40001)); v != (Verdict{Vif: 4}) {
		t.Fatalf("B's reply: %+v, want the host vif", v)
	}
	// The kernel un-DNATs it: from the ClusterIP to A, whose ingress is
	// isolated with no rule: the reply of A's Service connection passes,
	// a connection from the ClusterIP's address does not.
	s.Vifs[1].Policy = compile(t, policy.Set{Ingress: true, Egress: true,
		EgressRules: []policy.Rule{tcpRule("NetworkPolicy x/to-b", []string{"198.18.10.2/32"}, 8080)}})
	s.PolicyGen = 2
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, clusterIP, 40003, 80)); v != (Verdict{Vif: 4}) {
		t.Fatalf("A -> ClusterIP, ingress isolated: %+v", v)
	}
	if v := verdictOf(t, s, 4, tcpFrame(t, clusterIP, ipA, 80, 40003)); v != (Verdict{Vif: 1}) {
		t.Fatalf("ClusterIP -> A (the reply): %+v", v)
	}
	if v := verdictOf(t, s, 4, tcpFrame(t, clusterIP, ipA, 80, 40009)); v.Reason != PolicyDenied {
		t.Fatalf("ClusterIP -> A (no connection): %+v, want policy_denied", v)
	}
}

func TestPolicyFromTheFabric(t *testing.T) {
	s := overlaySnapshot(t, encap.VXLAN)
	flows, err := flowtable.New(flowtable.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	s.Flows = flows
	s.Vifs[2].Policy = compile(t, policy.Set{Ingress: true,
		IngressRules: []policy.Rule{{Policy: "NetworkPolicy x/udp", AllPeers: true, Ports: []policy.Port{{Protocol: "UDP", Port: 53}}}}})
	decap := func(dport uint16) Verdict {
		inner := udpFrame(t, ipRemote, ipB, 63, 100)
		binary.BigEndian.PutUint16(inner[14+20+2:], dport)
		binary.BigEndian.PutUint16(inner[14+20+6:], 0) // no UDP checksum
		mem, descs := umem(inner)
		o := encap.Outer{SrcMAC: remoteMAC, DstMAC: fabricMAC, Src: remoteIP, Dst: nodeIP}
		off, n, err := encap.Encap(mem[:frameSize], int(descs[0].Addr), int(descs[0].Len), encap.VXLAN, 77, &o, 7)
		if err != nil {
			t.Fatal(err)
		}
		descs[0] = afxdp.Desc{Addr: uint64(off), Len: uint32(n)}
		v := make([]Verdict, 1)
		p := Pipeline{FrameSize: frameSize}
		p.Process(s, mem, descs, 0, v)
		return v[0]
	}
	if v := decap(53); v != (Verdict{Vif: 2}) {
		t.Fatalf("remote -> B:53/udp: %+v", v)
	}
	if v := decap(54); v.Reason != PolicyDenied {
		t.Fatalf("remote -> B:54/udp: %+v", v)
	}
}

func TestPolicySNATEgress(t *testing.T) {
	s := snatSnapshot(t)
	s.Vifs[1].Policy = compile(t, policy.Set{Egress: true,
		EgressRules: []policy.Rule{{Policy: "NetworkPolicy x/web", AllPeers: true, Ports: []policy.Port{{Protocol: "TCP", Port: 443}}}}})
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, outside, 40000, 80)); v.Reason != PolicyDenied || s.Flows.Len() != 0 {
		t.Fatalf("A -> outside:80: %+v, %d flows", v, s.Flows.Len())
	}
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, outside, 40000, 443)); v != (Verdict{Vif: 0}) {
		t.Fatalf("A -> outside:443: %+v", v)
	}
}

func TestPolicyFlowTableFull(t *testing.T) {
	s := policySnapshot(t)
	flows, err := flowtable.New(flowtable.Config{Capacity: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Flows = flows
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, ipB, 40000, 80)); v != (Verdict{Vif: 2}) {
		t.Fatalf("first flow: %+v", v)
	}
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, ipB, 40001, 80)); v.Reason != FlowTableFull {
		t.Fatalf("second flow, table full: %+v, want flow_table_full", v)
	}
	s.Flows = nil
	if v := verdictOf(t, s, 1, tcpFrame(t, ipA, ipB, 40001, 80)); v.Reason != FlowTableFull {
		t.Fatalf("no flow table: %+v", v)
	}
}

func TestPolicyICMPAndClose(t *testing.T) {
	s := policySnapshot(t)
	// B's ingress allows TCP 80 only: a ping is denied (ports rules never match ICMP).
	if v := verdictOf(t, s, 1, pingFrameFrom(t, ipA, ipB)); v.Reason != PolicyDenied {
		t.Fatalf("ping A -> B: %+v", v)
	}
	syn := tcpFrame(t, ipA, ipB, 40000, 80)
	if v := verdictOf(t, s, 1, syn); v != (Verdict{Vif: 2}) {
		t.Fatal(v)
	}
	fin := tcpFrame(t, ipA, ipB, 40000, 80)
	fin[14+20+13] = 0x11 // FIN|ACK (the checksum is not the pipeline's business)
	if v := verdictOf(t, s, 1, fin); v != (Verdict{Vif: 2}) {
		t.Fatal(v)
	}
	closed := false
	s.Flows.Flows(func(f flowtable.FlowInfo) bool { closed = closed || f.Fwd.Closed; return true })
	if !closed {
		t.Fatal("FIN did not close the flow")
	}
}

func pingFrameFrom(t testing.TB, src, dst [4]byte) []byte {
	f := pingFrame(t, dst)
	ip := f[packet.EthLen:]
	copy(ip[12:16], src[:])
	binary.BigEndian.PutUint16(ip[10:12], 0)
	packet.SetIPv4Checksum(ip, 20)
	return f
}

// policyBench is a snapshot where B is isolated with n rules (plus one
// allowing A on TCP 80); n < 0: no policy at all.
func policyBench(b testing.TB, n int) *Snapshot {
	s := hostSnapshot(b)
	flows, err := flowtable.New(flowtable.Config{Capacity: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	s.Flows, s.PolicyStats = flows, new(PolicyStats)
	if n >= 0 {
		set := policytest.Synthetic(n, 1)
		set.IngressRules = append(set.IngressRules, tcpRule("allow-a", []string{"198.18.10.1/32"}, 80))
		set.Egress = false
		s.Vifs[2].Policy = compile(b, set)
	}
	return s
}

func resetTTL(mem []byte, descs []afxdp.Desc) {
	for i := range descs {
		copy(mem[descs[i].Addr:], rtrMAC[:])
		mem[descs[i].Addr+22] = 64
		binary.BigEndian.PutUint16(mem[descs[i].Addr+24:], 0)
		packet.SetIPv4Checksum(mem[descs[i].Addr+14:], 20)
	}
}

func TestPolicyZeroAllocs(t *testing.T) {
	s := policyBench(t, 1000)
	est := tcpFrame(t, ipA, ipB, 40000, 80)
	denied := tcpFrame(t, ipA, ipB, 40000, 81)
	mem, descs := umem(est, denied)
	v := make([]Verdict, 2)
	p := Pipeline{FrameSize: frameSize}
	allocs := testing.AllocsPerRun(200, func() {
		resetTTL(mem, descs)
		p.Process(s, mem, descs, 1, v)
	})
	if allocs != 0 || v[0] != (Verdict{Vif: 2}) || v[1].Reason != PolicyDenied {
		t.Fatalf("established/denied: %v allocations, verdicts %+v", allocs, v)
	}
	sport := uint16(1)
	allocs = testing.AllocsPerRun(200, func() { // a new flow each time
		resetTTL(mem, descs[:1])
		binary.BigEndian.PutUint16(mem[descs[0].Addr+34:], sport)
		sport++
		p.Process(s, mem, descs[:1], 1, v)
	})
	if allocs != 0 || v[0] != (Verdict{Vif: 2}) || s.Flows.Len() < 200 {
		t.Fatalf("flow setup: %v allocations, verdict %+v, %d flows", allocs, v[0], s.Flows.Len())
	}
}

// BenchmarkPolicyEstablished: the packets of one allowed, established flow
// to a pod, with no policy at all (policy=none: no flow lookup) and with
// the pod isolated by 1 or 1000 rules (the verdict comes from the flow
// entry: the rule count must not matter).
func BenchmarkPolicyEstablished(b *testing.B) {
	for _, n := range []int{-1, 1, 1000} {
		name := fmt.Sprintf("rules=%d", n)
		if n < 0 {
			name = "policy=none"
		}
		b.Run(name, func(b *testing.B) {
			s := policyBench(b, n)
			frames := make([][]byte, BatchSize)
			for i := range frames {
				frames[i] = tcpFrame(b, ipA, ipB, 40000, 80)
			}
			mem, descs := umem(frames...)
			v := make([]Verdict, len(descs))
			p := Pipeline{FrameSize: frameSize}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				resetTTL(mem, descs)
				p.Process(s, mem, descs, 1, v)
			}
			if v[0] != (Verdict{Vif: 2}) {
				b.Fatalf("verdict %+v", v[0])
			}
			b.ReportMetric(float64(b.N*len(descs))/b.Elapsed().Seconds(), "pps")
		})
	}
}

// BenchmarkPolicyFlowSetup: every packet is a new flow (a new source port
// and address) to a pod isolated by 1000 rules: policy check, flow insert.
func BenchmarkPolicyFlowSetup(b *testing.B) {
	s := policyBench(b, 1000)
	frames := make([][]byte, BatchSize)
	for i := range frames {
		frames[i] = tcpFrame(b, ipA, ipB, 1, 80)
	}
	mem, descs := umem(frames...)
	v := make([]Verdict, len(descs))
	p := Pipeline{FrameSize: frameSize}
	n := uint32(0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if s.Flows.Len() > 1<<19 {
			b.StopTimer()
			s.Flows.Age(1 << 30)
			b.StartTimer()
		}
		for i := range descs {
			n++
			binary.BigEndian.PutUint16(mem[descs[i].Addr+34:], uint16(n))
			mem[descs[i].Addr+28] = byte(n >> 16) // source 198.18.x.1: a new flow each time
		}
		resetTTL(mem, descs)
		p.Process(s, mem, descs, 1, v)
	}
	b.ReportMetric(float64(b.N*len(descs))/b.Elapsed().Seconds(), "flows/s")
}
