package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/mnp"
	"github.com/xvr-project/xvr/kube/netpol"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/policy"
)

const defaultNet = "default/cluster-wide-default"

// createLabeledNS creates a namespace with a unique name and labels.
func createLabeledNS(ctx context.Context, t *testing.T, c client.Client, prefix string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// createBoundPod creates a pod already bound to node, with labels and the
// networks annotation (none when "").
func createBoundPod(ctx context.Context, t *testing.T, c client.Client, ns, name, node, networks string, labels map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	if networks != "" {
		pod.Annotations = map[string]string{netpol.NetworksAnnotation: networks}
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// waitNodePolicy waits until node's NodePolicy's interfaces are want.
func waitNodePolicy(ctx context.Context, t *testing.T, c client.Client, node string, want []v1alpha1.InterfacePolicy) *v1alpha1.NodePolicy {
	t.Helper()
	var np v1alpha1.NodePolicy
	eventually(ctx, t, "NodePolicy "+node, func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKey{Name: node}, &np); err != nil {
			return false, err.Error()
		}
		got, _ := json.Marshal(np.Spec.Interfaces)
		exp, _ := json.Marshal(want)
		return string(got) == string(exp), fmt.Sprintf("have %s\nwant %s", got, exp)
	})
	return &np
}

// waitEnforced waits until obj's policy-status annotation holds an
// Enforced condition of that status and reason for its generation.
func waitEnforced(ctx context.Context, t *testing.T, c client.Client, obj client.Object, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var cond metav1.Condition
	eventually(ctx, t, fmt.Sprintf("%T %s Enforced=%s %s", obj, obj.GetName(), status, reason), func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err.Error()
		}
		raw := obj.GetAnnotations()[AnnotationPolicyStatus]
		var conds []metav1.Condition
		if err := json.Unmarshal([]byte(raw), &conds); err != nil {
			return false, fmt.Sprintf("annotation %q: %v", raw, err)
		}
		c := meta.FindStatusCondition(conds, ConditionEnforced)
		if c == nil {
			return false, "no condition in " + raw
		}
		cond = *c
		return c.Status == status && c.Reason == reason && c.ObservedGeneration == obj.GetGeneration(), raw
	})
	return cond
}

func entry(pod *corev1.Pod, network string, s policy.Set) v1alpha1.InterfacePolicy {
	return v1alpha1.InterfacePolicy{Pod: v1alpha1.PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}, Network: network, Policy: s}
}

func peers(ips ...string) []policy.Peer {
	out := make([]policy.Peer, len(ips))
	for i, ip := range ips {
		out[i] = policy.Peer{CIDR: ip + "/32"}
	}
	return out
}

