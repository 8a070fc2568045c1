package netpol

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/xvr-project/xvr/kube/mnp"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/policy"
)

const defaultNet = "default/cluster-wide-default"

// cluster builds Inputs.
type cluster struct{ in Inputs }

func newCluster() *cluster {
	return &cluster{in: Inputs{DefaultNetwork: defaultNet, NADs: map[string]bool{}}}
}

func (c *cluster) ns(name string, kv ...string) *cluster {
	c.in.Namespaces = append(c.in.Namespaces, corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl(kv...)}})
	return c
}

func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// pod adds a running pod "ns/name" on node with labels, and its default
// network address ip (none when "").
func (c *cluster) pod(key, node, ip string, kv ...string) *corev1.Pod {
	ns, name, _ := strings.Cut(key, "/")
	c.in.Pods = append(c.in.Pods, corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Labels: lbl(kv...)},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	})
	p := &c.in.Pods[len(c.in.Pods)-1]
	if ip != "" {
		c.iip(p, defaultNet, ip)
	}
	return p
}

// last is the pod added last (pointers into the slice move on append).
func (c *cluster) last() *corev1.Pod { return &c.in.Pods[len(c.in.Pods)-1] }

func (c *cluster) iip(p *corev1.Pod, attachment, ip string) {
	c.in.InstanceIPs = append(c.in.InstanceIPs, v1alpha1.InstanceIP{Spec: v1alpha1.InstanceIPSpec{
		Network: attachment, Attachment: attachment, IP: ip, Node: p.Spec.NodeName,
		Pod: &v1alpha1.PodRef{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)},
	}})
}

func withPorts(p *corev1.Pod, ports ...corev1.ContainerPort) { p.Spec.Containers[0].Ports = ports }

func cport(name string, n int32, proto corev1.Protocol) corev1.ContainerPort {
	return corev1.ContainerPort{Name: name, ContainerPort: n, Protocol: proto}
}

func (c *cluster) np(key string, spec networkingv1.NetworkPolicySpec) {
	ns, name, _ := strings.Cut(key, "/")
	c.in.NetworkPolicies = append(c.in.NetworkPolicies, networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec})
}

func (c *cluster) mnp(key, policyFor string, spec networkingv1.NetworkPolicySpec) {
	ns, name, _ := strings.Cut(key, "/")
	c.in.MultiNetworkPolicies = append(c.in.MultiNetworkPolicies, mnp.MultiNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{mnp.PolicyForAnnotation: policyFor}},
		Spec:       spec,
	})
}

// compute runs Compute and checks the invariants of every output: each
// Set compiles, and the output does not depend on the input order.
func (c *cluster) compute(t *testing.T) Result {
	t.Helper()
	r := Compute(c.in)
	for node, list := range r.Nodes {
		for _, ip := range list {
			if _, err := policy.Compile(&ip.Policy); err != nil {
				t.Fatalf("node %s %s/%s %s: the computed Set does not compile: %v", node, ip.Pod.Namespace, ip.Pod.Name, ip.Network, err)
			}
		}
	}
	shuffled := c.in
	rng := rand.New(rand.NewPCG(1, 2))
	shuffled.Pods = shuffle(rng, c.in.Pods)
	shuffled.InstanceIPs = shuffle(rng, c.in.InstanceIPs)
	shuffled.Namespaces = shuffle(rng, c.in.Namespaces)
	shuffled.NetworkPolicies = shuffle(rng, c.in.NetworkPolicies)
	shuffled.MultiNetworkPolicies = shuffle(rng, c.in.MultiNetworkPolicies)
	if again := Compute(shuffled); !reflect.DeepEqual(again, r) {
		t.Fatalf("the output depends on the input order:\n%+v\n%+v", r, again)
	}
	return r
}

