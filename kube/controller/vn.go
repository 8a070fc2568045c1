package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
	"github.com/xvr-project/xvr/vrouter/api"
)

// LabelManagedBy marks the VirtualNetworks the controller made (the
// Kubernetes recommended label), with the value Name.
const LabelManagedBy = "app.kubernetes.io/managed-by"

// newVN is a VN the controller makes.
func newVN(key types.NamespacedName, spec v1alpha1.VirtualNetworkSpec) *v1alpha1.VirtualNetwork {
	return &v1alpha1.VirtualNetwork{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{LabelManagedBy: Name}},
		Spec:       spec,
	}
}

// managed reports whether the controller made vn.
func managed(vn *v1alpha1.VirtualNetwork) bool { return vn.Labels[LabelManagedBy] == Name }

// specFromNetwork is the VN spec a parsed NAD declares (VNI not chosen yet).
func specFromNetwork(n api.Network, cluster string) v1alpha1.VirtualNetworkSpec {
	s := v1alpha1.VirtualNetworkSpec{
		CIDR:             n.CIDR,
		FabricForwarding: n.FabricForwarding,
		FabricSNAT:       n.FabricSNAT,
		HostAccess:       n.HostAccess,
		CNIType:          n.CNIType,
	}
	s.VNName, s.Project = nad.ContrailNames(cluster, n.Namespace, n.Name)
	if n.Ref != nil {
		s.Ref = &v1alpha1.NetworkRef{Domain: n.Ref.Domain, Project: n.Ref.Project, Name: n.Ref.Name}
	}
	return s
}

// nextSpec is what vn's spec becomes when want is applied: everything but
// its address space (CIDR or reference), which changes only while no pod
// interface uses the VN (inUse is their number). refused explains a
// change that waits. The VNI is kept (a reference's is 0).
func nextSpec(have, want v1alpha1.VirtualNetworkSpec, inUse int) (next v1alpha1.VirtualNetworkSpec, refused string) {
	next = want
	next.VNI = have.VNI
	if inUse > 0 && addressChanged(have, want) {
		next.CIDR, next.Ref = have.CIDR, have.Ref
		refused = fmt.Sprintf("the address space cannot change from %s to %s while %s use the network; "+
			"it changes once none does", addressSpace(have), addressSpace(want), plural(inUse, "pod interface"))
	}
	if next.Ref != nil {
		next.VNI = 0
	}
	return next, refused
}

func addressChanged(a, b v1alpha1.VirtualNetworkSpec) bool {
	return a.CIDR != b.CIDR || !equality.Semantic.DeepEqual(a.Ref, b.Ref)
}

// addressSpace describes a spec's CIDR or reference.
func addressSpace(s v1alpha1.VirtualNetworkSpec) string {
	if s.Ref != nil {
		return "a reference to " + contrailKey(s.Ref.Project, s.Ref.Name)
	}
	return "CIDR " + s.CIDR
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// getVN reads a VN from the cache; nil when there is none.
func (b *base) getVN(ctx context.Context, key types.NamespacedName) (*v1alpha1.VirtualNetwork, error) {
	var vn v1alpha1.VirtualNetwork
	err := b.c.Get(ctx, key, &vn)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading VirtualNetwork %s: %w", key, err)
	}
	return &vn, nil
}

// interfaces lists the InstanceIPs that use the VN key (namespace/name),
// by address space or by attachment.
func (b *base) interfaces(ctx context.Context, key string) ([]v1alpha1.InstanceIP, error) {
	var list v1alpha1.InstanceIPList
	if err := b.c.List(ctx, &list, client.MatchingFields{indexIIPNetwork: key}); err != nil {
		return nil, fmt.Errorf("listing InstanceIPs of %s: %w", key, err)
	}
	return list.Items, nil
}

