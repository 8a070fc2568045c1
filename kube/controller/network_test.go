package controller

import (
	"fmt"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
)

var ready = readyIs(metav1.ConditionTrue, ReasonResolved)

// TestNADBecomesVN: a contrail-k8s-cni NAD becomes a VN with TF's names,
// the normalised CIDR, the fabric flags, the hashed VNI, Ready=True and the
// managed-by label (no owner reference); the NAD gets the finalizer.
func TestNADBecomesVN(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	ns := namespace(ctx, t, c, "nad-to-vn")
	obj := createNAD(ctx, t, c, ns, "vn-left-1", contrailConfig, map[string]string{
		nad.AnnotationCIDR: "198.18.10.7/24", nad.AnnotationFabricForwarding: "true", nad.AnnotationFabricSNAT: "true"})
	vn := waitVN(ctx, t, c, vnKey(ns, "vn-left-1"), ready)
	want := v1alpha1.VirtualNetworkSpec{
		VNName: "k8s-vn-left-1-pod-network", Project: "k8s-" + ns, CIDR: "198.18.10.0/24",
		FabricForwarding: true, FabricSNAT: true, CNIType: nad.CNITypeContrail,
		VNI: nad.VNI("k8s-"+ns, "k8s-vn-left-1-pod-network"),
	}
	if vn.Spec != want {
		t.Errorf("VN spec = %+v, want %+v", vn.Spec, want)
	}
	if vn.Status.ObservedGeneration != vn.Generation || vn.Status.Interfaces != 0 {
		t.Errorf("VN status = %+v", vn.Status)
	}
	if vn.Labels[LabelManagedBy] != Name || len(vn.OwnerReferences) != 0 {
		t.Errorf("VN labels %v, owners %v; want managed-by %s and no owner", vn.Labels, vn.OwnerReferences, Name)
	}
	var got nadv1.NetworkAttachmentDefinition
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), &got); err != nil {
		t.Fatal(err)
	}
	if !controllerutil.ContainsFinalizer(&got, v1alpha1.Finalizer) {
		t.Errorf("NAD finalizers = %v, want %s", got.Finalizers, v1alpha1.Finalizer)
	}
	waitEvent(ctx, t, c, ns, "vn-left-1", corev1.EventTypeNormal, ReasonCreated, "k8s-vn-left-1-pod-network",
		fmt.Sprintf("VNI %d", want.VNI))
}

// TestVNIsUnique: two NADs get different VNIs, and a NAD whose hashed VNI
// another VN holds gets the next free one.
func TestVNIsUnique(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	ns := namespace(ctx, t, c, "vni")
	project := "k8s-" + ns
	hashC := nad.VNI(project, "k8s-c-pod-network")
	squatter := &v1alpha1.VirtualNetwork{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "squatter"},
		Spec:       v1alpha1.VirtualNetworkSpec{VNName: "squatter", Project: project, CIDR: "198.18.1.0/24", VNI: hashC},
	}
	if err := c.Create(ctx, squatter); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		createNAD(ctx, t, c, ns, name, xvrConfig, cidr("198.18.2.0/24"))
	}
	a := waitVN(ctx, t, c, vnKey(ns, "a"), ready)
	b := waitVN(ctx, t, c, vnKey(ns, "b"), ready)
	vc := waitVN(ctx, t, c, vnKey(ns, "c"), ready)
	if a.Spec.VNI == b.Spec.VNI || a.Spec.VNI == 0 || b.Spec.VNI == 0 {
		t.Errorf("VNIs of a and b = %d, %d; want two different ones", a.Spec.VNI, b.Spec.VNI)
	}
	wantC := hashC%nad.MaxVNI + 1
	if vc.Spec.VNI != wantC {
		t.Errorf("VNI of c = %d, want %d (its hash %d is the squatter's)", vc.Spec.VNI, wantC, hashC)
	}
	var s v1alpha1.VirtualNetwork
	if err := c.Get(ctx, client.ObjectKeyFromObject(squatter), &s); err != nil || s.Spec.VNI != hashC {
		t.Errorf("the VN without a NAD = %+v, %v; want it untouched", s.Spec, err)
	}
}