func shuffle[T any](rng *rand.Rand, s []T) []T {
	out := append([]T(nil), s...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// set returns the Set of pod key's interface on network, failing if absent.
func set(t *testing.T, r Result, key, network string) policy.Set {
	t.Helper()
	ns, name, _ := strings.Cut(key, "/")
	for _, list := range r.Nodes {
		for _, ip := range list {
			if ip.Pod.Namespace == ns && ip.Pod.Name == name && ip.Network == network {
				return ip.Policy
			}
		}
	}
	t.Fatalf("no entry for %s on %s in %+v", key, network, r.Nodes)
	return policy.Set{}
}

func sel(kv ...string) *metav1.LabelSelector { return &metav1.LabelSelector{MatchLabels: lbl(kv...)} }

func proto(p corev1.Protocol) *corev1.Protocol { return &p }

func port(n int) *intstr.IntOrString { v := intstr.FromInt32(int32(n)); return &v }

func named(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }

func tcp(n uint16) policy.Port { return policy.Port{Protocol: "TCP", Port: n} }

func host(ips ...string) []policy.Peer {
	out := make([]policy.Peer, len(ips))
	for i, ip := range ips {
		out[i] = policy.Peer{CIDR: ip + "/32"}
	}
	return out
}

func from(peers ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyIngressRule {
	return []networkingv1.NetworkPolicyIngressRule{{From: peers}}
}

func podPeer(s *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: s}
}

func nsPeer(s *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: s}
}

func blockPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

const (
	npLabel  = "NetworkPolicy x/p"
	mnpLabel = "MultiNetworkPolicy x/m"
)

func wantSet(t *testing.T, got, want policy.Set) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Set =\n  %+v\nwant\n  %+v", got, want)
	}
}

// TestInterfaces: an entry per interface of every pod on its node —
// default network and the networks annotation in both forms, namespace
// defaulting to the pod's — none for hostNetwork, unscheduled or finished
// pods; an unselected interface has the empty Set.
func TestInterfaces(t *testing.T) {
	c := newCluster().ns("x")
	c.pod("x/a", "n1", "198.18.0.1")
	c.last().Annotations = map[string]string{NetworksAnnotation: "net1, y/net2@eth5,net1"}
	c.pod("x/b", "n2", "198.18.0.2")
	c.last().Annotations = map[string]string{NetworksAnnotation: `[{"name":"net3","interface":"eth1"},{"name":"net4","namespace":"z"}]`}
	c.pod("x/host", "n1", "")
	c.last().Spec.HostNetwork = true
	c.pod("x/pending", "", "")
	c.pod("x/done", "n1", "198.18.0.3")
	c.last().Status.Phase = corev1.PodSucceeded
	c.pod("x/failed", "n1", "")
	c.last().Status.Phase = corev1.PodFailed
	c.pod("x/bad", "n2", "")
	c.last().Annotations = map[string]string{NetworksAnnotation: "a/b/c"}
	r := c.compute(t)
	got := map[string][]string{}
	for node, list := range r.Nodes {
		for _, ip := range list {
			got[node] = append(got[node], ip.Pod.Namespace+"/"+ip.Pod.Name+" "+ip.Network+" "+ip.Pod.UID)
			if !reflect.DeepEqual(ip.Policy, policy.Set{}) {
				t.Errorf("unselected %s/%s %s has %+v", ip.Pod.Namespace, ip.Pod.Name, ip.Network, ip.Policy)
			}
		}
	}
	want := map[string][]string{
		"n1": {"x/a " + defaultNet + " uid-a", "x/a x/net1 uid-a", "x/a y/net2 uid-a"},
		"n2": {"x/b " + defaultNet + " uid-b", "x/b x/net3 uid-b", "x/b z/net4 uid-b", "x/bad " + defaultNet + " uid-bad"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("interfaces = %q\nwant %q", got, want)
	}
	if len(r.Problems) != 0 {
		t.Errorf("problems: %+v", r.Problems)
	}
}

// TestPolicyTypes: Ingress always by default, Egress by default only with
// egress rules; explicit types isolate those directions only and a
// direction not listed ignores its rules.
func TestPolicyTypes(t *testing.T) {
	egress := []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: port(53)}}}}
	ingress := []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: port(80)}}}}
	in := policy.Rule{Policy: npLabel, AllPeers: true, Ports: []policy.Port{tcp(80)}}
	out := policy.Rule{Policy: npLabel, AllPeers: true, Ports: []policy.Port{tcp(53)}}
	for _, tc := range []struct {
		name string
		spec networkingv1.NetworkPolicySpec
		want policy.Set
	}{
		{"empty: deny all ingress", networkingv1.NetworkPolicySpec{}, policy.Set{Ingress: true}},
		{"ingress rules only", networkingv1.NetworkPolicySpec{Ingress: ingress}, policy.Set{Ingress: true, IngressRules: []policy.Rule{in}}},
		{"egress rules: both isolated", networkingv1.NetworkPolicySpec{Egress: egress},
			policy.Set{Ingress: true, Egress: true, EgressRules: []policy.Rule{out}}},
		{"Egress only", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{"Egress"}, Ingress: ingress, Egress: egress},
			policy.Set{Egress: true, EgressRules: []policy.Rule{out}}},
		{"Egress, no rules: deny all egress", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{"Egress"}},
			policy.Set{Egress: true}},
		{"Ingress only ignores egress rules", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{"Ingress"}, Ingress: ingress, Egress: egress},
			policy.Set{Ingress: true, IngressRules: []policy.Rule{in}}},
		{"both", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{"Ingress", "Egress"}, Ingress: ingress, Egress: egress},
			policy.Set{Ingress: true, Egress: true, IngressRules: []policy.Rule{in}, EgressRules: []policy.Rule{out}}},
		{"allow all ingress: an empty rule", networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}},
			policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: npLabel, AllPeers: true, AllPorts: true}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster().ns("x")
			c.pod("x/a", "n1", "198.18.0.1")
			c.np("x/p", tc.spec)
			wantSet(t, set(t, c.compute(t), "x/a", defaultNet), tc.want)
		})
	}
}

