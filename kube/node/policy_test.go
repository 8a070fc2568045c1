package node

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/policy"
)

// TestNodePolicy: the node applies its own NodePolicy (Enforce), ignores
// another node's, and stops enforcing when its object is deleted.
func TestNodePolicy(t *testing.T) {
	_, fa, c := setup(t, "pol-a", "198.18.200.11")
	ctx := context.Background()
	if p := fa.Policies(ctx); p.Enforce {
		t.Fatalf("enforcing with no NodePolicy: %+v", p)
	}
	entry := func(pod string) v1alpha1.InterfacePolicy {
		return v1alpha1.InterfacePolicy{Pod: v1alpha1.PodRef{Namespace: "x", Name: pod, UID: "u-" + pod},
			Network: "default/cluster-wide-default",
			Policy: policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: "NetworkPolicy x/p", AllPorts: true,
				Peers: []policy.Peer{{CIDR: "198.18.10.0/24", Except: []string{"198.18.10.7/32"}}}}}}}
	}
	other := &v1alpha1.NodePolicy{ObjectMeta: metav1.ObjectMeta{Name: "pol-b"},
		Spec: v1alpha1.NodePolicySpec{Interfaces: []v1alpha1.InterfacePolicy{entry("b")}}}
	mine := &v1alpha1.NodePolicy{ObjectMeta: metav1.ObjectMeta{Name: "pol-a"},
		Spec: v1alpha1.NodePolicySpec{Interfaces: []v1alpha1.InterfacePolicy{entry("a")}}}
	for _, o := range []*v1alpha1.NodePolicy{other, mine} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the node's policy applied", func() bool {
		p := fa.Policies(ctx)
		return p.Enforce && len(p.Interfaces) == 1 && p.Interfaces[0].Pod.Name == "a" && p.Interfaces[0].Pod.UID == "u-a" &&
			p.Interfaces[0].Policy.IngressRules[0].Peers[0].Except[0] == "198.18.10.7/32"
	})
	if err := c.Delete(ctx, mine); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no enforcement once the object is gone", func() bool {
		p := fa.Policies(ctx)
		return !p.Enforce && len(p.Interfaces) == 0
	})
	if err := c.Delete(ctx, other); err != nil {
		t.Fatal(err)
	}
}
