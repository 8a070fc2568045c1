// Package mnp holds the Go types of the Network Plumbing Working Group's
// MultiNetworkPolicy (k8s.cni.cncf.io/v1beta1,
// multi-networkpolicies.k8s.cni.cncf.io): a NetworkPolicy for the
// secondary networks (NADs) that its k8s.v1.cni.cncf.io/policy-for
// annotation names.
//
// Upstream's v1beta1 spec has the JSON shape of networking.k8s.io/v1's
// NetworkPolicySpec (podSelector, ingress/from, egress/to, ports,
// policyTypes; peers with podSelector, namespaceSelector, ipBlock), so Spec
// is that type: the same code computes both kinds of policy, and endPort,
// which v1beta1 lacks, is read when present. The CRD (kube/crds) keeps the
// spec as written, so nothing validates it on the way in: the controller
// reports what it cannot enforce.
//
// Importers: kube/controller, kube/netpol, kube/crds' tests. No I/O.
package mnp

import (
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version of the MultiNetworkPolicy API.
const (
	Group   = "k8s.cni.cncf.io"
	Version = "v1beta1"
	Kind    = "MultiNetworkPolicy"
)

// PolicyForAnnotation names the NADs a MultiNetworkPolicy applies to, a
// comma-separated list of "[namespace/]name" (namespace defaulting to the
// policy's).
const PolicyForAnnotation = "k8s.v1.cni.cncf.io/policy-for"

// GroupVersion is k8s.cni.cncf.io/v1beta1.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// MultiNetworkPolicy is a NetworkPolicy for secondary networks.
type MultiNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec networkingv1.NetworkPolicySpec `json:"spec,omitempty"`
}

// MultiNetworkPolicyList is a list of MultiNetworkPolicies.
type MultiNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MultiNetworkPolicy `json:"items"`
}

// PolicyFor returns the NAD keys ("namespace/name") the policy-for
// annotation names, in order, each once; a name without a namespace is in
// the policy's. Empty items are skipped.
func (p *MultiNetworkPolicy) PolicyFor() []string {
	var out []string
	seen := map[string]bool{}
	for _, item := range strings.Split(p.Annotations[PolicyForAnnotation], ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			item = p.Namespace + "/" + item
		}
		if !seen[item] {
			seen[item] = true
			out = append(out, item)
		}
	}
	return out
}

// DeepCopyInto copies p into out.
func (p *MultiNetworkPolicy) DeepCopyInto(out *MultiNetworkPolicy) {
	*out = *p
	out.TypeMeta = p.TypeMeta
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	p.Spec.DeepCopyInto(&out.Spec)
}

// DeepCopy returns a copy of p.
func (p *MultiNetworkPolicy) DeepCopy() *MultiNetworkPolicy {
	if p == nil {
		return nil
	}
	out := new(MultiNetworkPolicy)
	p.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (p *MultiNetworkPolicy) DeepCopyObject() runtime.Object { return p.DeepCopy() }

// DeepCopyInto copies l into out.
func (l *MultiNetworkPolicyList) DeepCopyInto(out *MultiNetworkPolicyList) {
	*out = *l
	out.TypeMeta = l.TypeMeta
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]MultiNetworkPolicy, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopy returns a copy of l.
func (l *MultiNetworkPolicyList) DeepCopy() *MultiNetworkPolicyList {
	if l == nil {
		return nil
	}
	out := new(MultiNetworkPolicyList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *MultiNetworkPolicyList) DeepCopyObject() runtime.Object { return l.DeepCopy() }

// SchemeBuilder registers the types; AddToScheme adds them to a scheme.
var (
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	AddToScheme   = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &MultiNetworkPolicy{}, &MultiNetworkPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