// TestUnion: every policy selecting a pod adds its rules (sorted by
// policy), and a direction is isolated if any of them isolates it.
func TestUnion(t *testing.T) {
	c := newCluster().ns("x")
	c.pod("x/a", "n1", "198.18.0.1", "app", "a")
	c.pod("x/b", "n1", "198.18.0.2", "app", "b")
	c.np("x/z-web", networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "a"),
		Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: port(80)}}}}})
	c.np("x/a-db", networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{},
		Ingress: from(podPeer(sel("app", "b"))),
		Egress:  []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{podPeer(sel("app", "b"))}}}})
	c.np("x/other", networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "none")})
	r := c.compute(t)
	wantSet(t, set(t, r, "x/a", defaultNet), policy.Set{Ingress: true, Egress: true,
		IngressRules: []policy.Rule{
			{Policy: "NetworkPolicy x/a-db", Peers: host("198.18.0.2"), AllPorts: true},
			{Policy: "NetworkPolicy x/z-web", AllPeers: true, Ports: []policy.Port{tcp(80)}},
		},
		EgressRules: []policy.Rule{{Policy: "NetworkPolicy x/a-db", Peers: host("198.18.0.2"), AllPorts: true}},
	})
	wantSet(t, set(t, r, "x/b", defaultNet), policy.Set{Ingress: true, Egress: true,
		IngressRules: []policy.Rule{{Policy: "NetworkPolicy x/a-db", Peers: host("198.18.0.2"), AllPorts: true}},
		EgressRules:  []policy.Rule{{Policy: "NetworkPolicy x/a-db", Peers: host("198.18.0.2"), AllPorts: true}},
	})
}

