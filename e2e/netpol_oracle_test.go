package e2e

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The oracle of TestNetworkPolicy: the expected reachability matrix,
// computed from the policy objects, labels, addresses and container ports
// alone, with upstream NetworkPolicy semantics. It shares nothing with the
// enforcement code (policy, kube/controller, vrouter).

// npPod is what the oracle knows of a pod.
type npPod struct {
	ns, name string
	labels   map[string]string
	ip       string // on the network the matrix is about
	ports    []corev1.ContainerPort
}

func (p npPod) key() string { return p.ns + "/" + p.name }

// npTarget is one destination port of the matrix.
type npTarget struct {
	port  int
	proto corev1.Protocol
}

func (t npTarget) String() string { return fmt.Sprintf("%d/%s", t.port, t.proto) }

// npTargets are the ports every pod serves.
var npTargets = []npTarget{{80, corev1.ProtocolTCP}, {81, corev1.ProtocolTCP}, {80, corev1.ProtocolUDP}, {81, corev1.ProtocolUDP}}

// npMatrix is reachability: [from][to][target index].
type npMatrix map[string]map[string][]bool

// npWorld is the cluster state the oracle reads.
type npWorld struct {
	pods     []npPod
	nsLabels map[string]map[string]string
}

// expect computes the matrix for the policies (NetworkPolicy specs with
// their namespaces; for a MultiNetworkPolicy, the same shape).
func (w npWorld) expect(pols []networkingv1.NetworkPolicy) npMatrix {
	m := npMatrix{}
	for _, src := range w.pods {
		m[src.key()] = map[string][]bool{}
		for _, dst := range w.pods {
			row := make([]bool, len(npTargets))
			for i, tg := range npTargets {
				row[i] = w.allowed(pols, src, dst, tg)
			}
			m[src.key()][dst.key()] = row
		}
	}
	return m
}

// allowed is one cell. A pod's traffic to itself is always allowed: it
// never leaves the pod (the kernel loops it back), and upstream's netpol
// e2e expects the same (Reachability.AllowLoopback).
func (w npWorld) allowed(pols []networkingv1.NetworkPolicy, src, dst npPod, tg npTarget) bool {
	if src.key() == dst.key() {
		return true
	}
	return w.direction(pols, networkingv1.PolicyTypeEgress, src, dst, tg) &&
		w.direction(pols, networkingv1.PolicyTypeIngress, dst, src, tg)
}

// policyTypes is the policy's effective types (upstream defaulting:
// Ingress always, Egress when it has egress rules).
func policyTypes(p *networkingv1.NetworkPolicy) []networkingv1.PolicyType {
	if len(p.Spec.PolicyTypes) > 0 {
		return p.Spec.PolicyTypes
	}
	ts := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	if len(p.Spec.Egress) > 0 {
		ts = append(ts, networkingv1.PolicyTypeEgress)
	}
	return ts
}

func hasType(ts []networkingv1.PolicyType, t networkingv1.PolicyType) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// direction answers whether self's policies in direction dir allow the
// traffic with peer (for egress, self is the source and peer the
// destination; for ingress the other way); the destination port is
// resolved against the destination pod (dst).
func (w npWorld) direction(pols []networkingv1.NetworkPolicy, dir networkingv1.PolicyType, self, peer npPod, tg npTarget) bool {
	dst := peer
	if dir == networkingv1.PolicyTypeIngress {
		dst = self
	}
	isolated := false
	for i := range pols {
		p := &pols[i]
		if p.Namespace != self.ns || !hasType(policyTypes(p), dir) || !selects(&p.Spec.PodSelector, self.labels) {
			continue
		}
		isolated = true
		if dir == networkingv1.PolicyTypeIngress {
			for _, r := range p.Spec.Ingress {
				if w.peersMatch(p.Namespace, r.From, peer) && portsMatch(r.Ports, dst, tg, isIPOnly(r.From, w, p.Namespace, peer)) {
					return true
				}
			}
		} else {
			for _, r := range p.Spec.Egress {
				if w.peersMatch(p.Namespace, r.To, peer) && portsMatch(r.Ports, dst, tg, isIPOnly(r.To, w, p.Namespace, peer)) {
					return true
				}
			}
		}
	}
	return !isolated
}

