package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/kube/kubetest"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/vrouter/api"
)

// kubeDefaultCIDR is the cluster default network the controller owns in
// the Kubernetes tests (every pod's eth0, shared by all nodes).
const kubeDefaultCIDR = "198.18.104.0/22"

var (
	managerOnce sync.Once
	managerErr  error
)

// managerBin builds cmd/xvr-kube-manager once.
func managerBin(t testing.TB) string {
	t.Helper()
	managerOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", bin("xvr-kube-manager"), "../cmd/xvr-kube-manager").CombinedOutput()
		if err != nil {
			managerErr = fmt.Errorf("building xvr-kube-manager: %w\n%s", err, out)
		}
	})
	if managerErr != nil {
		t.Fatal(managerErr)
	}
	return bin("xvr-kube-manager")
}

// kubeCluster is a real control plane (etcd + kube-apiserver on the test's
// 127.0.0.1), xvr-kube-manager beside it, and nodes: namespaces on one
// underlay, each with xvrd -kubeconfig owning a fabric veth. A node reaches
// the API server through a forwarder on its own 127.0.0.1. There is no
// scheduler or kubelet: the test creates Nodes and bound Pods and runs the
// CNI as kubelet would.
type kubeCluster struct {
	env *kubetest.Env
	c   client.Client // admin
	// nodeCfg and mgrCfg are kubeconfigs of the ServiceAccounts that
	// deploy/kubernetes/rbac.yaml makes for xvrd and the controller: the
	// daemons run with exactly the rights the manifests give them.
	nodeCfg, mgrCfg string
	mgr             *nettest.Proc
	ov              *overlayTopo // the underlay and its fabric links
	nodes           []*kubeNode
	api             string                      // host:port of the API server
	kcm             *kubetest.ControllerManager // with startNodeNetwork
}

type kubeNode struct {
	*cniNode
	name string
	ip   string
	fwd  *nettest.Forwarder
	// With startNodeNetwork: the host interface's address and kube-proxy.
	hostIP string
	proxy  *nettest.Proc
}

func kubeScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme,
		nadv1.AddToScheme, apiextensionsv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// newKubeCluster starts the control plane and n nodes (not the controller:
// see startManager).
func newKubeCluster(t testing.TB, n int) *kubeCluster {
	t.Helper()
	return newKubeClusterWith(t, n, kubetest.Options{})
}

// newKubeClusterWith is newKubeCluster with the control plane's options.
func newKubeClusterWith(t testing.TB, n int, opts kubetest.Options) *kubeCluster {
	t.Helper()
	nettest.RequireRoot(t)
	env, c := startControlPlane(t, opts)
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	kc := &kubeCluster{env: env, c: c, api: u.Host}
	kc.applyRBAC(t)
	kc.ov = newUnderlay(t, "xkul", "xkbr")
	for i := range n {
		kc.nodes = append(kc.nodes, kc.addNode(t, i))
	}
	return kc
}

