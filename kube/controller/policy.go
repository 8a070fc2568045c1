package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/xvr-project/xvr/kube/mnp"
	"github.com/xvr-project/xvr/kube/netpol"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
)

const policyController = "network-policy"

// Policy status: the annotation, its condition type and reasons.
const (
	// AnnotationPolicyStatus is the JSON list of metav1.Conditions the
	// controller keeps on a NetworkPolicy or MultiNetworkPolicy (neither has
	// a status it could write in this API version). Written once a policy
	// has a problem; then kept up to date (True once fixed).
	AnnotationPolicyStatus = "xvr.io/policy-status"
	// ConditionEnforced: True when xvr enforces every part of the policy.
	ConditionEnforced = "Enforced"
	// ReasonPolicyEnforced: Enforced=True; also the Normal Event of a fixed policy.
	ReasonPolicyEnforced = "Enforced"
	// ReasonPolicyNotEnforced is the Warning Event of each problem.
	ReasonPolicyNotEnforced = "PolicyNotEnforced"
	// ReasonProblems: Enforced=False with problems of several reasons.
	ReasonProblems = "NotFullyEnforced"
)

// Outcomes of the policy reconciler.
const (
	outcomePoliciesWritten   = "written"   // a NodePolicy created, updated or deleted
	outcomePoliciesUnchanged = "unchanged" // every NodePolicy already right
)

// policyKey is the policy reconciler's one request: every event asks for
// the whole computation, and the work queue coalesces them.
var policyKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "all-nodes"}}

// policyReconciler computes each node's NodePolicy from the policies,
// pods, namespaces, InstanceIPs and NADs (kube/netpol) and writes what
// differs; it reports what a policy cannot enforce (Events and the
// policy-status annotation).
type policyReconciler struct{ *base }

func addPolicyController(mgr manager.Manager, b *base) error {
	r := &policyReconciler{b}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{policyKey}
	})
	err := builder.ControllerManagedBy(mgr).
		Named(policyController).
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(policyKey) // at start: nodes with no pods get theirs too
			return nil
		})).
		Watches(&v1alpha1.NodePolicy{}, all).
		Watches(&networkingv1.NetworkPolicy{}, all, builder.WithPredicates(policyChanged)).
		Watches(&mnp.MultiNetworkPolicy{}, all, builder.WithPredicates(policyChanged)).
		Watches(&corev1.Pod{}, all, builder.WithPredicates(podChanged)).
		Watches(&corev1.Namespace{}, all, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&v1alpha1.InstanceIP{}, all).
		Watches(&nadv1.NetworkAttachmentDefinition{}, all, builder.WithPredicates(nadChanged)).
		Watches(&corev1.Node{}, all, builder.OnlyMetadata, builder.WithPredicates(lifecycleOnly)).
		Complete(r)
	if err != nil {
		return fmt.Errorf("controller: %s: %w", policyController, err)
	}
	return nil
}

// lifecycleOnly passes creates and deletes.
var lifecycleOnly = predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}

// policyChanged passes spec changes and policy-for changes (not the
// controller's own status annotation).
var policyChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
		e.ObjectOld.GetAnnotations()[mnp.PolicyForAnnotation] != e.ObjectNew.GetAnnotations()[mnp.PolicyForAnnotation] ||
		e.ObjectOld.GetAnnotations()[AnnotationPolicyStatus] != e.ObjectNew.GetAnnotations()[AnnotationPolicyStatus]
}}

// nadChanged passes a NAD's config changes (whether xvr serves it).
var nadChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*nadv1.NetworkAttachmentDefinition)
	n, ok2 := e.ObjectNew.(*nadv1.NetworkAttachmentDefinition)
	return !ok1 || !ok2 || nad.Served(o.Spec.Config) != nad.Served(n.Spec.Config)
}}

// podChanged passes the pod updates the computation reads: labels, node,
// networks annotation, phase, deletion, host network, container ports;
// not the status churn of probes and restarts.
var podChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*corev1.Pod)
	n, ok2 := e.ObjectNew.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	return !equality.Semantic.DeepEqual(o.Labels, n.Labels) || o.Spec.NodeName != n.Spec.NodeName ||
		o.Annotations[netpol.NetworksAnnotation] != n.Annotations[netpol.NetworksAnnotation] ||
		o.Status.Phase != n.Status.Phase || o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero() ||
		o.Spec.HostNetwork != n.Spec.HostNetwork || o.UID != n.UID ||
		!equality.Semantic.DeepEqual(containerPorts(o), containerPorts(n))
}}

