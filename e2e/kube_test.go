package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/vrouter/api"
)

const nadCRD = "network-attachment-definitions.k8s.cni.cncf.io"

// TestKubeCluster is the product story on a real API server: the
// controller creates the NAD CRD, NADs become VNs with Contrail names, pods
// created as API objects get their interfaces from one CNI ADD each on two
// nodes, network-status matches what is inside the pods, pods on one VN talk
// across nodes over the overlay, cross-namespace and reference NADs work,
// deleting a pod removes its routes on the other node, and a NAD deleted
// while in use waits, visibly, until its pods are gone.
func TestKubeCluster(t *testing.T) {
	kc := newKubeCluster(t, 2)
	ctx := context.Background()
	n0, n1 := kc.nodes[0], kc.nodes[1]

	var crd apiextensionsv1.CustomResourceDefinition
	if err := kc.c.Get(ctx, client.ObjectKey{Name: nadCRD}, &crd); !apierrors.IsNotFound(err) {
		t.Fatalf("the NAD CRD exists before the controller started: %v", err)
	}
	kc.startManager(t)
	if err := kc.c.Get(ctx, client.ObjectKey{Name: nadCRD}, &crd); err != nil {
		t.Fatal(err)
	}
	if crd.Spec.Scope != apiextensionsv1.NamespaceScoped || !slices.Contains(crd.Spec.Names.ShortNames, "net-attach-def") {
		t.Fatalf("NAD CRD %+v", crd.Spec)
	}

	kc.namespace(t, "other")
	kc.nad(t, "default", "vn-left-1", "xvr", map[string]string{"opencontrail.org/cidr": "198.18.10.0/24"})
	kc.nad(t, "default", "vn-right-1", "contrail-k8s-cni", map[string]string{"opencontrail.org/cidr": "198.18.20.0/24"})
	kc.nad(t, "other", "vn-blue", "xvr", map[string]string{"opencontrail.org/cidr": "198.18.30.0/24"})
	kc.nad(t, "default", "vn-ref", "xvr", map[string]string{
		"opencontrail.org/network": `{"domain":"default-domain","project":"k8s-default","name":"k8s-vn-left-1-pod-network"}`})
	vns := map[string]*v1alpha1.VirtualNetwork{}
	for _, k := range []string{"default/cluster-wide-default", "default/vn-left-1", "default/vn-right-1", "other/vn-blue", "default/vn-ref"} {
		ns, name, _ := strings.Cut(k, "/")
		vns[k] = kc.waitVNReady(t, ns, name)
	}
	checkContrailNames(t, n0, vns)

	// Pods as API objects, bound to nodes; the CNI as kubelet runs it.
	pa := kc.pod(t, "default", "pod-a", n0, "vn-left-1,other/vn-blue")
	pb := kc.pod(t, "default", "pod-b", n1, `[{"name":"vn-left-1"},{"name":"vn-blue","namespace":"other"}]`)
	pc := kc.pod(t, "default", "pod-c", n1, "vn-right-1")
	pr := kc.pod(t, "default", "pod-r", n1, "vn-ref")
	a, b, c, r := n0.attach(t, pa), n1.attach(t, pb), n1.attach(t, pc), n1.attach(t, pr)
	kc.checkStatus(t, a, "default/vn-left-1", "other/vn-blue")
	kc.checkStatus(t, b, "default/vn-left-1", "other/vn-blue")
	kc.checkStatus(t, c, "default/vn-right-1")
	kc.checkStatus(t, r, "default/vn-ref")

	// Across nodes over the overlay, on every shared VN and the default network.
	bLeft, bBlue, bDef := b.addr(t, "eth1"), b.addr(t, "eth2"), b.addr(t, "eth0")
	waitFor(t, "node 0 learns pod-b's addresses", 30*time.Second, func() (bool, error) {
		l := n0.learned(t)
		_, ok1 := l["default/vn-left-1|"+bLeft+"/32"]
		_, ok2 := l["other/vn-blue|"+bBlue+"/32"]
		_, ok3 := l["default/cluster-wide-default|"+bDef+"/32"]
		return ok1 && ok2 && ok3, fmt.Errorf("learned %v", l)
	})
	rt := n0.learned(t)["default/vn-left-1|"+bLeft+"/32"]
	if rt.NextHop.Type != api.NextHopTunnel || rt.NextHop.Node != n1.ip || rt.NextHop.VNI != vns["default/vn-left-1"].Spec.VNI {
		t.Fatalf("node 0's route to pod-b: %+v", rt)
	}
	for _, dst := range []string{bLeft, bBlue, bDef, r.addr(t, "eth1")} {
		if out, err := a.ping(dst, 3); err != nil {
			t.Fatalf("pod-a (node 0) cannot reach %s on node 1: %v\n%s", dst, err, out)
		}
	}
	if out, err := a.ping(c.addr(t, "eth1"), 2); err == nil {
		t.Fatalf("pod-a reached pod-c on vn-right-1, which it is not on:\n%s", out)
	}

	// A NAD deleted while pods use it waits and says why.
	right := &nadv1.NetworkAttachmentDefinition{}
	if err := kc.c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "vn-right-1"}, right); err != nil {
		t.Fatal(err)
	}
	if err := kc.c.Delete(ctx, right); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a NetworkInUse event on the NAD", 30*time.Second, func() (bool, error) {
		return kc.hasEvent(t, "default", "vn-right-1", "NetworkInUse"), nil
	})
	waitFor(t, "the VN's Deleting condition says InUse", 30*time.Second, func() (bool, error) {
		vn := &v1alpha1.VirtualNetwork{}
		if err := kc.c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "vn-right-1"}, vn); err != nil {
			return false, err
		}
		for _, cd := range vn.Status.Conditions {
			if cd.Type == v1alpha1.ConditionDeleting {
				return cd.Status == metav1.ConditionFalse && cd.Reason == "InUse", nil
			}
		}
		return false, nil
	})
	if err := kc.c.Get(ctx, client.ObjectKeyFromObject(right), right); err != nil || right.DeletionTimestamp == nil {
		t.Fatalf("NAD in use: %v, deletion timestamp %v", err, right.DeletionTimestamp)
	}
	n1.del(t, c)
	kc.deletePod(t, pc)
	waitFor(t, "the NAD completes deletion once its pods are gone", 60*time.Second, func() (bool, error) {
		err := kc.c.Get(ctx, client.ObjectKeyFromObject(right), &nadv1.NetworkAttachmentDefinition{})
		return apierrors.IsNotFound(err), err
	})
	for i, n := range kc.nodes {
		waitFor(t, fmt.Sprintf("node %d drops vn-right-1", i), 30*time.Second, func() (bool, error) {
			_, err := n.c.GetNetwork(ctx, "default", "vn-right-1")
			return api.IsNotFound(err), err
		})
	}

	// Deleting a pod frees its addresses and removes its routes on the other node.
	bIPs := kc.ipsOf(t, "pod-b")
	if len(bIPs) != 3 {
		t.Fatalf("pod-b holds instance ips %v, want 3", bIPs)
	}
	n1.del(t, b)
	kc.deletePod(t, pb)
	waitFor(t, "pod-b's instance ips freed", 30*time.Second, func() (bool, error) { return len(kc.ipsOf(t, "pod-b")) == 0, nil })
	waitFor(t, "node 0 forgets pod-b's routes", 30*time.Second, func() (bool, error) {
		l := n0.learned(t)
		for k := range l {
			for _, ip := range []string{bLeft, bBlue, bDef} {
				if strings.HasSuffix(k, "|"+ip+"/32") {
					return false, fmt.Errorf("still %s", k)
				}
			}
		}
		return true, nil
	})
}