// createVN creates a VN with a VNI from the allocator. exists is true when
// the API server already has it (the cache had not seen it yet).
func (b *base) createVN(ctx context.Context, vn *v1alpha1.VirtualNetwork) (exists bool, err error) {
	err = b.vnis.write(ctx, vn, func() error { return b.c.Create(ctx, vn) })
	if apierrors.IsAlreadyExists(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("creating VirtualNetwork %s: %w", vn.Key(), err)
	}
	b.rec.Eventf(vn, corev1.EventTypeNormal, ReasonCreated, "VN %s in project %s, %s, VNI %d",
		vn.Spec.VNName, vn.Spec.Project, addressSpace(vn.Spec), vn.Spec.VNI)
	return false, nil
}

// updateSpec moves vn to want, keeping its address space while it is used;
// refused says why it was kept.
func (b *base) updateSpec(ctx context.Context, vn *v1alpha1.VirtualNetwork, want v1alpha1.VirtualNetworkSpec) (refused string, err error) {
	inUse := 0
	if addressChanged(vn.Spec, want) {
		iips, err := b.interfaces(ctx, vn.Key())
		if err != nil {
			return "", err
		}
		inUse = len(iips)
	}
	next, refused := nextSpec(vn.Spec, want, inUse)
	if equality.Semantic.DeepEqual(vn.Spec, next) && managed(vn) {
		return refused, nil
	}
	orig := vn.DeepCopy()
	vn.Spec = next
	if vn.Labels == nil {
		vn.Labels = map[string]string{}
	}
	vn.Labels[LabelManagedBy] = Name
	err = b.vnis.write(ctx, vn, func() error { return b.c.Patch(ctx, vn, client.MergeFrom(orig)) })
	if err != nil {
		return "", fmt.Errorf("updating VirtualNetwork %s: %w", vn.Key(), err)
	}
	return refused, nil
}

// readiness is vn's Ready condition: False while a change is refused or
// its reference names no VN.
func (b *base) readiness(ctx context.Context, vn *v1alpha1.VirtualNetwork, refused string) (metav1.Condition, error) {
	switch {
	case refused != "":
		return condition(v1alpha1.ConditionReady, false, ReasonCIDRInUse, refused), nil
	case vn.Spec.Ref == nil:
		return condition(v1alpha1.ConditionReady, true, ReasonResolved,
			fmt.Sprintf("served to the nodes: %s, VNI %d", addressSpace(vn.Spec), vn.Spec.VNI)), nil
	}
	target, err := b.refTarget(ctx, vn)
	if err != nil {
		return metav1.Condition{}, err
	}
	if target == nil {
		return condition(v1alpha1.ConditionReady, false, ReasonRefNotFound, fmt.Sprintf(
			"opencontrail.org/network names VN %s in project %s; there is no such VirtualNetwork with a CIDR of its own",
			vn.Spec.Ref.Name, vn.Spec.Ref.Project)), nil
	}
	return condition(v1alpha1.ConditionReady, true, ReasonResolved,
		fmt.Sprintf("served to the nodes: refers to VirtualNetwork %s (%s, VNI %d)", target.Key(), target.Spec.CIDR, target.Spec.VNI)), nil
}

// refTarget finds the VN vn refers to: one with the referenced Contrail
// names and an address space of its own; nil when there is none.
func (b *base) refTarget(ctx context.Context, vn *v1alpha1.VirtualNetwork) (*v1alpha1.VirtualNetwork, error) {
	var list v1alpha1.VirtualNetworkList
	key := contrailKey(vn.Spec.Ref.Project, vn.Spec.Ref.Name)
	if err := b.c.List(ctx, &list, client.MatchingFields{indexVNContrail: key}); err != nil {
		return nil, fmt.Errorf("looking up VN %s: %w", key, err)
	}
	for i := range list.Items {
		t := &list.Items[i]
		if t.Spec.Ref == nil && t.Key() != vn.Key() && t.DeletionTimestamp.IsZero() {
			return t, nil
		}
	}
	return nil, nil
}

