package agent

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
)

// podPort is a CNI-made port of pod x/<name> (uid) on vn-left-1.
func podPort(id, veth, ip, name, uid string) api.Port {
	return api.Port{ID: id, Network: "default/vn-left-1", HostIfName: veth, IP: ip,
		Pod: &api.PodRef{Namespace: "x", Name: name, UID: uid}, IfName: "eth0"}
}

func ingressOnly(name string) policy.Set {
	return policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: "NetworkPolicy x/" + name, AllPeers: true,
		Ports: []policy.Port{{Protocol: "TCP", Port: 80}}}}}
}

func entryFor(pod, uid string, set policy.Set) api.InterfacePolicy {
	return api.InterfacePolicy{Pod: api.PodRef{Namespace: "x", Name: pod, UID: uid}, Network: "default/vn-left-1", Policy: set}
}

// policyRig has vn-left-1 with x/a (uid ua, vif 1), x/b (no uid, vif 2)
// and a hand-made port "hand" (vif 3).
func policyRig(t *testing.T, store *memStore) *rig {
	t.Helper()
	r := newRig(t, store)
	r.links["veth-c"] = 12
	if _, err := r.a.ApplyNetwork(ctx, left()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []api.Port{podPort("ca/eth0", "veth-a", "198.18.10.1", "a", "ua"),
		podPort("cb/eth0", "veth-b", "198.18.10.2", "b", ""),
		{ID: "hand", Network: "default/vn-left-1", HostIfName: "veth-c", IP: "198.18.10.3"}} {
		if _, err := r.a.ApplyPort(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func setPolicies(t *testing.T, r *rig, p api.Policies) {
	t.Helper()
	if err := r.a.SetPolicies(ctx, p); err != nil {
		t.Fatal(err)
	}
}

func TestPoliciesMatchAndPending(t *testing.T) {
	r := policyRig(t, newMemStore())
	s := r.cur.Load()
	for vif := 1; vif <= 3; vif++ {
		if s.Vifs[vif].Policy != nil {
			t.Fatalf("vif %d policed before any policy: %+v", vif, s.Vifs[vif])
		}
	}
	if s.Vifs[1].Name != "x/a eth0" || s.Vifs[3].Name != "hand" {
		t.Fatalf("vif names %q, %q; want \"x/a eth0\" and the port id \"hand\"", s.Vifs[1].Name, s.Vifs[3].Name)
	}

	setPolicies(t, r, api.Policies{Enforce: true, Interfaces: []api.InterfacePolicy{entryFor("a", "", ingressOnly("web"))}})
	s = r.cur.Load()
	a, b, hand := s.Vifs[1].Policy, s.Vifs[2].Policy, s.Vifs[3].Policy
	if a == nil || !a.Isolated(policy.Ingress) || a.Isolated(policy.Egress) {
		t.Fatalf("x/a: %+v; want its entry (ingress isolated only)", a)
	}
	if a.Check(policy.Ingress, [4]byte{198, 18, 10, 2}, 6, 80) == policy.Denied ||
		a.Check(policy.Ingress, [4]byte{198, 18, 10, 2}, 6, 81) != policy.Denied {
		t.Fatal("x/a's compiled policy does not allow exactly TCP 80 in")
	}
	if b != pending || !b.Isolated(policy.Ingress) || !b.Isolated(policy.Egress) || len(b.Set().IngressRules) != 0 {
		t.Fatalf("x/b without an entry while enforcing: %p %+v; want the shared pending policy", b, b)
	}
	if hand != nil {
		t.Fatalf("hand-made port without a pod policed: %+v", hand)
	}

	setPolicies(t, r, api.Policies{Interfaces: []api.InterfacePolicy{entryFor("a", "", ingressOnly("web"))}})
	s = r.cur.Load()
	if s.Vifs[1].Policy == nil || s.Vifs[2].Policy != nil {
		t.Fatalf("not enforcing: x/a %v, x/b %v; want x/a's entry and x/b unpoliced", s.Vifs[1].Policy, s.Vifs[2].Policy)
	}
}

func TestPoliciesUIDAndNetwork(t *testing.T) {
	r := policyRig(t, newMemStore())
	other := entryFor("b", "", ingressOnly("other-net"))
	other.Network = "default/vn-right"
	setPolicies(t, r, api.Policies{Enforce: true, Interfaces: []api.InterfacePolicy{
		entryFor("a", "old-uid", ingressOnly("old")), // another incarnation of x/a
		other,
	}})
	s := r.cur.Load()
	if s.Vifs[1].Policy != pending || s.Vifs[2].Policy != pending {
		t.Fatalf("another uid's entry / another network's entry matched: %v %v; want pending for both",
			s.Vifs[1].Policy, s.Vifs[2].Policy)
	}
	setPolicies(t, r, api.Policies{Enforce: true, Interfaces: []api.InterfacePolicy{
		entryFor("a", "", ingressOnly("any-uid")),
		entryFor("a", "ua", ingressOnly("exact")),
		entryFor("b", "ub", ingressOnly("b")), // the port has no uid: matches
	}})
	s = r.cur.Load()
	if got := s.Vifs[1].Policy; got == nil || got.Set().IngressRules[0].Policy != "NetworkPolicy x/exact" {
		t.Fatalf("x/a: %+v; want the entry with its exact uid", got)
	}
	if got := s.Vifs[2].Policy; got == nil || got == pending {
		t.Fatalf("x/b (no uid on the port): %+v; want the entry with a uid", got)
	}
}

func TestPoliciesGeneration(t *testing.T) {
	st := newMemStore()
	r := policyRig(t, st)
	gen0 := r.cur.Load().PolicyGen
	in := api.Policies{Enforce: true, Interfaces: []api.InterfacePolicy{entryFor("a", "", ingressOnly("web"))}}
	setPolicies(t, r, in)
	s1 := r.cur.Load()
	if s1.PolicyGen == gen0 {
		t.Fatal("PolicyGen unchanged although vifs became policed")
	}
	setPolicies(t, r, in)
	if s := r.cur.Load(); s != s1 || st.puts != 1 {
		t.Fatalf("the same policies again: new snapshot %v, %d stores; want none and 1", s != s1, st.puts)
	}
	// An entry for a pod not on this node: x/a's policy is the same pointer.
	in.Interfaces = append(in.Interfaces, entryFor("elsewhere", "", ingressOnly("web")))
	setPolicies(t, r, in)
	s2 := r.cur.Load()
	if s2.PolicyGen != s1.PolicyGen || s2.Vifs[1].Policy != s1.Vifs[1].Policy {
		t.Fatalf("unrelated entry: gen %d -> %d; want unchanged", s1.PolicyGen, s2.PolicyGen)
	}
	// An unrelated change (a hand-made port) publishes with the same generation.
	r.links["veth-d"] = 13
	if _, err := r.a.ApplyPort(ctx, api.Port{ID: "hand2", Network: "default/vn-left-1", HostIfName: "veth-d", IP: "198.18.10.4"}); err != nil {
		t.Fatal(err)
	}
	if s := r.cur.Load(); s == s2 || s.PolicyGen != s2.PolicyGen {
		t.Fatalf("port change: gen %d -> %d; want a new snapshot with the same generation", s2.PolicyGen, s.PolicyGen)
	}
	in.Interfaces[0].Policy = ingressOnly("changed")
	setPolicies(t, r, in)
	if s := r.cur.Load(); s.PolicyGen == s2.PolicyGen {
		t.Fatal("x/a's policy changed and PolicyGen did not")
	}
	// A new pod while enforcing is policed (pending) at once: a new generation.
	gen := r.cur.Load().PolicyGen
	r.links["veth-e"] = 14
	if _, err := r.a.ApplyPort(ctx, podPort("ce/eth0", "veth-e", "198.18.10.5", "e", "ue")); err != nil {
		t.Fatal(err)
	}
	if s := r.cur.Load(); s.PolicyGen == gen || s.Vifs[5].Policy != pending {
		t.Fatalf("new pod: gen %d -> %d, policy %v; want a new generation and pending", gen, s.PolicyGen, s.Vifs[5].Policy)
	}
}

func TestPoliciesInvalid(t *testing.T) {
	st := newMemStore()
	r := policyRig(t, st)
	good := entryFor("a", "", ingressOnly("web"))
	bad := entryFor("b", "", policy.Set{Egress: true, EgressRules: []policy.Rule{{Policy: "NetworkPolicy x/bad", AllPorts: true,
		Peers: []policy.Peer{{CIDR: "198.18.0.0/33"}}}}})
	err := r.a.SetPolicies(ctx, api.Policies{Enforce: true, Interfaces: []api.InterfacePolicy{good, bad}})
	wantStatus(t, err, http.StatusBadRequest)
	if !strings.Contains(err.Error(), "interfaces[1]") || !strings.Contains(err.Error(), "x/b") {
		t.Fatalf("error %q does not name the bad entry (interfaces[1], pod x/b)", err)
	}
	err = r.a.SetPolicies(ctx, api.Policies{Interfaces: []api.InterfacePolicy{{Pod: api.PodRef{Namespace: "x", Name: "a"}}}})
	wantStatus(t, err, http.StatusBadRequest)
	err = r.a.SetPolicies(ctx, api.Policies{Interfaces: []api.InterfacePolicy{good, good}})
	wantStatus(t, err, http.StatusBadRequest)
	if st.puts != 0 || r.a.Policies(ctx).Enforce || r.cur.Load().Vifs[1].Policy != nil {
		t.Fatal("a refused policy was stored or applied")
	}
}

func TestPoliciesSurviveRestart(t *testing.T) {
	st := newMemStore()
	r := policyRig(t, st)
	in := api.Policies{Enforce: true, Interfaces: []api.InterfacePolicy{entryFor("a", "ua", ingressOnly("web"))}}
	setPolicies(t, r, in)
	if got := r.a.Policies(ctx); !got.Enforce || len(got.Interfaces) != 1 || got.Interfaces[0].Policy.IngressRules[0].Policy != "NetworkPolicy x/web" {
		t.Fatalf("Policies: %+v; want what was set", got)
	}
	r2 := newRig(t, st) // xvrd restarted without the API server
	s := r2.cur.Load()
	if a := s.Vifs[1].Policy; a == nil || a == pending || !a.Isolated(policy.Ingress) {
		t.Fatalf("after restart x/a: %+v; want its stored entry", a)
	}
	if s.Vifs[2].Policy != pending {
		t.Fatalf("after restart x/b: %v; want pending (still enforcing)", s.Vifs[2].Policy)
	}
	if got := r2.a.Policies(ctx); !got.Enforce || len(got.Interfaces) != 1 {
		t.Fatalf("after restart Policies: %+v", got)
	}
}

func TestFlowsWithoutFabric(t *testing.T) {
	flows, err := flowtable.New(flowtable.Config{Capacity: 1024})
	if err != nil {
		t.Fatal(err)
	}
	cur := new(dataplane.Current)
	a, err := New(Config{Store: newMemStore(), Links: fakeLinks{}, Attacher: &fakeAttacher{attached: map[int]bool{}},
		Pollers: []Poller{&fakePoller{open: map[uint32]int{}}}, Current: cur, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		Flows: flows, ServiceNets: []netip.Prefix{netip.MustParsePrefix("198.18.96.0/20")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Load(ctx); err != nil {
		t.Fatal(err)
	}
	s := cur.Load()
	want := dataplane.Prefix4{Net: 198<<24 | 18<<16 | 96<<8, Mask: 0xfffff000}
	if s.Flows != flows || s.SNAT != nil || len(s.ServiceNets) != 1 || s.ServiceNets[0] != want {
		t.Fatalf("snapshot flows %p (want %p), snat %v, service nets %+v (want %+v)", s.Flows, flows, s.SNAT, s.ServiceNets, want)
	}
	k := flowtable.Key{VRF: 1, Src: [4]byte{198, 18, 10, 1}, Dst: [4]byte{198, 18, 10, 2}, SrcPort: 40000, DstPort: 80, Proto: 6}
	if _, err := flows.Insert(k, flowtable.Action{Kind: flowtable.Forward}, k.Reverse(), flowtable.Action{Kind: flowtable.Forward}, 1); err != nil {
		t.Fatal(err)
	}
	got := a.Flows(ctx)
	if len(got) != 2 || got[0].Src != "198.18.10.1:40000" || got[1].Src != "198.18.10.2:80" {
		t.Fatalf("Flows without a fabric: %+v; want the forward and reverse entry", got)
	}
	if _, err := New(Config{Store: newMemStore(), Links: fakeLinks{}, Attacher: &fakeAttacher{}, Current: cur,
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, ServiceNets: []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")}}); err == nil {
		t.Fatal("an IPv6 service CIDR was accepted")
	}
}