// checkContrailNames asserts the VNs' Contrail names and cluster-unique
// VNIs, as the node serves them.
func checkContrailNames(t *testing.T, n *kubeNode, vns map[string]*v1alpha1.VirtualNetwork) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want := map[string][2]string{
		"default/vn-left-1": {"k8s-vn-left-1-pod-network", "k8s-default"},
		"other/vn-blue":     {"k8s-vn-blue-pod-network", "k8s-other"},
	}
	seen := map[uint32]string{}
	for k, w := range want {
		ns, name, _ := strings.Cut(k, "/")
		nw, err := n.c.GetNetwork(ctx, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if nw.VNName != w[0] || nw.Project != w[1] || vns[k].Spec.VNName != w[0] || vns[k].Spec.Project != w[1] {
			t.Fatalf("%s is %s in %s on the node, %s in %s in the cluster; want %s in %s",
				k, nw.VNName, nw.Project, vns[k].Spec.VNName, vns[k].Spec.Project, w[0], w[1])
		}
		if nw.VNI == 0 || nw.VNI != vns[k].Spec.VNI || seen[nw.VNI] != "" {
			t.Fatalf("%s has vni %d on the node, %d in the cluster (seen %v)", k, nw.VNI, vns[k].Spec.VNI, seen)
		}
		seen[nw.VNI] = k
	}
}