// report writes vn's status with its Ready condition; while it is not
// Ready, it also says why in a Warning Event on about (the NAD, or the VN
// itself) and asks to be retried.
func (b *base) report(ctx context.Context, vn *v1alpha1.VirtualNetwork, refused string, about runtime.Object) (reconcile.Result, string, error) {
	ready, err := b.readiness(ctx, vn, refused)
	if err != nil {
		return reconcile.Result{}, "", err
	}
	if err := b.writeStatus(ctx, vn, ready); err != nil {
		return reconcile.Result{}, "", err
	}
	if ready.Status != metav1.ConditionTrue {
		b.rec.Event(about, corev1.EventTypeWarning, ready.Reason, ready.Message)
		return reconcile.Result{RequeueAfter: b.opts.RetryInterval}, outcomeWaiting, nil
	}
	return reconcile.Result{}, outcomeServed, nil
}

func condition(typ string, ok bool, reason, msg string) metav1.Condition {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg}
}

// writeStatus sets vn's observed generation, interface count and the given
// conditions (Deleting is removed unless given), and writes the status if
// it changed.
func (b *base) writeStatus(ctx context.Context, vn *v1alpha1.VirtualNetwork, conds ...metav1.Condition) error {
	iips, err := b.interfaces(ctx, vn.Key())
	if err != nil {
		return err
	}
	var next v1alpha1.VirtualNetworkStatus
	vn.Status.DeepCopyInto(&next)
	next.ObservedGeneration, next.Interfaces = vn.Generation, len(iips)
	deleting := false
	for _, c := range conds {
		c.ObservedGeneration = vn.Generation
		meta.SetStatusCondition(&next.Conditions, c)
		deleting = deleting || c.Type == v1alpha1.ConditionDeleting
	}
	if !deleting {
		meta.RemoveStatusCondition(&next.Conditions, v1alpha1.ConditionDeleting)
	}
	if equality.Semantic.DeepEqual(vn.Status, next) {
		return nil
	}
	orig := vn.DeepCopy()
	vn.Status = next
	if err := b.c.Status().Patch(ctx, vn, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("writing the status of VirtualNetwork %s: %w", vn.Key(), err)
	}
	return nil
}

// usage is what keeps a VN from being deleted.
type usage struct {
	interfaces []v1alpha1.InstanceIP
	refs       []v1alpha1.VirtualNetwork
}

func (u usage) inUse() bool { return len(u.interfaces)+len(u.refs) > 0 }

// maxNamed is how many pods or networks a message names.
const maxNamed = 3

// message explains, for an operator, why the VN key is not deleted.
func (u usage) message(key string) string {
	var parts []string
	if n := len(u.interfaces); n > 0 {
		parts = append(parts, plural(n, "pod interface")+" ("+named(podNames(u.interfaces))+")")
	}
	if n := len(u.refs); n > 0 {
		keys := make([]string, len(u.refs))
		for i := range u.refs {
			keys[i] = u.refs[i].Key()
		}
		parts = append(parts, plural(n, "network")+" referring to it ("+named(keys)+")")
	}
	return "network " + key + " is still used by " + strings.Join(parts, " and ") +
		"; it is deleted once they are gone"
}

// podNames are the distinct owners of iips: pods, or node ports.
func podNames(iips []v1alpha1.InstanceIP) []string {
	seen := map[string]bool{}
	var names []string
	for i := range iips {
		s := &iips[i].Spec
		n := "port " + s.Port + " on " + s.Node
		if s.Pod != nil {
			n = "pod " + s.Pod.Namespace + "/" + s.Pod.Name
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names
}

// named joins the first maxNamed names.
func named(names []string) string {
	if len(names) > maxNamed {
		return strings.Join(names[:maxNamed], ", ") + fmt.Sprintf(", and %d more", len(names)-maxNamed)
	}
	return strings.Join(names, ", ")
}