// updatePolicy changes a NetworkPolicy with retries on conflicts.
func updatePolicy[T client.Object](ctx context.Context, t *testing.T, c client.Client, obj T, change func(T)) {
	t.Helper()
	eventually(ctx, t, "updating "+obj.GetName(), func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err.Error()
		}
		change(obj)
		if err := c.Update(ctx, obj); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// TestNodePolicy: the controller writes each node's NodePolicy with only
// its pods' interfaces, from a NetworkPolicy (default network) and a
// MultiNetworkPolicy (its NAD), peers resolved to the addresses on the
// interface's network, and rewrites it when a pod label, a namespace
// label or a policy changes; a deleted pod leaves, a deleted node's
// NodePolicy goes.
func TestNodePolicy(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	x := createLabeledNS(ctx, t, c, "pol-x", map[string]string{"team": "x"})
	y := createLabeledNS(ctx, t, c, "pol-y", map[string]string{"team": "peer"})
	n1, n2 := createNode(ctx, t, c, "pol-n1-"+x), createNode(ctx, t, c, "pol-n2-"+x)
	createNAD(ctx, t, c, x, "net1", xvrConfig, cidr("198.18.60.0/24"))
	net1 := x + "/net1"

	a := createBoundPod(ctx, t, c, x, "a", n1.Name, "net1", map[string]string{"app": "a"})
	b := createBoundPod(ctx, t, c, x, "b", n2.Name, "net1", map[string]string{"app": "b"})
	cc := createBoundPod(ctx, t, c, y, "c", n1.Name, "", map[string]string{"app": "c"})
	createIIP(ctx, t, c, defaultNet, defaultNet, "198.19.60.1", n1.Name, a)
	createIIP(ctx, t, c, net1, net1, "198.18.60.1", n1.Name, a)
	createIIP(ctx, t, c, defaultNet, defaultNet, "198.19.60.2", n2.Name, b)
	createIIP(ctx, t, c, net1, net1, "198.18.60.2", n2.Name, b)
	createIIP(ctx, t, c, defaultNet, defaultNet, "198.19.60.3", n1.Name, cc)

	// Before any policy: every interface has an entry, unselected.
	waitNodePolicy(ctx, t, c, n1.Name, []v1alpha1.InterfacePolicy{entry(a, defaultNet, policy.Set{}), entry(a, net1, policy.Set{}), entry(cc, defaultNet, policy.Set{})})
	waitNodePolicy(ctx, t, c, n2.Name, []v1alpha1.InterfacePolicy{entry(b, defaultNet, policy.Set{}), entry(b, net1, policy.Set{})})

	p80 := intstr.FromInt32(80)
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: x, Name: "allow"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}}},
					{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "peer"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &p80}},
			}},
		},
	}
	if err := c.Create(ctx, np); err != nil {
		t.Fatal(err)
	}
	multi := &mnp.MultiNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: x, Name: "multi", Annotations: map[string]string{mnp.PolicyForAnnotation: "net1"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}}},
			}}},
		},
	}
	if err := c.Create(ctx, multi); err != nil {
		t.Fatal(err)
	}
	npRule := func(ips ...string) policy.Set {
		return policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: "NetworkPolicy " + x + "/allow", Peers: peers(ips...),
			Ports: []policy.Port{{Protocol: "TCP", Port: 80}}}}}
	}
	mnpRule := policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: "MultiNetworkPolicy " + x + "/multi", Peers: peers("198.18.60.2"), AllPorts: true}}}
	got := waitNodePolicy(ctx, t, c, n1.Name, []v1alpha1.InterfacePolicy{
		entry(a, defaultNet, npRule("198.19.60.2", "198.19.60.3")), entry(a, net1, mnpRule), entry(cc, defaultNet, policy.Set{}),
	})
	rv := got.ResourceVersion
	waitNodePolicy(ctx, t, c, n2.Name, []v1alpha1.InterfacePolicy{entry(b, defaultNet, policy.Set{}), entry(b, net1, policy.Set{})})

	// A pod label: b no longer a peer, on either network.
	updatePolicy(ctx, t, c, b, func(p *corev1.Pod) { p.Labels["app"] = "other" })
	waitNodePolicy(ctx, t, c, n1.Name, []v1alpha1.InterfacePolicy{
		entry(a, defaultNet, npRule("198.19.60.3")), entry(a, net1, policy.Set{Ingress: true}), entry(cc, defaultNet, policy.Set{}),
	})
	// A namespace label: y's pods no longer peers.
	updatePolicy(ctx, t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: y}}, func(n *corev1.Namespace) { n.Labels["team"] = "none" })
	waitNodePolicy(ctx, t, c, n1.Name, []v1alpha1.InterfacePolicy{
		entry(a, defaultNet, policy.Set{Ingress: true}), entry(a, net1, policy.Set{Ingress: true}), entry(cc, defaultNet, policy.Set{}),
	})
	// A policy change: allow everyone on 80 and egress isolation.
	updatePolicy(ctx, t, c, np, func(p *networkingv1.NetworkPolicy) {
		p.Spec.Ingress[0].From = nil
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	})
	all80 := policy.Set{Ingress: true, Egress: true, IngressRules: []policy.Rule{{Policy: "NetworkPolicy " + x + "/allow", AllPeers: true,
		Ports: []policy.Port{{Protocol: "TCP", Port: 80}}}}}
	got = waitNodePolicy(ctx, t, c, n1.Name, []v1alpha1.InterfacePolicy{
		entry(a, defaultNet, all80), entry(a, net1, policy.Set{Ingress: true}), entry(cc, defaultNet, policy.Set{}),
	})
	if got.ResourceVersion == rv {
		t.Error("the NodePolicy's resourceVersion did not change")
	}
	// Nothing changes: no write (the resourceVersion stays) after an
	// event that changes nothing (a new namespace label no one selects).
	before := outcomes.count(policyController, policyKey.Name, outcomePoliciesUnchanged)
	updatePolicy(ctx, t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: y}}, func(n *corev1.Namespace) { n.Labels["unrelated"] = "1" })
	waitOutcome(ctx, t, policyController, policyKey.Name, outcomePoliciesUnchanged, before)
	var again v1alpha1.NodePolicy
	if err := c.Get(ctx, client.ObjectKey{Name: n1.Name}, &again); err != nil || again.ResourceVersion != got.ResourceVersion {
		t.Errorf("an unchanged NodePolicy was written (resourceVersion %s -> %s, %v)", got.ResourceVersion, again.ResourceVersion, err)
	}
	// The good policies have no status annotation.
	for _, obj := range []client.Object{np, multi} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		if s, ok := obj.GetAnnotations()[AnnotationPolicyStatus]; ok {
			t.Errorf("%s has a status annotation without problems: %s", obj.GetName(), s)
		}
	}

	// A deleted pod leaves its node's NodePolicy.
	deleteObj(ctx, t, c, cc)
	waitNodePolicy(ctx, t, c, n1.Name, []v1alpha1.InterfacePolicy{entry(a, defaultNet, all80), entry(a, net1, policy.Set{Ingress: true})})
	// A deleted node's NodePolicy goes.
	deleteObj(ctx, t, c, n2)
	waitGone(ctx, t, c, &v1alpha1.NodePolicy{ObjectMeta: metav1.ObjectMeta{Name: n2.Name}})
}