// hasEvent reports whether an Event with reason is recorded on the NAD.
func (kc *kubeCluster) hasEvent(t testing.TB, namespace, name, reason string) bool {
	t.Helper()
	var evs corev1.EventList
	if err := kc.c.List(context.Background(), &evs, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == name && e.InvolvedObject.Kind == "NetworkAttachmentDefinition" && e.Reason == reason {
			return true
		}
	}
	return false
}

// ipsOf lists the InstanceIPs of pod name (namespace default).
func (kc *kubeCluster) ipsOf(t testing.TB, name string) []string {
	t.Helper()
	var out []string
	for _, ip := range kc.instanceIPs(t) {
		if p := ip.Spec.Pod; p != nil && p.Namespace == "default" && p.Name == name {
			out = append(out, ip.Spec.Network+" "+ip.Spec.IP)
		}
	}
	return out
}

// TestKubeConcurrentPods creates 100 pods across the two nodes at once and
// runs their ADDs concurrently: every address is unique cluster-wide, every
// InstanceIP names its pod, and DEL frees them all.
func TestKubeConcurrentPods(t *testing.T) {
	const pods = 100
	kc := newKubeCluster(t, 2)
	kc.startManager(t)
	kc.nad(t, "default", "vn-left-1", "xvr", map[string]string{"opencontrail.org/cidr": "198.18.10.0/24"})
	kc.waitVNReady(t, "default", "cluster-wide-default")
	kc.waitVNReady(t, "default", "vn-left-1")
	objs := make([]*corev1.Pod, pods)
	for i := range objs {
		objs[i] = kc.pod(t, "default", fmt.Sprintf("many-%03d", i), kc.nodes[i%2], "vn-left-1")
	}
	sandboxes := make([]*cniPod, pods)
	for i, p := range objs {
		sandboxes[i] = kc.nodes[i%2].sandbox(t, p.Namespace, p.Name)
		sandboxes[i].rt = kubeRuntimeConf(sandboxes[i].ns.Name, p)
	}
	errs := make([]error, pods)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16) // what kubelets on two nodes run at once
	start := time.Now()
	for i := range objs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			n := kc.nodes[i%2]
			errs[i] = n.addWith(t, n.newCNIConfig(t), sandboxes[i])
		}()
	}
	wg.Wait()
	t.Logf("%d pods (%d interfaces) attached concurrently on 2 nodes in %s", pods, 2*pods, time.Since(start).Round(time.Millisecond))
	seen := map[string]string{}
	for i, s := range sandboxes {
		if errs[i] != nil {
			t.Fatalf("ADD %s: %v\nnode log:\n%s", objs[i].Name, errs[i], tail(kc.nodes[i%2].proc.Output(), 3000))
		}
		for _, ifn := range []string{"eth0", "eth1"} {
			ip := s.addr(t, ifn)
			if _, err := netip.ParseAddr(ip); err != nil {
				t.Fatal(err)
			}
			key := ifn + " " + ip // eth0 is the default network, eth1 vn-left-1, on every pod
			if other, dup := seen[key]; dup {
				t.Fatalf("address %s given to %s and %s", key, other, objs[i].Name)
			}
			seen[key] = objs[i].Name
		}
	}
	if got := len(kc.instanceIPs(t)); got != 2*pods {
		t.Fatalf("%d instance ips for %d interfaces", got, 2*pods)
	}
	kc.checkStatus(t, sandboxes[pods-1], "default/vn-left-1")
	for i, s := range sandboxes {
		kc.nodes[i%2].del(t, s)
	}
	waitFor(t, "every instance ip freed", 30*time.Second, func() (bool, error) { return len(kc.instanceIPs(t)) == 0, nil })
}

