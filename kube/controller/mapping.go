package controller

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/xvr-project/xvr/kube/v1alpha1"
)

// mapVN maps a VN event to the NADs it concerns: its own, the NAD of the
// VN it refers to (whose deletion may be waiting for it) and those of the
// VNs that refer to it (waiting for it to appear).
func (r *networkReconciler) mapVN(ctx context.Context, o client.Object) []reconcile.Request {
	vn, ok := o.(*v1alpha1.VirtualNetwork)
	if !ok {
		return nil
	}
	keys := []types.NamespacedName{{Namespace: vn.Namespace, Name: vn.Name}}
	if vn.Spec.Ref != nil {
		keys = append(keys, r.vnKeys(ctx, indexVNContrail, contrailKey(vn.Spec.Ref.Project, vn.Spec.Ref.Name))...)
	}
	keys = append(keys, r.vnKeys(ctx, indexVNRef, contrailKey(vn.Spec.Project, vn.Spec.VNName))...)
	return requests(keys)
}

// vnKeys lists the keys of the VNs under value in index; a cache error is
// logged and maps to nothing (the periodic retry covers it).
func (r *networkReconciler) vnKeys(ctx context.Context, index, value string) []types.NamespacedName {
	var list v1alpha1.VirtualNetworkList
	if err := r.c.List(ctx, &list, client.MatchingFields{index: value}); err != nil {
		log.FromContext(ctx).Error(err, "mapping a VirtualNetwork event", "index", index, "value", value)
		return nil
	}
	keys := make([]types.NamespacedName, len(list.Items))
	for i := range list.Items {
		keys[i] = types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}
	}
	return keys
}

// mapIIPToNADs maps an InstanceIP event to the NADs of the VNs it uses.
func mapIIPToNADs(_ context.Context, o client.Object) []reconcile.Request {
	iip, ok := o.(*v1alpha1.InstanceIP)
	if !ok {
		return nil
	}
	var keys []types.NamespacedName
	for _, k := range iipNetworks(&iip.Spec) {
		if key, ok := parseKey(k); ok {
			keys = append(keys, key)
		}
	}
	return requests(keys)
}

// mapIIPToDefault maps an InstanceIP event on the default network to it.
func mapIIPToDefault(_ context.Context, o client.Object) []reconcile.Request {
	iip, ok := o.(*v1alpha1.InstanceIP)
	if !ok || iip.Spec.Network != defaultKey.String() {
		return nil
	}
	return []reconcile.Request{{NamespacedName: defaultKey}}
}

// requests turns NAD keys into requests, without the default network's
// (which no NAD declares) and without duplicates.
func requests(keys []types.NamespacedName) []reconcile.Request {
	seen := map[types.NamespacedName]bool{}
	var out []reconcile.Request
	for _, k := range keys {
		if k != defaultKey && !seen[k] {
			seen[k] = true
			out = append(out, reconcile.Request{NamespacedName: k})
		}
	}
	return out
}

// parseKey splits "namespace/name".
func parseKey(s string) (types.NamespacedName, bool) {
	ns, name, ok := strings.Cut(s, "/")
	return types.NamespacedName{Namespace: ns, Name: name}, ok && ns != "" && name != ""
}