// TestPodSelector: a policy selects pods of its own namespace only; an
// empty podSelector selects them all; a peer podSelector alone selects
// pods in the policy's namespace; matchExpressions work.
func TestPodSelector(t *testing.T) {
	c := newCluster().ns("x").ns("y")
	c.pod("x/a", "n1", "198.18.0.1", "app", "a")
	c.pod("x/b", "n1", "198.18.0.2", "app", "b")
	c.pod("x/c", "n2", "198.18.0.3", "app", "c", "tier", "db")
	c.pod("y/a", "n2", "198.18.1.1", "app", "a")
	c.np("x/p", networkingv1.NetworkPolicySpec{Ingress: from(
		podPeer(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "c"}}}}),
	)})
	r := c.compute(t)
	want := policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: npLabel, Peers: host("198.18.0.1", "198.18.0.3"), AllPorts: true}}}
	for _, p := range []string{"x/a", "x/b", "x/c"} {
		wantSet(t, set(t, r, p, defaultNet), want)
	}
	wantSet(t, set(t, r, "y/a", defaultNet), policy.Set{})
	// An empty peer podSelector: every pod of the namespace.
	c.in.NetworkPolicies[0].Spec.Ingress = from(podPeer(&metav1.LabelSelector{}))
	c.in.NetworkPolicies[0].Spec.PodSelector = *sel("tier", "db")
	r = c.compute(t)
	wantSet(t, set(t, r, "x/c", defaultNet), policy.Set{Ingress: true,
		IngressRules: []policy.Rule{{Policy: npLabel, Peers: host("198.18.0.1", "198.18.0.2", "198.18.0.3"), AllPorts: true}}})
	wantSet(t, set(t, r, "x/a", defaultNet), policy.Set{})
}

// TestNamespaceSelector: matchLabels, matchExpressions (In, NotIn,
// Exists, DoesNotExist), the empty selector (all namespaces), and
// namespaceSelector with podSelector (AND).
func TestNamespaceSelector(t *testing.T) {
	c := newCluster().ns("x", "team", "a").ns("y", "team", "b", "env", "prod").ns("z")
	c.pod("x/a", "n1", "198.18.0.1", "app", "a")
	c.pod("y/a", "n1", "198.18.1.1", "app", "a")
	c.pod("y/b", "n2", "198.18.1.2", "app", "b")
	c.pod("z/a", "n2", "198.18.2.1", "app", "a")
	expr := func(op metav1.LabelSelectorOperator, key string, values ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	for _, tc := range []struct {
		name string
		peer networkingv1.NetworkPolicyPeer
		want []string
	}{
		{"matchLabels", nsPeer(sel("team", "b")), []string{"198.18.1.1", "198.18.1.2"}},
		{"In", nsPeer(expr(metav1.LabelSelectorOpIn, "team", "a", "b")), []string{"198.18.0.1", "198.18.1.1", "198.18.1.2"}},
		{"NotIn", nsPeer(expr(metav1.LabelSelectorOpNotIn, "team", "b")), []string{"198.18.0.1", "198.18.2.1"}},
		{"Exists", nsPeer(expr(metav1.LabelSelectorOpExists, "env")), []string{"198.18.1.1", "198.18.1.2"}},
		{"DoesNotExist", nsPeer(expr(metav1.LabelSelectorOpDoesNotExist, "team")), []string{"198.18.2.1"}},
		{"empty: every namespace", nsPeer(&metav1.LabelSelector{}), []string{"198.18.0.1", "198.18.1.1", "198.18.1.2", "198.18.2.1"}},
		{"with podSelector: AND", networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("team", "b"), PodSelector: sel("app", "a")}, []string{"198.18.1.1"}},
		{"two peers: OR", networkingv1.NetworkPolicyPeer{}, nil}, // replaced below
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.in.NetworkPolicies = nil
			rule := from(tc.peer)
			if tc.name == "two peers: OR" {
				rule = from(nsPeer(sel("team", "b")), podPeer(sel("app", "a")))
				tc.want = []string{"198.18.0.1", "198.18.1.1", "198.18.1.2"}
			}
			c.np("x/p", networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "a"), Ingress: rule})
			wantSet(t, set(t, c.compute(t), "x/a", defaultNet),
				policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: npLabel, Peers: host(tc.want...), AllPorts: true}}})
		})
	}
}