func containerPorts(p *corev1.Pod) [][]corev1.ContainerPort {
	var out [][]corev1.ContainerPort
	for _, list := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range list {
			out = append(out, c.Ports)
		}
	}
	return out
}

// Reconcile recomputes every node's NodePolicy.
func (r *policyReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if req != policyKey {
		return reconcile.Result{}, nil
	}
	outcome, err := r.reconcile(ctx)
	if apierrors.IsConflict(err) {
		// The cache is behind our own last write (or a policy changed
		// under the status patch): look again once it has caught up.
		log.FromContext(ctx).V(1).Info("conflict; recomputing soon", "err", err.Error())
		return reconcile.Result{RequeueAfter: requeueSoon(true)}, nil
	}
	r.observe(policyController, req.Name, outcome)
	return reconcile.Result{}, err
}

func (r *policyReconciler) reconcile(ctx context.Context) (string, error) {
	in, err := r.inputs(ctx)
	if err != nil {
		return "", err
	}
	res := netpol.Compute(*in)
	written, err := r.writeNodePolicies(ctx, res.Nodes)
	if err != nil {
		return "", err
	}
	if err := r.reportProblems(ctx, in, res.Problems); err != nil {
		return "", err
	}
	if written {
		return outcomePoliciesWritten, nil
	}
	return outcomePoliciesUnchanged, nil
}

// inputs lists what netpol.Compute reads from the cache.
func (r *policyReconciler) inputs(ctx context.Context) (*netpol.Inputs, error) {
	var (
		nps   networkingv1.NetworkPolicyList
		mnps  mnp.MultiNetworkPolicyList
		pods  corev1.PodList
		nss   corev1.NamespaceList
		iips  v1alpha1.InstanceIPList
		nadsL nadv1.NetworkAttachmentDefinitionList
	)
	for _, l := range []client.ObjectList{&nps, &mnps, &pods, &nss, &iips, &nadsL} {
		if err := r.c.List(ctx, l); err != nil {
			return nil, fmt.Errorf("listing %T: %w", l, err)
		}
	}
	nads := make(map[string]bool, len(nadsL.Items))
	for i := range nadsL.Items {
		n := &nadsL.Items[i]
		nads[n.Namespace+"/"+n.Name] = nad.Served(n.Spec.Config)
	}
	return &netpol.Inputs{
		NetworkPolicies: nps.Items, MultiNetworkPolicies: mnps.Items, Pods: pods.Items,
		Namespaces: nss.Items, InstanceIPs: iips.Items, DefaultNetwork: defaultKey.String(), NADs: nads,
	}, nil
}

// writeNodePolicies makes the NodePolicies what nodes says: one per
// existing Node (an empty list for a node without pods), none for a node
// that is gone. It reports whether it wrote anything.
func (r *policyReconciler) writeNodePolicies(ctx context.Context, want map[string][]v1alpha1.InterfacePolicy) (bool, error) {
	nodes := &metav1.PartialObjectMetadataList{}
	nodes.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	if err := r.c.List(ctx, nodes); err != nil {
		return false, fmt.Errorf("listing nodes: %w", err)
	}
	var have v1alpha1.NodePolicyList
	if err := r.c.List(ctx, &have); err != nil {
		return false, fmt.Errorf("listing NodePolicies: %w", err)
	}
	existing := map[string]*v1alpha1.NodePolicy{}
	for i := range have.Items {
		existing[have.Items[i].Name] = &have.Items[i]
	}
	log := log.FromContext(ctx)
	written := false
	live := map[string]bool{}
	for _, n := range nodes.Items {
		live[n.Name] = true
		spec := v1alpha1.NodePolicySpec{Interfaces: want[n.Name]}
		cur := existing[n.Name]
		switch {
		case cur == nil:
			np := &v1alpha1.NodePolicy{ObjectMeta: metav1.ObjectMeta{Name: n.Name}, Spec: spec}
			if err := r.c.Create(ctx, np); err != nil && !apierrors.IsAlreadyExists(err) {
				return written, fmt.Errorf("creating NodePolicy %s: %w", n.Name, err)
			}
			log.Info("created a NodePolicy", "node", n.Name, "interfaces", len(spec.Interfaces))
		case !cur.DeletionTimestamp.IsZero() || equality.Semantic.DeepEqual(cur.Spec, spec):
			continue
		default:
			cur = cur.DeepCopy()
			cur.Spec = spec
			if err := r.c.Update(ctx, cur); err != nil {
				return written, fmt.Errorf("updating NodePolicy %s: %w", n.Name, err)
			}
			log.Info("updated a NodePolicy", "node", n.Name, "interfaces", len(spec.Interfaces))
		}
		written = true
	}
	for name, cur := range existing {
		if live[name] || !cur.DeletionTimestamp.IsZero() {
			continue
		}
		if err := r.c.Delete(ctx, cur, client.Preconditions{UID: &cur.UID}); client.IgnoreNotFound(err) != nil {
			return written, fmt.Errorf("deleting NodePolicy %s: %w", name, err)
		}
		log.Info("deleted the NodePolicy of a node that is gone", "node", name)
		written = true
	}
	return written, nil
}

