package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/xvr-project/xvr/kube/v1alpha1"
)

const gcController = "instanceip-gc"

// gcReconciler deletes InstanceIPs whose pod or node is gone. Requests are
// InstanceIP names.
//
// Pods and Nodes are watched as metadata only: the rules need nothing but
// their names and UIDs, and a full Pod or Node cache (specs, statuses,
// image lists) would be the largest thing in the process. The cache only
// suggests that an owner is gone; before deleting, the API server is asked
// directly, so a pod the cache has not seen yet never loses its address.
type gcReconciler struct{ *base }

func addGCController(mgr manager.Manager, b *base) error {
	r := &gcReconciler{b}
	// A UID change is a delete and a create, so updates never matter.
	lifecycle := predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}
	err := builder.ControllerManagedBy(mgr).
		Named(gcController).
		For(&v1alpha1.InstanceIP{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.mapBy(indexIIPPod, podKey)),
			builder.OnlyMetadata, builder.WithPredicates(lifecycle)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.mapBy(indexIIPNode, client.Object.GetName)),
			builder.OnlyMetadata, builder.WithPredicates(lifecycle)).
		Complete(r)
	if err != nil {
		return fmt.Errorf("controller: %s: %w", gcController, err)
	}
	return nil
}

func podKey(o client.Object) string { return o.GetNamespace() + "/" + o.GetName() }

// mapBy maps a pod or node event to the InstanceIPs under key(o) in index.
func (r *gcReconciler) mapBy(index string, key func(client.Object) string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.InstanceIPList
		if err := r.c.List(ctx, &list, client.MatchingFields{index: key(o)}); err != nil {
			log.FromContext(ctx).Error(err, "mapping an event to InstanceIPs", "index", index, "object", key(o))
			return nil
		}
		reqs := make([]reconcile.Request, len(list.Items))
		for i := range list.Items {
			reqs[i] = reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}}
		}
		return reqs
	}
}

// Reconcile deletes the InstanceIP if its owner is gone.
func (r *gcReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	outcome, err := r.collect(ctx, req.Name)
	r.observe(gcController, req.Name, outcome)
	return reconcile.Result{}, err
}

func (r *gcReconciler) collect(ctx context.Context, name string) (string, error) {
	var iip v1alpha1.InstanceIP
	if err := r.c.Get(ctx, types.NamespacedName{Name: name}, &iip); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if !iip.DeletionTimestamp.IsZero() {
		return "", nil
	}
	why, err := r.stale(ctx, &iip.Spec)
	if err != nil || why == "" {
		return outcomeKept, err
	}
	err = r.c.Delete(ctx, &iip, client.Preconditions{UID: &iip.UID})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return outcomeKept, nil // gone already, or a new claim of that name
	}
	if err != nil {
		return "", fmt.Errorf("deleting InstanceIP %s: %w", name, err)
	}
	log.FromContext(ctx).Info("collected an InstanceIP", "instanceIP", name, "ip", iip.Spec.IP, "network", iip.Spec.Network, "reason", why)
	return outcomeCollected, nil
}

// stale says why an InstanceIP's owner is gone, "" while it is not.
func (r *gcReconciler) stale(ctx context.Context, s *v1alpha1.InstanceIPSpec) (string, error) {
	if s.Node != "" {
		gone, err := r.gone(ctx, corev1.SchemeGroupVersion.WithKind("Node"), types.NamespacedName{Name: s.Node}, "")
		if err != nil {
			return "", err
		}
		if gone {
			return "node " + s.Node + " no longer exists", nil
		}
	}
	if s.Pod != nil {
		key := types.NamespacedName{Namespace: s.Pod.Namespace, Name: s.Pod.Name}
		gone, err := r.gone(ctx, corev1.SchemeGroupVersion.WithKind("Pod"), key, types.UID(s.Pod.UID))
		if err != nil {
			return "", err
		}
		if gone {
			return fmt.Sprintf("pod %s (uid %q) no longer exists", key, s.Pod.UID), nil
		}
	}
	return "", nil
}

// gone reports whether the object (with that UID, unless uid is empty) no
// longer exists: the cache is asked first, the API server to confirm.
func (r *gcReconciler) gone(ctx context.Context, gvk schema.GroupVersionKind, key types.NamespacedName, uid types.UID) (bool, error) {
	for _, rd := range []client.Reader{r.c, r.api} {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		err := rd.Get(ctx, key, m)
		if client.IgnoreNotFound(err) != nil {
			return false, fmt.Errorf("reading %s %s: %w", gvk.Kind, key, err)
		}
		if err == nil && (uid == "" || m.UID == uid) {
			return false, nil
		}
	}
	return true, nil
}
