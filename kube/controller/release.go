package controller

import (
	"context"
	"fmt"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
)

// release tears down the VN of a NAD that is being deleted (or no longer
// served) once nothing uses it, then removes the finalizer; while something
// does, it says so on the NAD and the VN and retries. obj is nil for a VN
// whose NAD is already gone.
func (r *networkReconciler) release(ctx context.Context, key types.NamespacedName, obj *nadv1.NetworkAttachmentDefinition) (reconcile.Result, string, error) {
	vn, err := r.getVN(ctx, key)
	if err != nil {
		return reconcile.Result{}, "", err
	}
	u, err := r.usage(ctx, key, vn)
	if err != nil {
		return reconcile.Result{}, "", err
	}
	if u.inUse() {
		return r.waitUnused(ctx, key, obj, vn, u.message(key.String()))
	}
	if vn != nil {
		if err := r.deleteVN(ctx, vn); err != nil {
			return reconcile.Result{}, "", err
		}
	}
	if obj != nil {
		if err := r.removeFinalizer(ctx, obj); err != nil {
			return reconcile.Result{}, "", err
		}
	}
	return reconcile.Result{}, outcomeReleased, nil
}

// waitUnused reports a deletion that waits, as an Event on the NAD (the VN
// without one) and the VN's Deleting condition.
func (r *networkReconciler) waitUnused(ctx context.Context, key types.NamespacedName, obj *nadv1.NetworkAttachmentDefinition,
	vn *v1alpha1.VirtualNetwork, msg string) (reconcile.Result, string, error) {
	switch {
	case obj != nil:
		r.rec.Event(obj, corev1.EventTypeWarning, ReasonNetworkInUse, msg)
	case vn != nil:
		r.rec.Event(vn, corev1.EventTypeWarning, ReasonNetworkInUse, msg)
	}
	if vn != nil {
		err := r.writeStatus(ctx, vn, condition(v1alpha1.ConditionDeleting, false, ReasonInUse, msg))
		if err != nil {
			return reconcile.Result{}, "", err
		}
	}
	return reconcile.Result{RequeueAfter: r.opts.RetryInterval}, outcomeInUse, nil
}

// usage finds what uses the VN key: pod interfaces by address space or
// attachment, and VNs that refer to it. The cache answers first; when it
// finds nothing, the API server is asked for the InstanceIPs labelled with
// the VN, so an interface made a moment ago still counts.
func (r *networkReconciler) usage(ctx context.Context, key types.NamespacedName, vn *v1alpha1.VirtualNetwork) (usage, error) {
	var u usage
	var err error
	if u.interfaces, err = r.interfaces(ctx, key.String()); err != nil {
		return u, err
	}
	vnName, project := nad.ContrailNames(r.opts.Cluster, key.Namespace, key.Name)
	if vn != nil {
		vnName, project = vn.Spec.VNName, vn.Spec.Project
	}
	var refs v1alpha1.VirtualNetworkList
	if err := r.c.List(ctx, &refs, client.MatchingFields{indexVNRef: contrailKey(project, vnName)}); err != nil {
		return u, fmt.Errorf("listing references to %s: %w", key, err)
	}
	for i := range refs.Items {
		if refs.Items[i].Key() != key.String() {
			u.refs = append(u.refs, refs.Items[i])
		}
	}
	if !u.inUse() {
		u.interfaces, err = r.labelledInterfaces(ctx, key.String())
	}
	return u, err
}

// labelledInterfaces asks the API server for (at most a few of) the
// InstanceIPs whose network label is key.
func (r *networkReconciler) labelledInterfaces(ctx context.Context, key string) ([]v1alpha1.InstanceIP, error) {
	var list v1alpha1.InstanceIPList
	err := r.api.List(ctx, &list, client.MatchingLabels{v1alpha1.LabelNetwork: v1alpha1.NetworkLabel(key)}, client.Limit(maxNamed))
	if err != nil {
		return nil, fmt.Errorf("listing InstanceIPs of %s: %w", key, err)
	}
	return list.Items, nil
}

func (r *networkReconciler) deleteVN(ctx context.Context, vn *v1alpha1.VirtualNetwork) error {
	err := r.c.Delete(ctx, vn, client.Preconditions{UID: &vn.UID})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting VirtualNetwork %s: %w", vn.Key(), err)
	}
	r.rec.Eventf(vn, corev1.EventTypeNormal, ReasonDeleted, "VN %s in project %s deleted with its NAD", vn.Spec.VNName, vn.Spec.Project)
	return nil
}

// orphan handles a VN whose NAD is gone without the controller having
// released it (its finalizer removed by hand): a VN the controller made is
// deleted once unused. Other VNs are not touched.
func (r *networkReconciler) orphan(ctx context.Context, key types.NamespacedName) (reconcile.Result, string, error) {
	vn, err := r.getVN(ctx, key)
	if err != nil || vn == nil || !managed(vn) {
		return reconcile.Result{}, outcomeIgnored, err
	}
	return r.release(ctx, key, nil)
}
