package mnp

import (
	"encoding/json"
	"reflect"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// upstreamV1beta1 is a MultiNetworkPolicy as upstream's v1beta1 types
// marshal it.
const upstreamV1beta1 = `{"apiVersion":"k8s.cni.cncf.io/v1beta1","kind":"MultiNetworkPolicy",
"metadata":{"name":"p","namespace":"x","annotations":{"k8s.v1.cni.cncf.io/policy-for":"net1, y/net2,net1"}},
"spec":{"podSelector":{"matchLabels":{"app":"a"}},"policyTypes":["Ingress","Egress"],
"ingress":[{"from":[{"podSelector":{},"namespaceSelector":{"matchExpressions":[{"key":"k","operator":"In","values":["v"]}]}},{"ipBlock":{"cidr":"198.18.0.0/16","except":["198.18.1.0/24"]}}],
"ports":[{"protocol":"UDP","port":53},{"port":"http"}]}],
"egress":[{"to":[{"ipBlock":{"cidr":"198.18.0.0/15"}}]}]}}`

func TestUpstreamShape(t *testing.T) {
	var p MultiNetworkPolicy
	if err := json.Unmarshal([]byte(upstreamV1beta1), &p); err != nil {
		t.Fatal(err)
	}
	s := p.Spec
	if len(s.Ingress) != 1 || len(s.Ingress[0].From) != 2 || s.Ingress[0].From[1].IPBlock.Except[0] != "198.18.1.0/24" ||
		s.Ingress[0].Ports[1].Port.StrVal != "http" || *s.Ingress[0].Ports[0].Protocol != "UDP" ||
		s.Ingress[0].From[0].NamespaceSelector.MatchExpressions[0].Values[0] != "v" ||
		len(s.Egress) != 1 || s.PolicyTypes[1] != networkingv1.PolicyTypeEgress || s.PodSelector.MatchLabels["app"] != "a" {
		t.Fatalf("decoded spec = %+v", s)
	}
	if got, want := p.PolicyFor(), []string{"x/net1", "y/net2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("PolicyFor = %q, want %q", got, want)
	}
	c := p.DeepCopy()
	c.Spec.Ingress[0].From[1].IPBlock.Except[0] = "changed"
	c.Annotations["k"] = "v"
	if p.Spec.Ingress[0].From[1].IPBlock.Except[0] != "198.18.1.0/24" || p.Annotations["k"] != "" {
		t.Error("DeepCopy shares memory with the original")
	}
	l := &MultiNetworkPolicyList{Items: []MultiNetworkPolicy{p}}
	lc := l.DeepCopyObject().(*MultiNetworkPolicyList)
	lc.Items[0].Name = "other"
	if l.Items[0].Name != "p" {
		t.Error("list DeepCopy shares items")
	}
}

func TestScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	gvks, _, err := s.ObjectKinds(&MultiNetworkPolicy{})
	if err != nil || len(gvks) != 1 || gvks[0] != GroupVersion.WithKind(Kind) {
		t.Fatalf("kinds = %v, %v", gvks, err)
	}
	if _, _, err := s.ObjectKinds(&MultiNetworkPolicyList{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ObjectKinds(&metav1.ListOptions{}); err != nil {
		t.Errorf("ListOptions not registered for the group version: %v", err)
	}
}
