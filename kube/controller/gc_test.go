package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/v1alpha1"
)

// TestGC: InstanceIPs of a deleted pod, of another pod with the same name
// (UID), of a node that never existed and of a deleted node are collected;
// those of a live pod, and a hand-made port on a live node, are kept.
func TestGC(t *testing.T) {
	c := start(t)
	ctx := testContext(t)
	ns := namespace(ctx, t, c, "gc")
	network := ns + "/vn"
	live := createNode(ctx, t, c, "live-"+ns)
	doomed := createNode(ctx, t, c, "doomed-"+ns)
	podA := createPod(ctx, t, c, ns, "pod-a")
	podB := createPod(ctx, t, c, ns, "pod-b")

	keepPod := createIIP(ctx, t, c, network, network, "198.18.14.1", live.Name, podA)
	keepPort := createIIP(ctx, t, c, network, network, "198.18.14.2", live.Name, nil)
	wrongUID := *podA
	wrongUID.UID = "00000000-0000-0000-0000-000000000000"
	otherPod := createIIP(ctx, t, c, network, network, "198.18.14.3", live.Name, &wrongUID)
	noNode := createIIP(ctx, t, c, network, network, "198.18.14.4", "never-"+ns, nil)
	ofPodB := createIIP(ctx, t, c, network, network, "198.18.14.5", live.Name, podB)
	ofDoomed := createIIP(ctx, t, c, network, network, "198.18.14.6", doomed.Name, nil)

	waitGone(ctx, t, c, otherPod)
	waitGone(ctx, t, c, noNode)
	for _, iip := range []*v1alpha1.InstanceIP{keepPod, keepPort, ofPodB, ofDoomed} {
		waitOutcome(ctx, t, gcController, iip.Name, outcomeKept, 0)
	}

	deleteObj(ctx, t, c, podB)
	waitGone(ctx, t, c, ofPodB)
	deleteObj(ctx, t, c, doomed)
	waitGone(ctx, t, c, ofDoomed)

	// Touched now, after the collections above, the InstanceIPs of a live
	// pod and of a port on a live node are looked at again and kept.
	for _, iip := range []*v1alpha1.InstanceIP{keepPod, keepPort} {
		seen := outcomes.count(gcController, iip.Name, outcomeKept)
		orig := iip.DeepCopy()
		iip.Labels["touched"] = "true"
		if err := c.Patch(ctx, iip, client.MergeFrom(orig)); err != nil {
			t.Fatal(err)
		}
		waitOutcome(ctx, t, gcController, iip.Name, outcomeKept, seen)
		var got v1alpha1.InstanceIP
		if err := c.Get(ctx, client.ObjectKeyFromObject(iip), &got); err != nil {
			t.Errorf("InstanceIP %s of a live owner: %v, want it kept", iip.Name, err)
		}
	}
	var pod corev1.Pod
	if err := c.Get(ctx, client.ObjectKeyFromObject(podA), &pod); err != nil {
		t.Fatalf("pod-a: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(podB), &pod); !apierrors.IsNotFound(err) {
		t.Fatalf("pod-b: %v, want deleted", err)
	}
}