// TestIPBlock: cidr with except, masked; mixed with pod peers and sorted.
func TestIPBlock(t *testing.T) {
	c := newCluster().ns("x")
	c.pod("x/a", "n1", "198.18.0.1", "app", "a")
	c.pod("x/b", "n1", "198.18.0.2", "app", "b")
	c.np("x/p", networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "a"),
		Ingress: from(blockPeer("198.19.7.9/16", "198.19.1.0/24", "198.19.2.128/25"), podPeer(sel("app", "b")), blockPeer("198.18.0.0/24")),
		Egress:  []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{blockPeer("0.0.0.0/0", "198.18.0.0/15")}}},
	})
	r := c.compute(t)
	wantSet(t, set(t, r, "x/a", defaultNet), policy.Set{Ingress: true, Egress: true,
		IngressRules: []policy.Rule{{Policy: npLabel, AllPorts: true, Peers: []policy.Peer{
			{CIDR: "198.18.0.0/24"}, {CIDR: "198.18.0.2/32"}, {CIDR: "198.19.0.0/16", Except: []string{"198.19.1.0/24", "198.19.2.128/25"}},
		}}},
		EgressRules: []policy.Rule{{Policy: npLabel, AllPorts: true, Peers: []policy.Peer{{CIDR: "0.0.0.0/0", Except: []string{"198.18.0.0/15"}}}}},
	})
}

// TestPorts: numbers, protocol defaulting to TCP, UDP, SCTP, endPort, a
// port with only a protocol (all its ports).
func TestPorts(t *testing.T) {
	c := newCluster().ns("x")
	c.pod("x/a", "n1", "198.18.0.1")
	end := int32(8090)
	same := int32(443)
	c.np("x/p", networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
		{Port: port(80)}, {Protocol: proto("UDP"), Port: port(53)}, {Protocol: proto("SCTP"), Port: port(9)},
		{Protocol: proto("TCP"), Port: port(8080), EndPort: &end}, {Protocol: proto("UDP")}, {Port: port(443), EndPort: &same},
	}}}})
	wantSet(t, set(t, c.compute(t), "x/a", defaultNet), policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: npLabel, AllPeers: true,
		Ports: []policy.Port{{Protocol: "SCTP", Port: 9}, tcp(80), tcp(443), {Protocol: "TCP", Port: 8080, EndPort: 8090}, {Protocol: "UDP"}, {Protocol: "UDP", Port: 53}}}}})
}

// TestNamedPortIngress: a named port resolves against the selected pod's
// own container ports (name and protocol); a pod without it gets a rule
// with the numbered ports only, or none.
func TestNamedPortIngress(t *testing.T) {
	c := newCluster().ns("x")
	c.pod("x/a", "n1", "198.18.0.1", "app", "web")
	withPorts(c.last(), cport("http", 8080, ""), cport("dns", 53, "UDP"))
	c.pod("x/b", "n1", "198.18.0.2", "app", "web")
	withPorts(c.last(), cport("http", 9090, "TCP"), cport("dns", 53, "TCP"))
	c.pod("x/c", "n1", "198.18.0.3", "app", "web")
	c.np("x/p", networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "web"), Ingress: []networkingv1.NetworkPolicyIngressRule{
		{Ports: []networkingv1.NetworkPolicyPort{{Port: named("http")}, {Protocol: proto("UDP"), Port: named("dns")}}},
		{Ports: []networkingv1.NetworkPolicyPort{{Port: named("http")}, {Port: port(22)}}},
	}})
	r := c.compute(t)
	wantSet(t, set(t, r, "x/a", defaultNet), policy.Set{Ingress: true, IngressRules: []policy.Rule{
		{Policy: npLabel, AllPeers: true, Ports: []policy.Port{tcp(8080), {Protocol: "UDP", Port: 53}}},
		{Policy: npLabel, AllPeers: true, Ports: []policy.Port{tcp(22), tcp(8080)}},
	}})
	wantSet(t, set(t, r, "x/b", defaultNet), policy.Set{Ingress: true, IngressRules: []policy.Rule{
		{Policy: npLabel, AllPeers: true, Ports: []policy.Port{tcp(9090)}}, // dns is TCP on b: no match for UDP
		{Policy: npLabel, AllPeers: true, Ports: []policy.Port{tcp(22), tcp(9090)}},
	}})
	wantSet(t, set(t, r, "x/c", defaultNet), policy.Set{Ingress: true, IngressRules: []policy.Rule{
		{Policy: npLabel, AllPeers: true, Ports: []policy.Port{tcp(22)}},
	}})
}

