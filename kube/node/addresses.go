package node

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/vrouter/agent"
)

// instanceIP is the object that claims c for this node.
func (n *Node) instanceIP(c agent.AddressClaim) *v1alpha1.InstanceIP {
	o := &v1alpha1.InstanceIP{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.InstanceIPName(c.Network, c.IP), Labels: map[string]string{
			v1alpha1.LabelNode: n.cfg.Name, v1alpha1.LabelNetwork: v1alpha1.NetworkLabel(c.Network)}},
		Spec: v1alpha1.InstanceIPSpec{Network: c.Network, Attachment: c.Port.Network, IP: c.IP.String(),
			MAC: c.Port.MAC, Node: n.cfg.Name, NodeIP: n.cfg.NodeIP, Label: c.Label, Port: c.Port.ID},
	}
	if p := c.Port.Pod; p != nil {
		o.Spec.Pod = &v1alpha1.PodRef{Namespace: p.Namespace, Name: p.Name, UID: p.UID}
		if p.UID != "" {
			o.Labels[v1alpha1.LabelPodUID] = p.UID
		}
	}
	return o
}

// Claim implements agent.Addresses: it creates the address's InstanceIP.
// The API server refuses a second object of one name, which is the
// cluster-wide duplicate check; an existing one of this port is ours.
func (n *Node) Claim(ctx context.Context, c agent.AddressClaim) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	want := n.instanceIP(c)
	err := n.c.Create(ctx, want)
	if err == nil {
		n.noteClaimed(want)
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating instance ip %s: %w", want.Name, err)
	}
	var cur v1alpha1.InstanceIP
	if err := n.c.Get(ctx, client.ObjectKey{Name: want.Name}, &cur); err != nil {
		return fmt.Errorf("reading instance ip %s: %w", want.Name, err)
	}
	switch {
	case cur.Spec.Node == n.cfg.Name && cur.Spec.Port == c.Port.ID:
		return n.refresh(ctx, &cur, want)
	case cur.Spec.Node == n.cfg.Name && n.isPending(cur.Name):
		// Our own release that has not reached the API server yet.
		if err := n.c.Delete(ctx, &cur, client.Preconditions{UID: &cur.UID}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("releasing stale instance ip %s: %w", cur.Name, err)
		}
		n.donePending(cur.Name)
		if err := n.c.Create(ctx, want); err != nil {
			return fmt.Errorf("creating instance ip %s: %w", want.Name, err)
		}
		n.noteClaimed(want)
		return nil
	}
	return fmt.Errorf("%s is port %s on node %s: %w", c.IP, cur.Spec.Port, cur.Spec.Node, agent.ErrAddressTaken)
}

// refresh updates our own InstanceIP when what it says changed (a new MAC,
// label or pod after a re-ADD of the same port).
func (n *Node) refresh(ctx context.Context, cur, want *v1alpha1.InstanceIP) error {
	if specEqual(cur.Spec, want.Spec) {
		n.noteClaimed(cur)
		return nil
	}
	cur.Spec, cur.Labels = want.Spec, want.Labels
	if err := n.c.Update(ctx, cur); err != nil {
		return fmt.Errorf("updating instance ip %s: %w", cur.Name, err)
	}
	n.noteClaimed(cur)
	return nil
}

func specEqual(a, b v1alpha1.InstanceIPSpec) bool {
	pa, pb := a.Pod, b.Pod
	a.Pod, b.Pod = nil, nil
	return a == b && (pa == nil) == (pb == nil) && (pa == nil || *pa == *pb)
}

// noteClaimed records a claim in the hint map before the cache shows it.
func (n *Node) noteClaimed(o *v1alpha1.InstanceIP) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.taken[o.Name] = o.Spec.Node + "/" + o.Spec.Port
	delete(n.pending, o.Name)
}

// Release implements agent.Addresses: the InstanceIP is deleted in the
// background, retried until the API server takes it. It never blocks (the
// agent holds its lock).
func (n *Node) Release(c agent.AddressClaim) {
	name := v1alpha1.InstanceIPName(c.Network, c.IP)
	n.mu.Lock()
	n.pending[name] = claimKey{port: c.Port.ID, node: n.cfg.Name}
	n.mu.Unlock()
	n.schedRelease()
}

func (n *Node) isPending(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.pending[name]
	return ok
}

func (n *Node) donePending(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pending, name)
}

// Pending counts releases not yet done (for tests and metrics).
func (n *Node) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.pending)
}

// releaser deletes pending InstanceIPs, backing off while the API server
// is unreachable (1 s doubling to 30 s).
func (n *Node) releaser(ctx context.Context) {
	backoff := time.Second
	for {
		failed := n.releaseAll(ctx)
		wait := n.cfg.Resync
		if failed {
			wait, backoff = backoff, min(2*backoff, 30*time.Second)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-n.relKick:
		case <-time.After(wait):
		}
	}
}

// releaseAll tries every pending release once; it reports whether any failed.
func (n *Node) releaseAll(ctx context.Context) bool {
	n.mu.Lock()
	todo := make(map[string]claimKey, len(n.pending))
	for k, v := range n.pending {
		todo[k] = v
	}
	n.mu.Unlock()
	failed := false
	for name, k := range todo {
		if err := n.releaseOne(ctx, name, k); err != nil {
			n.log.Warn("releasing instance ip; will retry", "instanceip", name, "err", err)
			failed = true
			continue
		}
		n.mu.Lock()
		if n.pending[name] == k {
			delete(n.pending, name)
			delete(n.taken, name)
		}
		n.mu.Unlock()
	}
	return failed
}

// releaseOne deletes the InstanceIP if it is still this port's.
func (n *Node) releaseOne(ctx context.Context, name string, k claimKey) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	var cur v1alpha1.InstanceIP
	err := n.c.Get(ctx, client.ObjectKey{Name: name}, &cur)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	if cur.Spec.Node != k.node || cur.Spec.Port != k.port {
		return nil // someone else's now
	}
	err = n.c.Delete(ctx, &cur, client.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting: %w", err)
	}
	n.log.Debug("instance ip released", "instanceip", name)
	return nil
}
