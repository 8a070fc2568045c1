package netpol

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/xvr-project/xvr/policy"
)

// FuzzCompute feeds the strings users write (networks and policy-for
// annotations, ipBlocks, ports, protocols, selector values) to Compute:
// it never panics, every Set it returns compiles, and a problem always
// has an object and a reason.
func FuzzCompute(f *testing.F) {
	f.Add("net1,y/net2@eth1", "net1", "198.18.0.0/16", "198.18.1.0/24", "http", "TCP", int32(80), int32(90), "a")
	f.Add(`[{"name":"net1","namespace":"x"}]`, "x/net1, ,net1", "2001:db8::/32", "", "", "SCTP", int32(0), int32(-1), "")
	f.Add("a/b/c", "", "bogus", "198.19.0.0/8", "Not_A_Name", "ICMP", int32(70000), int32(1), "!!")
	f.Fuzz(func(t *testing.T, networks, policyFor, cidr, except, portName, protocol string, num, end int32, label string) {
		c := newCluster().ns("x", "team", label)
		c.in.NADs = map[string]bool{"x/net1": true, "y/net2": false}
		c.pod("x/a", "n1", "198.18.0.1", "app", "a")
		c.last().Annotations = map[string]string{NetworksAnnotation: networks}
		withPorts(c.last(), corev1.ContainerPort{Name: portName, ContainerPort: num, Protocol: corev1.Protocol(protocol)})
		c.iip(c.last(), "x/net1", "198.18.10.1")
		c.pod("x/b", "n1", "198.18.0.2", "app", label)
		withPorts(c.last(), corev1.ContainerPort{Name: portName, ContainerPort: end})
		proto := corev1.Protocol(protocol)
		named, numbered := intstr.FromString(portName), intstr.FromInt32(num)
		spec := networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{"Ingress", networkingv1.PolicyType(label), "Egress"},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: []string{except}}},
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": label}}},
					{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "team", Operator: metav1.LabelSelectorOperator(label), Values: []string{label}}}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &proto, Port: &named}, {Protocol: &proto, Port: &numbered, EndPort: &end}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Port: &named}, {Protocol: &proto, Port: &numbered}},
			}, {
				To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}, {IPBlock: &networkingv1.IPBlock{CIDR: cidr}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &named}},
			}},
		}
		c.np("x/p", spec)
		c.mnp("x/m", policyFor, spec)
		r := Compute(c.in)
		for _, list := range r.Nodes {
			for _, ip := range list {
				if _, err := policy.Compile(&ip.Policy); err != nil {
					t.Fatalf("%s/%s %s: %v: %+v", ip.Pod.Namespace, ip.Pod.Name, ip.Network, err, ip.Policy)
				}
			}
		}
		for _, p := range r.Problems {
			if p.Kind == "" || p.Name == "" || p.Reason == "" || p.Message == "" {
				t.Fatalf("incomplete problem %+v", p)
			}
		}
	})
}
