package node

import (
	"context"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/vrouter/api"
)

// syncPolicies gives the agent this node's NodePolicy (the cache holds
// only this node's: see New). No object: the controller does not compute
// policy for this node, so nothing is enforced; an object: every pod
// interface is policed by its entry, and one without an entry stays
// isolated until the controller has computed it. The agent keeps (and
// stores) the last set applied while the API server is away.
func (n *Node) syncPolicies(ctx context.Context) {
	var l v1alpha1.NodePolicyList
	if err := n.cache.List(ctx, &l); err != nil {
		n.log.Error("listing node policies from the cache", "err", err)
		return
	}
	want := api.Policies{}
	for i := range l.Items {
		if l.Items[i].Name != n.cfg.Name {
			continue
		}
		want.Enforce = true
		for _, e := range l.Items[i].Spec.Interfaces {
			want.Interfaces = append(want.Interfaces, api.InterfacePolicy{
				Pod:     api.PodRef{Namespace: e.Pod.Namespace, Name: e.Pod.Name, UID: e.Pod.UID},
				Network: e.Network, Policy: e.Policy})
		}
	}
	if err := n.b.SetPolicies(ctx, want); err != nil {
		n.log.Warn("applying the node's network policy", "interfaces", len(want.Interfaces), "err", err)
	}
}