// startControlPlane starts etcd and kube-apiserver with opts, stopped at
// cleanup, and returns them with an admin client.
func startControlPlane(t testing.TB, opts kubetest.Options) (*kubetest.Env, client.Client) {
	t.Helper()
	env, err := kubetest.StartWith(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stopping the control plane: %v", err)
		}
	})
	c, err := client.New(env.Config, client.Options{Scheme: kubeScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	return env, c
}

// applyRBAC creates what deploy/kubernetes/rbac.yaml declares and the
// ServiceAccounts' kubeconfigs.
func (kc *kubeCluster) applyRBAC(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	objs, err := kubetest.DecodeManifest(kubeScheme(t), "../deploy/kubernetes/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := kc.c.Create(ctx, o); err != nil {
			t.Fatalf("applying rbac.yaml: %s %s: %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
	}
	dir := t.TempDir()
	if kc.nodeCfg, err = kc.env.ServiceAccountKubeconfig(ctx, kc.c, dir, "kube-system", "xvr-node"); err != nil {
		t.Fatal(err)
	}
	if kc.mgrCfg, err = kc.env.ServiceAccountKubeconfig(ctx, kc.c, dir, "kube-system", "xvr-kube-manager"); err != nil {
		t.Fatal(err)
	}
}

// startManager runs the real xvr-kube-manager binary as its ServiceAccount
// and waits until the CRDs it installs are served.
func (kc *kubeCluster) startManager(t testing.TB) {
	t.Helper()
	kc.mgr = nettest.StartHost(t, managerBin(t), "-kubeconfig", kc.mgrCfg,
		"-default-cidr", kubeDefaultCIDR, "-leader-election-namespace", "kube-system")
	for _, name := range []string{nadCRD, "virtualnetworks.xvr.io", "instanceips.xvr.io"} {
		waitFor(t, "the controller installs CRD "+name, 60*time.Second, func() (bool, error) {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := kc.c.Get(context.Background(), client.ObjectKey{Name: name}, &crd); err != nil {
				return false, fmt.Errorf("%w\ncontroller log:\n%s", err, tail(kc.mgr.Output(), 2000))
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
	}
	// A client's discovery predates the CRDs: make a new one.
	c, err := client.New(kc.env.Config, client.Options{Scheme: kubeScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	kc.c = c
}

// addNode registers Node i with the API server, as kubelet would, and
// starts its xvrd.
func (kc *kubeCluster) addNode(t testing.TB, i int) *kubeNode {
	t.Helper()
	kn := &kubeNode{name: fmt.Sprintf("node-%d", i), ip: nodeIPs[i]}
	nd := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: kn.name},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: kn.ip}}}}
	if err := kc.c.Create(context.Background(), nd); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n := &node{ns: nettest.NewNS(t, "xkn"), dir: dir, socket: filepath.Join(dir, "xvrd.sock")}
	if tt, ok := t.(*testing.T); ok {
		n.t = tt
	}
	kn.fwd = n.ns.ForwardTCP(t, kc.api)
	fabric, _ := kc.ov.fabricLink(t, n.ns, "xkf", kn.ip)
	kn.cniNode = startCNINode(t, n, "-mac", nodeMACs[i], "-fabric-if", fabric, "-node-ip", kn.ip,
		"-kubeconfig", kc.nodeCfg, "-node-name", kn.name, "-metrics-addr", "", "-service-cidr", kubetest.ServiceCIDR)
	return kn
}

// waitFor polls cond every 50 ms for up to timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) {
			ok, err := cond()
			last = err
			return ok, nil
		})
	if err != nil {
		t.Fatalf("%s: not within %s (last error: %v)", what, timeout, last)
	}
}

// nad creates a NetworkAttachmentDefinition with Contrail's annotations.
func (kc *kubeCluster) nad(t testing.TB, namespace, name, cniType string, ann map[string]string) {
	t.Helper()
	o := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: ann},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: fmt.Sprintf(`{"cniVersion":"1.0.0","type":%q}`, cniType)}}
	if err := kc.c.Create(context.Background(), o); err != nil {
		t.Fatalf("creating NAD %s/%s: %v", namespace, name, err)
	}
}

func (kc *kubeCluster) namespace(t testing.TB, name string) {
	t.Helper()
	if err := kc.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// waitVNReady waits for the VirtualNetwork of a NAD to be Ready and for
// every node's xvrd to serve it.
func (kc *kubeCluster) waitVNReady(t testing.TB, namespace, name string) *v1alpha1.VirtualNetwork {
	t.Helper()
	vn := &v1alpha1.VirtualNetwork{}
	waitFor(t, "virtual network "+namespace+"/"+name+" ready", 90*time.Second, func() (bool, error) {
		if err := kc.c.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, vn); err != nil {
			return false, err
		}
		for _, c := range vn.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady {
				return c.Status == metav1.ConditionTrue, fmt.Errorf("ready %s: %s", c.Reason, c.Message)
			}
		}
		return false, nil
	})
	for i, n := range kc.nodes {
		waitFor(t, fmt.Sprintf("node %d serves %s/%s", i, namespace, name), 30*time.Second, func() (bool, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := n.c.GetNetwork(ctx, namespace, name)
			return err == nil, err
		})
	}
	return vn
}

// pod creates a Pod bound to node (as the scheduler would) with the
// networks annotation, if any.
func (kc *kubeCluster) pod(t testing.TB, namespace, name string, node *kubeNode, networks string) *corev1.Pod {
	t.Helper()
	return kc.podWith(t, namespace, name, node, networks, nil)
}

// podWith is pod with labels.
func (kc *kubeCluster) podWith(t testing.TB, namespace, name string, node *kubeNode, networks string, labels map[string]string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node.name, Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/none"}}}}
	if networks != "" {
		p.Annotations = map[string]string{api.NetworksAnnotation: networks}
	}
	if err := kc.c.Create(context.Background(), p); err != nil {
		t.Fatalf("creating pod %s/%s: %v", namespace, name, err)
	}
	return p
}