// TestOtherCNIIgnored: a NAD of another plugin gets no VN and no finalizer,
// and a served NAD whose type changes to another plugin's is released.
func TestOtherCNIIgnored(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	ns := namespace(ctx, t, c, "other-cni")
	bridge := createNAD(ctx, t, c, ns, "bridge", `{"cniVersion":"1.0.0","type":"bridge"}`, cidr("198.18.3.0/24"))
	waitOutcome(ctx, t, networkController, ns+"/bridge", outcomeIgnored, 0)
	var vn v1alpha1.VirtualNetwork
	if err := c.Get(ctx, vnKey(ns, "bridge"), &vn); !apierrors.IsNotFound(err) {
		t.Errorf("VN of a bridge NAD: %v, want none", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(bridge), bridge); err != nil || len(bridge.Finalizers) != 0 {
		t.Errorf("bridge NAD finalizers = %v (%v), want none", bridge.Finalizers, err)
	}

	switched := createNAD(ctx, t, c, ns, "switched", xvrConfig, cidr("198.18.4.0/24"))
	served := waitVN(ctx, t, c, vnKey(ns, "switched"), ready)
	updateNAD(ctx, t, c, client.ObjectKeyFromObject(switched), func(o *nadv1.NetworkAttachmentDefinition) {
		o.Spec.Config = `{"cniVersion":"1.0.0","type":"macvlan"}`
	})
	waitGone(ctx, t, c, served)
	eventually(ctx, t, "finalizer removed from the switched NAD", func() (bool, string) {
		err := c.Get(ctx, client.ObjectKeyFromObject(switched), switched)
		return err == nil && len(switched.Finalizers) == 0, fmt.Sprintf("%v %v", switched.Finalizers, err)
	})
}

// TestInvalidNAD: a NAD with a bad annotation gets a Warning Event with the
// parse error and no VN; a served NAD that turns invalid keeps its VN as
// it was.
func TestInvalidNAD(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	ns := namespace(ctx, t, c, "invalid")
	createNAD(ctx, t, c, ns, "bad", xvrConfig, map[string]string{nad.AnnotationCIDR: "198.18.5.0/24", nad.AnnotationFabricSNAT: "yes"})
	waitEvent(ctx, t, c, ns, "bad", corev1.EventTypeWarning, ReasonInvalidNetwork, nad.AnnotationFabricSNAT, `"yes"`)
	var vn v1alpha1.VirtualNetwork
	if err := c.Get(ctx, vnKey(ns, "bad"), &vn); !apierrors.IsNotFound(err) {
		t.Errorf("VN of an invalid NAD: %v, want none", err)
	}

	good := createNAD(ctx, t, c, ns, "good", xvrConfig, cidr("198.18.6.0/24"))
	before := waitVN(ctx, t, c, vnKey(ns, "good"), ready)
	updateNAD(ctx, t, c, client.ObjectKeyFromObject(good), func(o *nadv1.NetworkAttachmentDefinition) {
		o.Annotations[nad.AnnotationCIDR] = "198.18.6.0/31"
	})
	waitEvent(ctx, t, c, ns, "good", corev1.EventTypeWarning, ReasonInvalidNetwork, "too small")
	var after v1alpha1.VirtualNetwork
	if err := c.Get(ctx, vnKey(ns, "good"), &after); err != nil || after.Spec != before.Spec || after.Generation != before.Generation {
		t.Errorf("VN after the NAD turned invalid = %+v (generation %d, %v), want %+v unchanged", after.Spec, after.Generation, err, before.Spec)
	}
}

// TestRef: a NAD in namespace "other" that refers to a VN of another
// namespace by its Contrail names gets a VN with the reference and VNI 0;
// one that refers to a missing VN is Ready=False RefNotFound with a Warning
// Event, and becomes Ready once the target appears.
func TestRef(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	ns := namespace(ctx, t, c, "ref")
	other := "other"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	createNAD(ctx, t, c, ns, "target", contrailConfig, cidr("198.18.7.0/24"))
	target := waitVN(ctx, t, c, vnKey(ns, "target"), ready)

	alias := "alias-" + ns
	createNAD(ctx, t, c, other, alias, contrailConfig, ref(target.Spec.Project, target.Spec.VNName))
	vn := waitVN(ctx, t, c, vnKey(other, alias), ready)
	wantRef := v1alpha1.NetworkRef{Domain: "default-domain", Project: "k8s-" + ns, Name: "k8s-target-pod-network"}
	if vn.Spec.Ref == nil || *vn.Spec.Ref != wantRef || vn.Spec.VNI != 0 || vn.Spec.CIDR != "" || vn.Spec.Project != "k8s-other" {
		t.Errorf("referring VN = %+v, want ref %+v, VNI 0, project k8s-other", vn.Spec, wantRef)
	}

	createNAD(ctx, t, c, ns, "early", contrailConfig, ref("k8s-"+ns, "k8s-later-pod-network"))
	waitVN(ctx, t, c, vnKey(ns, "early"), readyIs(metav1.ConditionFalse, ReasonRefNotFound))
	waitEvent(ctx, t, c, ns, "early", corev1.EventTypeWarning, ReasonRefNotFound, "k8s-later-pod-network")
	createNAD(ctx, t, c, ns, "later", xvrConfig, cidr("198.18.8.0/24"))
	waitVN(ctx, t, c, vnKey(ns, "early"), ready)
}

// TestDeleteInUse: a NAD deleted while a pod interface uses its VN stays,
// with a NetworkInUse Event naming the pod and Deleting=False InUse on the
// VN; once the InstanceIP is deleted, the VN and the NAD go.
func TestDeleteInUse(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	ns := namespace(ctx, t, c, "delete-in-use")
	node := createNode(ctx, t, c, "node-"+ns)
	pod := createPod(ctx, t, c, ns, "pod-a")
	obj := createNAD(ctx, t, c, ns, "vn", xvrConfig, cidr("198.18.9.0/24"))
	waitVN(ctx, t, c, vnKey(ns, "vn"), ready)
	iip := createIIP(ctx, t, c, ns+"/vn", ns+"/vn", "198.18.9.1", node.Name, pod)
	waitVN(ctx, t, c, vnKey(ns, "vn"), func(vn *v1alpha1.VirtualNetwork) (bool, string) {
		return vn.Status.Interfaces == 1, fmt.Sprintf("interfaces %d", vn.Status.Interfaces)
	})

	deleteObj(ctx, t, c, obj)
	waitEvent(ctx, t, c, ns, "vn", corev1.EventTypeWarning, ReasonNetworkInUse, "1 pod interface", "pod "+ns+"/pod-a")
	vn := waitVN(ctx, t, c, vnKey(ns, "vn"), conditionIs(v1alpha1.ConditionDeleting, metav1.ConditionFalse, ReasonInUse))
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil || obj.DeletionTimestamp.IsZero() {
		t.Fatalf("NAD while in use: %v, deletionTimestamp %v; want it there, being deleted", err, obj.DeletionTimestamp)
	}
	deleteObj(ctx, t, c, iip)
	waitGone(ctx, t, c, obj)
	waitGone(ctx, t, c, vn)
}

// TestDeleteReferenced: a NAD whose VN another VN refers to waits for the
// referring NAD to go.
func TestDeleteReferenced(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	ns := namespace(ctx, t, c, "delete-referenced")
	target := createNAD(ctx, t, c, ns, "target", xvrConfig, cidr("198.18.11.0/24"))
	waitVN(ctx, t, c, vnKey(ns, "target"), ready)
	alias := createNAD(ctx, t, c, ns, "alias", xvrConfig, ref("k8s-"+ns, "k8s-target-pod-network"))
	waitVN(ctx, t, c, vnKey(ns, "alias"), ready)

	deleteObj(ctx, t, c, target)
	waitEvent(ctx, t, c, ns, "target", corev1.EventTypeWarning, ReasonNetworkInUse, "1 network referring to it ("+ns+"/alias)")
	waitVN(ctx, t, c, vnKey(ns, "target"), conditionIs(v1alpha1.ConditionDeleting, metav1.ConditionFalse, ReasonInUse))
	deleteObj(ctx, t, c, alias)
	waitGone(ctx, t, c, alias)
	waitGone(ctx, t, c, target)
}

// TestCIDRChangeInUse: a CIDR change is refused while an InstanceIP uses
// the VN (Warning Event, Ready=False CIDRInUse, spec kept) and applied once
// none does.
func TestCIDRChangeInUse(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	ns := namespace(ctx, t, c, "cidr-change")
	node := createNode(ctx, t, c, "node-"+ns)
	pod := createPod(ctx, t, c, ns, "pod-a")
	obj := createNAD(ctx, t, c, ns, "vn", xvrConfig, cidr("198.18.12.0/24"))
	before := waitVN(ctx, t, c, vnKey(ns, "vn"), ready)
	iip := createIIP(ctx, t, c, ns+"/vn", ns+"/vn", "198.18.12.1", node.Name, pod)
	waitVN(ctx, t, c, vnKey(ns, "vn"), func(vn *v1alpha1.VirtualNetwork) (bool, string) {
		return vn.Status.Interfaces == 1, fmt.Sprintf("interfaces %d", vn.Status.Interfaces)
	})

	updateNAD(ctx, t, c, client.ObjectKeyFromObject(obj), func(o *nadv1.NetworkAttachmentDefinition) {
		o.Annotations[nad.AnnotationCIDR] = "198.18.13.0/24"
	})
	waitEvent(ctx, t, c, ns, "vn", corev1.EventTypeWarning, ReasonCIDRInUse, "198.18.12.0/24", "198.18.13.0/24", "1 pod interface")
	vn := waitVN(ctx, t, c, vnKey(ns, "vn"), readyIs(metav1.ConditionFalse, ReasonCIDRInUse))
	if vn.Spec.CIDR != "198.18.12.0/24" || vn.Spec.VNI != before.Spec.VNI {
		t.Errorf("VN spec while in use = %+v, want CIDR 198.18.12.0/24 and VNI %d", vn.Spec, before.Spec.VNI)
	}
	deleteObj(ctx, t, c, iip)
	vn = waitVN(ctx, t, c, vnKey(ns, "vn"), func(vn *v1alpha1.VirtualNetwork) (bool, string) {
		ok, msg := ready(vn)
		return ok && vn.Spec.CIDR == "198.18.13.0/24", msg + ", cidr " + vn.Spec.CIDR
	})
	if vn.Spec.VNI != before.Spec.VNI {
		t.Errorf("VNI changed with the CIDR: %d -> %d", before.Spec.VNI, vn.Spec.VNI)
	}
}

// TestDefaultNetwork: the controller creates default/cluster-wide-default
// with its CIDR and recreates it when it is deleted.
func TestDefaultNetwork(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	vn := waitVN(ctx, t, c, defaultKey, ready)
	want := v1alpha1.VirtualNetworkSpec{VNName: "k8s-cluster-wide-default-pod-network", Project: "k8s-default",
		CIDR: testDefaultCIDR.String(), CNIType: nad.CNITypeXVR, VNI: nad.VNI("k8s-default", "k8s-cluster-wide-default-pod-network")}
	if vn.Spec != want {
		t.Errorf("default VN = %+v, want %+v", vn.Spec, want)
	}
	deleteObj(ctx, t, c, vn)
	again := waitVN(ctx, t, c, defaultKey, func(v *v1alpha1.VirtualNetwork) (bool, string) {
		ok, msg := ready(v)
		return ok && v.UID != vn.UID, msg + ", uid " + string(v.UID)
	})
	if again.Spec != want {
		t.Errorf("recreated default VN = %+v, want %+v", again.Spec, want)
	}
}

// TestOrphanVN: a VN whose NAD went away without the controller (its
// finalizer removed by hand) waits, visibly, for its pods and then goes.
func TestOrphanVN(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	ns := namespace(ctx, t, c, "orphan")
	node := createNode(ctx, t, c, "node-"+ns)
	pod := createPod(ctx, t, c, ns, "pod-a")
	obj := createNAD(ctx, t, c, ns, "vn", xvrConfig, cidr("198.18.15.0/24"))
	waitVN(ctx, t, c, vnKey(ns, "vn"), ready)
	iip := createIIP(ctx, t, c, ns+"/vn", ns+"/vn", "198.18.15.1", node.Name, pod)
	waitVN(ctx, t, c, vnKey(ns, "vn"), func(vn *v1alpha1.VirtualNetwork) (bool, string) {
		return vn.Status.Interfaces == 1, fmt.Sprintf("interfaces %d", vn.Status.Interfaces)
	})
	deleteObj(ctx, t, c, obj)
	waitEvent(ctx, t, c, ns, "vn", corev1.EventTypeWarning, ReasonNetworkInUse, "1 pod interface")
	updateNAD(ctx, t, c, client.ObjectKeyFromObject(obj), func(o *nadv1.NetworkAttachmentDefinition) { o.Finalizers = nil })
	waitGone(ctx, t, c, obj)

	vn := waitVN(ctx, t, c, vnKey(ns, "vn"), conditionIs(v1alpha1.ConditionDeleting, metav1.ConditionFalse, ReasonInUse))
	deleteObj(ctx, t, c, iip)
	waitGone(ctx, t, c, vn)
}