// TestKubeAPIServerDown: with the API server stopped, DEL still tears a
// pod down and frees what the node holds, and ADD fails with CNI code 11
// (try again later) leaving nothing behind.
func TestKubeAPIServerDown(t *testing.T) {
	kc := newKubeCluster(t, 1)
	kc.startManager(t)
	n := kc.nodes[0]
	kc.nad(t, "default", "vn-left-1", "xvr", map[string]string{"opencontrail.org/cidr": "198.18.10.0/24"})
	kc.waitVNReady(t, "default", "cluster-wide-default")
	kc.waitVNReady(t, "default", "vn-left-1")
	p1 := kc.pod(t, "default", "down-1", n, "vn-left-1")
	p2 := kc.pod(t, "default", "down-2", n, "vn-left-1")
	s1 := n.attach(t, p1)
	if err := kc.env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n.del(t, s1)
	t.Logf("DEL with the API server down took %s", time.Since(start).Round(time.Millisecond))
	n.assertNoTrace(t, s1.rt.ContainerID)
	s2 := n.sandbox(t, p2.Namespace, p2.Name)
	s2.rt = kubeRuntimeConf(s2.ns.Name, p2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := n.cfg.AddNetworkList(ctx, n.list, s2.rt)
	if code := cniCode(err); code != 11 {
		t.Fatalf("ADD with the API server down: %v (code %d), want code 11", err, code)
	}
	n.assertNoTrace(t, s2.rt.ContainerID)
	if ports := n.ports(t, ""); len(ports) != 0 {
		t.Fatalf("ports left: %+v", ports)
	}
}

// BenchmarkKubeAdd3If measures ADD through the real plugin binary of a
// pod with three interfaces against a real API server (pod read, three
// InstanceIP claims, the network-status patch): p50/p99 over 50 sandboxes
// per iteration. Namespace creation and DEL are outside the timing.
func BenchmarkKubeAdd3If(b *testing.B) {
	const podsPerOp = 50
	kc := newKubeCluster(b, 1)
	kc.startManager(b)
	kc.nad(b, "default", "vn-left-1", "xvr", map[string]string{"opencontrail.org/cidr": "198.18.10.0/24"})
	kc.nad(b, "default", "vn-right-1", "xvr", map[string]string{"opencontrail.org/cidr": "198.18.20.0/24"})
	for _, name := range []string{"cluster-wide-default", "vn-left-1", "vn-right-1"} {
		kc.waitVNReady(b, "default", name)
	}
	n := kc.nodes[0]
	p := kc.pod(b, "default", "bench", n, "vn-left-1,vn-right-1")
	nss := newPodNamespaces(b)
	var lat []time.Duration
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		for range podsPerOp {
			nsName, err := nss.add(b)
			if err != nil {
				b.Fatal(err)
			}
			rt := kubeRuntimeConf(nsName, p)
			start := time.Now()
			_, err = n.cfg.AddNetworkList(ctx, n.list, rt)
			took := time.Since(start)
			if err != nil {
				b.Fatalf("ADD: %v\nxvrd log:\n%s", err, tail(n.proc.Output(), 3000))
			}
			lat = append(lat, took)
			b.StopTimer()
			if err := n.cfg.DelNetworkList(ctx, n.list, rt); err != nil {
				b.Fatal(err)
			}
			if err := nss.del(nsName); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	reportLatency(b, lat)
}