// isIPOnly reports whether the peer matches the rule only through ipBlocks
// (named ports never match ipBlock peers).
func isIPOnly(peers []networkingv1.NetworkPolicyPeer, w npWorld, ns string, peer npPod) bool {
	if len(peers) == 0 {
		return false
	}
	for _, pp := range peers {
		if pp.IPBlock == nil && w.peerMatch(ns, pp, peer) {
			return false
		}
	}
	return true
}

func selects(s *metav1.LabelSelector, l map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(l))
}

func (w npWorld) peersMatch(ns string, peers []networkingv1.NetworkPolicyPeer, peer npPod) bool {
	if len(peers) == 0 {
		return true
	}
	for _, pp := range peers {
		if w.peerMatch(ns, pp, peer) {
			return true
		}
	}
	return false
}

func (w npWorld) peerMatch(ns string, pp networkingv1.NetworkPolicyPeer, peer npPod) bool {
	switch {
	case pp.IPBlock != nil:
		a, err := netip.ParseAddr(peer.ip)
		if err != nil {
			return false
		}
		if c, err := netip.ParsePrefix(pp.IPBlock.CIDR); err != nil || !c.Contains(a) {
			return false
		}
		for _, e := range pp.IPBlock.Except {
			if c, err := netip.ParsePrefix(e); err == nil && c.Contains(a) {
				return false
			}
		}
		return true
	case pp.NamespaceSelector != nil:
		if !selects(pp.NamespaceSelector, w.nsLabels[peer.ns]) {
			return false
		}
		return pp.PodSelector == nil || selects(pp.PodSelector, peer.labels)
	case pp.PodSelector != nil:
		return peer.ns == ns && selects(pp.PodSelector, peer.labels)
	}
	return false
}

func portsMatch(ports []networkingv1.NetworkPolicyPort, dst npPod, tg npTarget, ipOnly bool) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != tg.proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type == intstr.String {
			if ipOnly {
				continue
			}
			for _, cp := range dst.ports {
				cpProto := cp.Protocol
				if cpProto == "" {
					cpProto = corev1.ProtocolTCP
				}
				if cp.Name == p.Port.StrVal && cpProto == proto && int(cp.ContainerPort) == tg.port {
					return true
				}
			}
			continue
		}
		lo, hi := int(p.Port.IntVal), int(p.Port.IntVal)
		if p.EndPort != nil {
			hi = int(*p.EndPort)
		}
		if tg.port >= lo && tg.port <= hi {
			return true
		}
	}
	return false
}

// allAllowed is the matrix with every cell allowed.
func (w npWorld) allAllowed() npMatrix { return w.expect(nil) }

// diff renders expected and observed per target, cyclonus-style ('.'
// allowed, 'X' denied; in the diff grid a mismatched cell is its observed
// value in brackets), or "" when they agree.
func (w npWorld) diff(want, got npMatrix) string {
	keys := make([]string, 0, len(w.pods))
	for _, p := range w.pods {
		keys = append(keys, p.key())
	}
	sort.Strings(keys)
	var b strings.Builder
	bad := 0
	for i, tg := range npTargets {
		var grid strings.Builder
		mism := 0
		fmt.Fprintf(&grid, "%s  expected | observed | diff (rows from, columns to)\n%-6s", tg, "")
		for range 3 {
			for _, k := range keys {
				fmt.Fprintf(&grid, "%-4s", short(k))
			}
			grid.WriteString(" | ")
		}
		grid.WriteString("\n")
		for _, f := range keys {
			fmt.Fprintf(&grid, "%-6s", short(f))
			for _, k := range keys {
				fmt.Fprintf(&grid, "%-4s", mark(want[f][k][i]))
			}
			grid.WriteString(" | ")
			for _, k := range keys {
				fmt.Fprintf(&grid, "%-4s", mark(got[f][k][i]))
			}
			grid.WriteString(" | ")
			for _, k := range keys {
				if want[f][k][i] == got[f][k][i] {
					grid.WriteString(".   ")
				} else {
					mism++
					fmt.Fprintf(&grid, "%-4s", "["+mark(got[f][k][i])+"]")
				}
			}
			grid.WriteString("\n")
		}
		if mism > 0 {
			bad += mism
			b.WriteString(grid.String())
		}
	}
	if bad == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d cells differ\n%s", bad, len(keys)*len(keys)*len(npTargets), b.String())
}