// deletePod deletes the Pod object at once (no kubelet to wait for).
func (kc *kubeCluster) deletePod(t testing.TB, p *corev1.Pod) {
	t.Helper()
	if err := kc.c.Delete(context.Background(), p, client.GracePeriodSeconds(0)); err != nil {
		t.Fatalf("deleting pod %s/%s: %v", p.Namespace, p.Name, err)
	}
}

// kubeRuntimeConf is what kubelet passes for a sandbox of p in nsName.
func kubeRuntimeConf(nsName string, p *corev1.Pod) *libcni.RuntimeConf {
	rt := runtimeConf(nsName, p.Namespace, p.Name)
	for i, a := range rt.Args {
		if a[0] == "K8S_POD_UID" {
			rt.Args[i][1] = string(p.UID)
		}
	}
	return rt
}

// attach makes a sandbox for the pod on node n and runs ADD as kubelet
// would; DEL is registered for cleanup.
func (n *kubeNode) attach(t testing.TB, p *corev1.Pod) *cniPod {
	t.Helper()
	s := n.sandbox(t, p.Namespace, p.Name)
	s.rt = kubeRuntimeConf(s.ns.Name, p)
	if err := n.add(t, s); err != nil {
		t.Fatalf("ADD %s/%s on %s: %v\nxvrd log:\n%s", p.Namespace, p.Name, n.name, err, tail(n.proc.Output(), 3000))
	}
	return s
}

// networkStatus reads the pod's network-status annotation.
func (kc *kubeCluster) networkStatus(t testing.TB, namespace, name string) []nadv1.NetworkStatus {
	t.Helper()
	var p corev1.Pod
	if err := kc.c.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	raw, ok := p.Annotations[nadv1.NetworkStatusAnnot]
	if !ok {
		t.Fatalf("pod %s/%s has no %s annotation", namespace, name, nadv1.NetworkStatusAnnot)
	}
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("pod %s/%s: network-status %q: %v", namespace, name, raw, err)
	}
	return st
}

// checkStatus asserts that the pod's network-status lists exactly the
// interfaces inside its namespace with their IPs and MACs, in the given
// networks, eth0 on the default network and marked default.
func (kc *kubeCluster) checkStatus(t testing.TB, s *cniPod, networks ...string) []nadv1.NetworkStatus {
	t.Helper()
	st := kc.networkStatus(t, s.namespace, s.name)
	want := append([]string{"default/" + api.DefaultNetworkName}, networks...)
	if len(st) != len(want) {
		t.Fatalf("pod %s: network-status %+v, want networks %v", s.name, st, want)
	}
	links := s.links(t)
	for i, e := range st {
		ifn := fmt.Sprintf("eth%d", i)
		l, ok := links[e.Interface]
		switch {
		case e.Name != want[i] || e.Interface != ifn || e.Default != (i == 0):
			t.Fatalf("pod %s: entry %d is %+v, want %s on %s (default %v)", s.name, i, e, want[i], ifn, i == 0)
		case !ok || !strings.EqualFold(l.Address, e.Mac):
			t.Fatalf("pod %s: %s has MAC %q inside, %q in network-status", s.name, e.Interface, l.Address, e.Mac)
		case len(e.IPs) != 1 || !hasIP(l, e.IPs[0]):
			t.Fatalf("pod %s: %s has %+v inside, ips %v in network-status", s.name, e.Interface, l.AddrInfo, e.IPs)
		case e.IPs[0] != s.addr(t, e.Interface):
			t.Fatalf("pod %s: %s is %s in the CNI result, %s in network-status", s.name, e.Interface, s.addr(t, e.Interface), e.IPs[0])
		}
	}
	return st
}

func hasIP(l podLink, ip string) bool {
	for _, a := range l.AddrInfo {
		if a.Family == "inet" && a.Local == ip {
			return true
		}
	}
	return false
}

// instanceIPs lists the cluster's InstanceIPs of pods (not those of the
// nodes' host interfaces).
func (kc *kubeCluster) instanceIPs(t testing.TB) []v1alpha1.InstanceIP {
	t.Helper()
	var l v1alpha1.InstanceIPList
	if err := kc.c.List(context.Background(), &l); err != nil {
		t.Fatal(err)
	}
	var out []v1alpha1.InstanceIP
	for _, o := range l.Items {
		if o.Spec.Pod != nil {
			out = append(out, o)
		}
	}
	return out
}

// learned lists node n's routes learned from the cluster, by prefix.
func (n *kubeNode) learned(t testing.TB) map[string]api.Route {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, err := n.c.ListRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]api.Route{}
	for _, r := range rs {
		if r.Source == api.RouteSourceKube {
			out[r.Network+"|"+r.Prefix] = r
		}
	}
	return out
}