// TestNamedPortEgress: a named port resolves against each peer pod's
// ports, one rule per distinct number; ipBlock peers keep only the
// numbered ports; with no `to`, every pod having the port is a peer.
func TestNamedPortEgress(t *testing.T) {
	c := newCluster().ns("x").ns("y")
	c.pod("x/client", "n1", "198.18.0.1", "app", "client")
	c.pod("x/s1", "n1", "198.18.0.2", "app", "server")
	withPorts(c.last(), cport("http", 8080, "TCP"))
	c.pod("x/s2", "n2", "198.18.0.3", "app", "server")
	withPorts(c.last(), cport("http", 9090, "TCP"))
	c.pod("x/s3", "n2", "198.18.0.4", "app", "server")
	withPorts(c.last(), cport("http", 8080, "TCP"))
	c.pod("x/s4", "n2", "198.18.0.5", "app", "server") // no such port
	c.pod("y/s5", "n2", "198.18.1.1", "app", "other")
	withPorts(c.last(), cport("http", 7070, "TCP"), cport("http-udp", 7070, "UDP"))
	c.np("x/p", networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "client"),
		PolicyTypes: []networkingv1.PolicyType{"Egress"},
		Egress: []networkingv1.NetworkPolicyEgressRule{
			{To: []networkingv1.NetworkPolicyPeer{podPeer(sel("app", "server")), blockPeer("198.19.0.0/16")},
				Ports: []networkingv1.NetworkPolicyPort{{Port: named("http")}, {Port: port(443)}}},
			{Ports: []networkingv1.NetworkPolicyPort{{Port: named("http")}}},
			{To: []networkingv1.NetworkPolicyPeer{blockPeer("198.19.0.0/16")}, Ports: []networkingv1.NetworkPolicyPort{{Port: named("http")}}},
		}})
	r := c.compute(t)
	wantSet(t, set(t, r, "x/client", defaultNet), policy.Set{Egress: true, EgressRules: []policy.Rule{
		{Policy: npLabel, Peers: append(host("198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"), policy.Peer{CIDR: "198.19.0.0/16"}), Ports: []policy.Port{tcp(443)}},
		{Policy: npLabel, Peers: host("198.18.0.2", "198.18.0.4"), Ports: []policy.Port{tcp(8080)}},
		{Policy: npLabel, Peers: host("198.18.0.3"), Ports: []policy.Port{tcp(9090)}},
		// No `to`: any pod with a TCP port "http", in any namespace.
		{Policy: npLabel, Peers: host("198.18.1.1"), Ports: []policy.Port{tcp(7070)}},
		{Policy: npLabel, Peers: host("198.18.0.2", "198.18.0.4"), Ports: []policy.Port{tcp(8080)}},
		{Policy: npLabel, Peers: host("198.18.0.3"), Ports: []policy.Port{tcp(9090)}},
		// The third rule (ipBlock and a named port) matches nothing: no rule.
	}})
}

// TestSameAttachment: a NetworkPolicy's pod peers are their
// default-network addresses and it applies to the default network only;
// a MultiNetworkPolicy applies to the interfaces on its policy-for NADs
// (namespace defaulting to the policy's), with peers' addresses on that
// NAD; a peer without an address there is no peer.
func TestSameAttachment(t *testing.T) {
	c := newCluster().ns("x").ns("y")
	c.in.NADs = map[string]bool{"x/net1": true, "y/net2": true}
	c.pod("x/a", "n1", "198.18.0.1", "app", "a")
	c.last().Annotations = map[string]string{NetworksAnnotation: "net1,y/net2"}
	c.iip(c.last(), "x/net1", "198.18.10.1")
	c.iip(c.last(), "y/net2", "198.18.20.1")
	c.pod("x/b", "n1", "198.18.0.2", "app", "b")
	c.last().Annotations = map[string]string{NetworksAnnotation: "net1"}
	c.iip(c.last(), "x/net1", "198.18.10.2")
	c.pod("x/c", "n2", "198.18.0.3", "app", "b") // default network only
	c.np("x/p", networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "a"), Ingress: from(podPeer(sel("app", "b")))})
	c.mnp("x/m", "net1", networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "a"), Ingress: from(podPeer(sel("app", "b")))})
	r := c.compute(t)
	wantSet(t, set(t, r, "x/a", defaultNet), policy.Set{Ingress: true,
		IngressRules: []policy.Rule{{Policy: npLabel, Peers: host("198.18.0.2", "198.18.0.3"), AllPorts: true}}})
	wantSet(t, set(t, r, "x/a", "x/net1"), policy.Set{Ingress: true,
		IngressRules: []policy.Rule{{Policy: mnpLabel, Peers: host("198.18.10.2"), AllPorts: true}}})
	wantSet(t, set(t, r, "x/a", "y/net2"), policy.Set{})
	wantSet(t, set(t, r, "x/b", "x/net1"), policy.Set{})
	if len(r.Problems) != 0 {
		t.Errorf("problems: %+v", r.Problems)
	}
}