func short(k string) string { return strings.Replace(k, "/", "", 1) }

func mark(ok bool) string {
	if ok {
		return "."
	}
	return "X"
}

func (m npMatrix) equal(o npMatrix) bool {
	for f, row := range m {
		for k, v := range row {
			for i := range v {
				if o[f][k] == nil || o[f][k][i] != v[i] {
					return false
				}
			}
		}
	}
	return true
}

// TestNPOracle checks the oracle against hand-derived cells of upstream
// semantics.
func TestNPOracle(t *testing.T) {
	ports := []corev1.ContainerPort{{Name: "serve-80-tcp", ContainerPort: 80, Protocol: corev1.ProtocolTCP}}
	w := npWorld{nsLabels: map[string]map[string]string{"x": {"ns": "x"}, "y": {"ns": "y"}}}
	for i, k := range []string{"x/a", "x/b", "y/a", "y/b"} {
		ns, name, _ := strings.Cut(k, "/")
		w.pods = append(w.pods, npPod{ns: ns, name: name, labels: map[string]string{"pod": name},
			ip: fmt.Sprintf("198.18.104.%d", i+1), ports: ports})
	}
	named := intstr.FromString("serve-80-tcp")
	in := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x"}, Spec: networkingv1.NetworkPolicySpec{
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"ns": "y"}}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pod": "b"}}}},
			Ports: []networkingv1.NetworkPolicyPort{{Port: &named}}}}}}
	eg := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "y"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
			CIDR: "198.18.104.0/24", Except: []string{"198.18.104.2/32"}}}}}}}}
	m := w.expect([]networkingv1.NetworkPolicy{in, eg})
	for _, c := range []struct {
		from, to string
		tg       int
		want     bool
	}{
		{"y/b", "x/a", 0, true},  // peer and named port match
		{"y/b", "x/a", 1, false}, // 81/TCP not named
		{"y/b", "x/a", 2, false}, // 80/UDP: the named port is TCP
		{"y/a", "x/a", 0, false}, // pod a of y is not a peer
		{"x/b", "x/a", 0, false}, // namespace x is not y
		{"x/a", "y/b", 3, true},  // y/b has no ingress policy
		{"y/a", "y/b", 0, true},  // egress ipBlock allows 104.4
		{"y/a", "x/b", 0, false}, // except 104.2
		{"y/a", "x/a", 3, false}, // egress allowed, x/a ingress denies
		{"y/b", "y/a", 1, true},  // y/a's ingress is not isolated
		{"x/a", "x/a", 1, true},  // loopback: x/a's isolated ingress does not apply
	} {
		if got := m[c.from][c.to][c.tg]; got != c.want {
			t.Errorf("%s -> %s %s: %v, want %v", c.from, c.to, npTargets[c.tg], got, c.want)
		}
	}
	if d := w.diff(m, m); d != "" {
		t.Errorf("diff of a matrix with itself: %s", d)
	}
	if d := w.diff(m, w.allAllowed()); !strings.Contains(d, "cells differ") {
		t.Errorf("diff of different matrices: %q", d)
	}
}
