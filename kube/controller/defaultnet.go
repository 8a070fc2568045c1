package controller

import (
	"context"
	"fmt"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
)

const defaultController = "default-network"

// defaultReconciler keeps the cluster default network: it creates
// default/cluster-wide-default, recreates it when deleted, keeps its CIDR
// on Options.DefaultCIDR (not while pods use another) and its status. Its
// only request is the default network's key.
type defaultReconciler struct{ *base }

func addDefaultController(mgr manager.Manager, b *base) error {
	r := &defaultReconciler{b}
	isDefault := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == defaultKey.Namespace && o.GetName() == defaultKey.Name
	})
	err := builder.ControllerManagedBy(mgr).
		Named(defaultController).
		For(&v1alpha1.VirtualNetwork{}, builder.WithPredicates(isDefault)).
		Watches(&v1alpha1.InstanceIP{}, handler.EnqueueRequestsFromMapFunc(mapIIPToDefault)).
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(reconcile.Request{NamespacedName: defaultKey}) // at start, whether or not it exists
			return nil
		})).
		Complete(r)
	if err != nil {
		return fmt.Errorf("controller: %s: %w", defaultController, err)
	}
	return nil
}

// Reconcile creates or updates the default network.
func (r *defaultReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if req.NamespacedName != defaultKey {
		return reconcile.Result{}, nil
	}
	res, outcome, err := r.reconcile(ctx)
	r.observe(defaultController, req.String(), outcome)
	return res, err
}

func (r *defaultReconciler) reconcile(ctx context.Context) (reconcile.Result, string, error) {
	want := r.spec()
	vn, err := r.getVN(ctx, defaultKey)
	if err != nil {
		return reconcile.Result{}, "", err
	}
	if vn == nil {
		vn = newVN(defaultKey, want)
		if exists, err := r.createVN(ctx, vn); exists || err != nil {
			return reconcile.Result{RequeueAfter: requeueSoon(err == nil)}, "", err
		}
	}
	if !vn.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, "", nil // recreated after the delete event
	}
	refused, err := r.updateSpec(ctx, vn, want)
	if err != nil {
		return reconcile.Result{}, "", err
	}
	return r.report(ctx, vn, refused, vn)
}

// spec is the default network as xvrd declares it for itself.
func (r *defaultReconciler) spec() v1alpha1.VirtualNetworkSpec {
	s := v1alpha1.VirtualNetworkSpec{CIDR: r.opts.DefaultCIDR.String(), CNIType: nad.CNITypeXVR}
	s.VNName, s.Project = nad.ContrailNames(r.opts.Cluster, defaultKey.Namespace, defaultKey.Name)
	return s
}