// TestPeerLifecycle: a pod being deleted or finished is no peer (a
// deleting pod still has its own entries); an InstanceIP of another pod
// of the same name (UID) is not the pod's address.
func TestPeerLifecycle(t *testing.T) {
	c := newCluster().ns("x")
	c.pod("x/a", "n1", "198.18.0.1", "app", "a")
	c.pod("x/gone", "n1", "198.18.0.2", "app", "b")
	now := metav1.Now()
	c.last().DeletionTimestamp = &now
	c.pod("x/done", "n1", "198.18.0.3", "app", "b")
	c.last().Status.Phase = corev1.PodSucceeded
	c.pod("x/new", "n1", "198.18.0.4", "app", "b")
	stale := *c.last()
	stale.UID = "older"
	c.iip(&stale, defaultNet, "198.18.0.9")
	c.np("x/p", networkingv1.NetworkPolicySpec{Ingress: from(podPeer(sel("app", "b")))})
	r := c.compute(t)
	want := policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: npLabel, Peers: host("198.18.0.4"), AllPorts: true}}}
	wantSet(t, set(t, r, "x/a", defaultNet), want)
	wantSet(t, set(t, r, "x/gone", defaultNet), want)
}

// TestNodes: a node's list holds only its pods, sorted.
func TestNodes(t *testing.T) {
	c := newCluster().ns("x").ns("a")
	c.pod("x/b", "n1", "198.18.0.1")
	c.pod("x/a", "n2", "198.18.0.2")
	c.pod("a/z", "n1", "198.18.0.3")
	r := c.compute(t)
	var got []string
	for _, ip := range r.Nodes["n1"] {
		got = append(got, ip.Pod.Namespace+"/"+ip.Pod.Name)
	}
	if !reflect.DeepEqual(got, []string{"a/z", "x/b"}) || len(r.Nodes["n2"]) != 1 || len(r.Nodes) != 2 {
		t.Errorf("n1 = %q, nodes = %+v", got, r.Nodes)
	}
}

