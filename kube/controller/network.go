package controller

import (
	"context"
	"fmt"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
)

// Outcomes of a reconcile, for the logs and the tests.
const (
	outcomeIgnored   = "ignored"
	outcomeInvalid   = "invalid"
	outcomeServed    = "served"
	outcomeWaiting   = "waiting" // Ready=False: reference not found, change refused
	outcomeInUse     = "in-use"
	outcomeReleased  = "released"
	outcomeKept      = "kept"
	outcomeCollected = "collected"
)

const networkController = "network"

// networkReconciler turns a NAD into the VirtualNetwork of the same
// namespace and name. Requests are NAD keys.
type networkReconciler struct{ *base }

func addNetworkController(mgr manager.Manager, b *base) error {
	r := &networkReconciler{b}
	err := builder.ControllerManagedBy(mgr).
		Named(networkController).
		For(&nadv1.NetworkAttachmentDefinition{}).
		Watches(&v1alpha1.VirtualNetwork{}, handler.EnqueueRequestsFromMapFunc(r.mapVN)).
		Watches(&v1alpha1.InstanceIP{}, handler.EnqueueRequestsFromMapFunc(mapIIPToNADs)).
		Complete(r)
	if err != nil {
		return fmt.Errorf("controller: %s: %w", networkController, err)
	}
	return nil
}

// Reconcile serves, refuses or releases one NAD.
func (r *networkReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, outcome, err := r.reconcile(ctx, req.NamespacedName)
	r.observe(networkController, req.String(), outcome)
	return res, err
}

func (r *networkReconciler) reconcile(ctx context.Context, key types.NamespacedName) (reconcile.Result, string, error) {
	var obj nadv1.NetworkAttachmentDefinition
	err := r.c.Get(ctx, key, &obj)
	if apierrors.IsNotFound(err) {
		return r.orphan(ctx, key)
	}
	if err != nil {
		return reconcile.Result{}, "", fmt.Errorf("reading NAD %s: %w", key, err)
	}
	served := nad.Served(obj.Spec.Config)
	switch {
	case key == defaultKey:
		if served {
			r.rec.Eventf(&obj, corev1.EventTypeWarning, ReasonReservedName,
				"%s is the cluster default network, which xvr-kube-manager owns; this NAD is ignored", key)
		}
		return reconcile.Result{}, outcomeIgnored, nil
	case !obj.DeletionTimestamp.IsZero() || !served:
		if !controllerutil.ContainsFinalizer(&obj, v1alpha1.Finalizer) {
			return reconcile.Result{}, outcomeIgnored, nil
		}
		return r.release(ctx, key, &obj)
	}
	return r.serve(ctx, &obj)
}

// serve brings the NAD's VN up to date.
func (r *networkReconciler) serve(ctx context.Context, obj *nadv1.NetworkAttachmentDefinition) (reconcile.Result, string, error) {
	n, err := nad.FromObject(obj)
	if err != nil {
		r.rec.Eventf(obj, corev1.EventTypeWarning, ReasonInvalidNetwork,
			"%v; the VirtualNetwork is left as it was", err)
		return reconcile.Result{}, outcomeInvalid, nil
	}
	if err := r.addFinalizer(ctx, obj); err != nil {
		return reconcile.Result{}, "", err
	}
	vn, refused, err := r.apply(ctx, obj, specFromNetwork(n, r.opts.Cluster))
	if err != nil || vn == nil {
		return reconcile.Result{RequeueAfter: requeueSoon(vn == nil && err == nil)}, "", err
	}
	return r.report(ctx, vn, refused, obj)
}

// apply creates or updates the VN of obj; a nil VN means "look again" (the
// API server has one the cache does not yet).
//
// The VN has no owner reference to its NAD on purpose: a foreground
// (cascading) deletion of the NAD would have the garbage collector delete
// the VN at once, whatever still uses it. The managed-by label marks it.
func (r *networkReconciler) apply(ctx context.Context, obj *nadv1.NetworkAttachmentDefinition, want v1alpha1.VirtualNetworkSpec) (*v1alpha1.VirtualNetwork, string, error) {
	vn, err := r.getVN(ctx, client.ObjectKeyFromObject(obj))
	if err != nil {
		return nil, "", err
	}
	if vn == nil {
		vn = newVN(client.ObjectKeyFromObject(obj), want)
		if exists, err := r.createVN(ctx, vn); exists || err != nil {
			return nil, "", err
		}
		return vn, "", nil
	}
	refused, err := r.updateSpec(ctx, vn, want)
	return vn, refused, err
}

func (r *networkReconciler) addFinalizer(ctx context.Context, obj *nadv1.NetworkAttachmentDefinition) error {
	if controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		return nil
	}
	orig := obj.DeepCopy()
	controllerutil.AddFinalizer(obj, v1alpha1.Finalizer)
	if err := r.c.Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer to NAD %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	return nil
}

func (r *networkReconciler) removeFinalizer(ctx context.Context, obj *nadv1.NetworkAttachmentDefinition) error {
	orig := obj.DeepCopy()
	controllerutil.RemoveFinalizer(obj, v1alpha1.Finalizer)
	err := r.c.Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing finalizer from NAD %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	return nil
}

// requeueSoon is the delay before looking again at an object the cache is
// behind on.
func requeueSoon(behind bool) time.Duration {
	if behind {
		return time.Second
	}
	return 0
}