// reportProblems brings every policy's Enforced condition up to date: a
// policy with problems gets Enforced=False and a Warning Event per problem
// when that changes; one that had a condition and has none left gets
// Enforced=True and a Normal Event.
func (r *policyReconciler) reportProblems(ctx context.Context, in *netpol.Inputs, problems []netpol.Problem) error {
	byObject := map[string][]netpol.Problem{}
	for _, p := range problems {
		byObject[p.Object()] = append(byObject[p.Object()], p)
	}
	for i := range in.NetworkPolicies {
		p := &in.NetworkPolicies[i]
		if err := r.setEnforced(ctx, p, byObject[netpol.KindNetworkPolicy+" "+p.Namespace+"/"+p.Name]); err != nil {
			return err
		}
	}
	for i := range in.MultiNetworkPolicies {
		p := &in.MultiNetworkPolicies[i]
		if err := r.setEnforced(ctx, p, byObject[netpol.KindMultiNetworkPolicy+" "+p.Namespace+"/"+p.Name]); err != nil {
			return err
		}
	}
	return nil
}

// setEnforced patches obj's policy-status annotation when its Enforced
// condition changes.
func (r *policyReconciler) setEnforced(ctx context.Context, obj client.Object, problems []netpol.Problem) error {
	raw, had := obj.GetAnnotations()[AnnotationPolicyStatus]
	if !had && len(problems) == 0 {
		return nil
	}
	var conds []metav1.Condition
	if had {
		// A mangled annotation is rewritten.
		_ = json.Unmarshal([]byte(raw), &conds)
	}
	want := enforcedCondition(obj.GetGeneration(), problems)
	if c := meta.FindStatusCondition(conds, ConditionEnforced); c != nil && c.Status == want.Status &&
		c.Reason == want.Reason && c.Message == want.Message && c.ObservedGeneration == want.ObservedGeneration {
		return nil
	}
	meta.SetStatusCondition(&conds, want)
	b, err := json.Marshal(conds)
	if err != nil {
		return fmt.Errorf("encoding the policy status: %w", err)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": obj.GetResourceVersion(),
		"annotations":     map[string]string{AnnotationPolicyStatus: string(b)},
	}})
	if err != nil {
		return fmt.Errorf("encoding the policy status patch: %w", err)
	}
	err = r.c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		// A conflict: the policy changed; its event brings us back.
		return fmt.Errorf("patching the policy status of %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	if len(problems) == 0 {
		r.rec.Event(obj, corev1.EventTypeNormal, ReasonPolicyEnforced, "every part of the policy is enforced")
		return nil
	}
	for _, p := range problems {
		r.rec.Eventf(obj, corev1.EventTypeWarning, ReasonPolicyNotEnforced, "%s: %s", p.Reason, p.Message)
	}
	log.FromContext(ctx).Info("a policy is not fully enforced", "object", problems[0].Object(), "problems", len(problems), "message", want.Message)
	return nil
}

// enforcedCondition is the Enforced condition for a policy's problems.
func enforcedCondition(generation int64, problems []netpol.Problem) metav1.Condition {
	c := metav1.Condition{Type: ConditionEnforced, ObservedGeneration: generation}
	if len(problems) == 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, ReasonPolicyEnforced, "every part of the policy is enforced"
		return c
	}
	c.Status, c.Reason = metav1.ConditionFalse, problems[0].Reason
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Message
		if p.Reason != c.Reason {
			c.Reason = ReasonProblems
		}
	}
	c.Message = strings.Join(slices.Compact(msgs), "; ")
	return c
}