// TestProblems: what cannot be enforced is reported once per object and
// left out (fail closed: the rest of the rule still applies, the bad part
// matches nothing).
func TestProblems(t *testing.T) {
	c := newCluster().ns("x")
	c.in.NADs = map[string]bool{"x/net1": true, "x/macvlan": false}
	c.pod("x/a", "n1", "198.18.0.1")
	c.last().Annotations = map[string]string{NetworksAnnotation: "net1"}
	c.iip(c.last(), "x/net1", "198.18.10.1")
	c.pod("x/b", "n1", "198.18.0.2")
	zero, big := int32(0), int32(70000)
	low := int32(10)
	c.np("x/p", networkingv1.NetworkPolicySpec{
		Ingress: from(blockPeer("2001:db8::/32"), blockPeer("198.19.0.0/16", "198.20.0.0/24"), blockPeer("bogus"), podPeer(&metav1.LabelSelector{})),
		Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{
			{Port: port(0)}, {Port: port(70000)}, {Protocol: proto("ICMP"), Port: port(1)}, {Port: port(80), EndPort: &low},
			{Port: port(90), EndPort: &big}, {EndPort: &zero}, {Port: named("Not_A_Name")}, {Port: named("web"), EndPort: &big}, {Port: port(53)},
		}}},
	})
	c.mnp("x/m", "net1,x/missing,macvlan,y/other", networkingv1.NetworkPolicySpec{
		PolicyTypes: []networkingv1.PolicyType{"Ingress", "Sideways"},
		Ingress:     from(blockPeer("::/0")),
	})
	c.mnp("x/none", "", networkingv1.NetworkPolicySpec{})
	r := c.compute(t)
	var got []string
	for _, p := range r.Problems {
		got = append(got, p.Object()+" "+p.Reason)
	}
	want := []string{
		"MultiNetworkPolicy x/m " + ReasonIPv6,
		"MultiNetworkPolicy x/m " + ReasonNetworkNotFound, // x/missing
		"MultiNetworkPolicy x/m " + ReasonNetworkNotFound, // y/other
		"MultiNetworkPolicy x/m " + ReasonNotXVRNetwork,
		"MultiNetworkPolicy x/m " + ReasonUnknownPolicyType,
		"MultiNetworkPolicy x/none " + ReasonNoNetwork,
		"NetworkPolicy x/p " + ReasonIPv6,
		"NetworkPolicy x/p " + ReasonInvalidIPBlock, // except outside
		"NetworkPolicy x/p " + ReasonInvalidIPBlock, // bogus
	}
	for i := 0; i < 8; i++ {
		want = append(want, "NetworkPolicy x/p "+ReasonInvalidPort)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems =\n  %q\nwant\n  %q", got, want)
	}
	for _, p := range r.Problems {
		if p.Message == "" || p.Kind == "" || p.Namespace != "x" {
			t.Errorf("problem %+v lacks a field", p)
		}
	}
	if !strings.Contains(fmt.Sprint(r.Problems), "x/missing") || !strings.Contains(fmt.Sprint(r.Problems), "2001:db8::/32") {
		t.Errorf("messages do not name the culprit: %+v", r.Problems)
	}
	// What remains is enforced: the pod peers; the valid port 53.
	wantSet(t, set(t, r, "x/a", defaultNet), policy.Set{Ingress: true, Egress: true,
		IngressRules: []policy.Rule{{Policy: npLabel, Peers: host("198.18.0.1", "198.18.0.2"), AllPorts: true}},
		EgressRules:  []policy.Rule{{Policy: npLabel, AllPeers: true, Ports: []policy.Port{tcp(53)}}},
	})
	// The MultiNetworkPolicy still isolates net1 (its IPv6-only rule
	// matches nothing there).
	wantSet(t, set(t, r, "x/a", "x/net1"), policy.Set{Ingress: true})
}

// BenchmarkCompute: a cluster of 20 namespaces, 2000 pods on 20 nodes and
// 200 policies (selectors, namespace selectors, named ports), the whole
// computation the controller makes on each (coalesced) change.
func BenchmarkCompute(b *testing.B) {
	c := newCluster()
	for n := 0; n < 20; n++ {
		c.ns(fmt.Sprintf("ns%d", n), "team", fmt.Sprintf("t%d", n%4))
	}
	for i := 0; i < 2000; i++ {
		c.pod(fmt.Sprintf("ns%d/p%d", i%20, i), fmt.Sprintf("node%d", i%20), fmt.Sprintf("198.18.%d.%d", i/250, i%250+1),
			"app", fmt.Sprintf("a%d", i%10))
		withPorts(c.last(), cport("http", int32(8000+i%3), "TCP"))
	}
	for i := 0; i < 200; i++ {
		c.np(fmt.Sprintf("ns%d/p%d", i%20, i), networkingv1.NetworkPolicySpec{
			PodSelector: *sel("app", fmt.Sprintf("a%d", i%10)),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{nsPeer(sel("team", fmt.Sprintf("t%d", i%4))), podPeer(sel("app", "a1"))},
				Ports: []networkingv1.NetworkPolicyPort{{Port: port(80)}, {Port: named("http")}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{podPeer(sel("app", "a2"))},
				Ports: []networkingv1.NetworkPolicyPort{{Port: named("http")}}}},
		})
	}
	b.ReportAllocs()
	var rules int
	for b.Loop() {
		r := Compute(c.in)
		rules = 0
		for _, list := range r.Nodes {
			for _, ip := range list {
				rules += len(ip.Policy.IngressRules) + len(ip.Policy.EgressRules)
			}
		}
	}
	b.ReportMetric(float64(rules), "rules")
}