// TestPolicyProblems: an IPv6 ipBlock and a policy-for naming a NAD that
// does not exist or is not xvr's get a Warning Event and Enforced=False in
// the policy-status annotation; fixed, the condition turns True.
func TestPolicyProblems(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	x := createLabeledNS(ctx, t, c, "pol-bad", nil)
	node := createNode(ctx, t, c, "pol-n-"+x)
	createNAD(ctx, t, c, x, "net1", xvrConfig, cidr("198.18.61.0/24"))
	createNAD(ctx, t, c, x, "macvlan", `{"cniVersion":"1.0.0","type":"macvlan"}`, nil)
	a := createBoundPod(ctx, t, c, x, "a", node.Name, "", nil)
	createIIP(ctx, t, c, defaultNet, defaultNet, "198.19.61.1", node.Name, a)

	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: x, Name: "v6"},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			{IPBlock: &networkingv1.IPBlock{CIDR: "2001:db8::/64"}}, {IPBlock: &networkingv1.IPBlock{CIDR: "198.18.62.0/24"}},
		}}}},
	}
	if err := c.Create(ctx, np); err != nil {
		t.Fatal(err)
	}
	cond := waitEnforced(ctx, t, c, np, metav1.ConditionFalse, netpol.ReasonIPv6)
	if cond.Message == "" || cond.LastTransitionTime.IsZero() {
		t.Errorf("condition %+v lacks a message or a transition time", cond)
	}
	waitEvent(ctx, t, c, x, np.Name, corev1.EventTypeWarning, ReasonPolicyNotEnforced, netpol.ReasonIPv6, "2001:db8::/64")
	// The IPv4 part is enforced.
	waitNodePolicy(ctx, t, c, node.Name, []v1alpha1.InterfacePolicy{entry(a, defaultNet, policy.Set{Ingress: true, IngressRules: []policy.Rule{
		{Policy: "NetworkPolicy " + x + "/v6", Peers: []policy.Peer{{CIDR: "198.18.62.0/24"}}, AllPorts: true}}})})

	multi := &mnp.MultiNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: x, Name: "bad-for", Annotations: map[string]string{mnp.PolicyForAnnotation: "missing"}},
	}
	if err := c.Create(ctx, multi); err != nil {
		t.Fatal(err)
	}
	waitEnforced(ctx, t, c, multi, metav1.ConditionFalse, netpol.ReasonNetworkNotFound)
	waitEvent(ctx, t, c, x, multi.Name, corev1.EventTypeWarning, ReasonPolicyNotEnforced, netpol.ReasonNetworkNotFound, x+"/missing")
	updatePolicy(ctx, t, c, multi, func(p *mnp.MultiNetworkPolicy) { p.Annotations[mnp.PolicyForAnnotation] = "macvlan" })
	waitEnforced(ctx, t, c, multi, metav1.ConditionFalse, netpol.ReasonNotXVRNetwork)
	waitEvent(ctx, t, c, x, multi.Name, corev1.EventTypeWarning, ReasonPolicyNotEnforced, netpol.ReasonNotXVRNetwork, x+"/macvlan")

	// Fixed: True, with a Normal Event; the transition time moves.
	updatePolicy(ctx, t, c, multi, func(p *mnp.MultiNetworkPolicy) { p.Annotations[mnp.PolicyForAnnotation] = "net1" })
	waitEnforced(ctx, t, c, multi, metav1.ConditionTrue, ReasonPolicyEnforced)
	waitEvent(ctx, t, c, x, multi.Name, corev1.EventTypeNormal, ReasonPolicyEnforced)
	updatePolicy(ctx, t, c, np, func(p *networkingv1.NetworkPolicy) { p.Spec.Ingress[0].From = p.Spec.Ingress[0].From[1:] })
	fixed := waitEnforced(ctx, t, c, np, metav1.ConditionTrue, ReasonPolicyEnforced)
	if fixed.LastTransitionTime.Before(&cond.LastTransitionTime) {
		t.Errorf("transition time %v before %v", fixed.LastTransitionTime, cond.LastTransitionTime)
	}
	// Deleting the policy: the pod is no longer isolated.
	deleteObj(ctx, t, c, np)
	waitNodePolicy(ctx, t, c, node.Name, []v1alpha1.InterfacePolicy{entry(a, defaultNet, policy.Set{})})
	if err := c.Get(ctx, client.ObjectKeyFromObject(np), np); !apierrors.IsNotFound(err) {
		t.Errorf("policy after delete: %v", err)
	}
}
