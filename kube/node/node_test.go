package node

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/crds"
	"github.com/xvr-project/xvr/kube/kubetest"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/vrouter/agent"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/api/apitest"
)

func TestMain(m *testing.M) { kubetest.Main(m, nil) }

// fakeAgent is the agent's API with its claims and a route table
// that takes tunnel routes (apitest's does not).
type fakeAgent struct {
	*apitest.Backend
	mu     sync.Mutex
	routes map[string]api.Route
}

func newFakeAgent() *fakeAgent {
	return &fakeAgent{Backend: apitest.NewBackend(), routes: map[string]api.Route{}}
}

// Claims is what the agent's ports hold, each with this node's label 17.
func (f *fakeAgent) Claims() []agent.AddressClaim {
	var out []agent.AddressClaim
	for _, p := range f.ListPorts(context.Background()) {
		if ip, err := netip.ParseAddr(p.IP); err == nil {
			out = append(out, agent.AddressClaim{Network: p.Network, IP: ip, Label: 17, Port: p})
		}
	}
	return out
}

func (f *fakeAgent) ApplyRoute(_ context.Context, r api.Route) (api.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[r.Network+"|"+r.Prefix] = r
	return r, nil
}

func (f *fakeAgent) DeleteRoute(_ context.Context, network, prefix string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.routes[network+"|"+prefix]; !ok {
		return api.NotFound("no route")
	}
	delete(f.routes, network+"|"+prefix)
	return nil
}

func (f *fakeAgent) ListRoutes(context.Context) []api.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Route
	for _, r := range f.routes {
		out = append(out, r)
	}
	return out
}

func (f *fakeAgent) route(key string) (api.Route, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.routes[key]
	return r, ok
}

// setup starts a kube node for name against the shared control plane.
func setup(t *testing.T, name, nodeIP string) (*Node, *fakeAgent, client.Client) {
	t.Helper()
	env := kubetest.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	cs, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: cs})
	if err != nil {
		t.Fatal(err)
	}
	ensureCRDs(t, env)
	n, err := New(Config{Rest: env.Config, Name: name, NodeIP: nodeIP, Resync: time.Second, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	fa := newFakeAgent()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, fa) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("node %s: %v", name, err)
		}
	})
	select {
	case <-n.Synced():
	case <-time.After(30 * time.Second):
		t.Fatal("cache did not sync")
	}
	return n, fa, c
}

func ensureCRDs(t *testing.T, env *kubetest.Env) {
	t.Helper()
	s := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := crds.Ensure(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 20*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("%s: not within 20 s", what)
	}
}

func claimFor(network, ip, port string) agent.AddressClaim {
	return agent.AddressClaim{Network: network, IP: netip.MustParseAddr(ip), Label: 17,
		Port: api.Port{ID: port, Network: network, IP: ip, MAC: "02:00:00:00:00:07", HostIfName: "v" + ip[len(ip)-1:],
			Pod: &api.PodRef{Namespace: "default", Name: "p", UID: "u1"}}}
}

// TestClaims: one address, two nodes; the API server decides.
func TestClaims(t *testing.T) {
	a, fa, c := setup(t, "claims-a", "198.18.200.1")
	b, _, _ := setup(t, "claims-b", "198.18.200.2")
	ctx := context.Background()
	mkVN(t, c, "vn-claims", "198.18.61.0/24", 4100, false)
	eventually(t, "network applied", func() bool { _, err := fa.GetNetwork(ctx, "default", "vn-claims"); return err == nil })
	ca := claimFor("default/vn-claims", "198.18.61.1", "ca/eth1")
	if _, err := fa.ApplyPort(ctx, ca.Port); err != nil { // the agent stores the port after its claim
		t.Fatal(err)
	}
	if err := a.Claim(ctx, ca); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim(ctx, ca); err != nil {
		t.Fatalf("claiming again what the port holds: %v", err)
	}
	err := b.Claim(ctx, claimFor("default/vn-claims", "198.18.61.1", "cb/eth1"))
	if !errors.Is(err, agent.ErrAddressTaken) {
		t.Fatalf("second claim of one address: %v, want ErrAddressTaken", err)
	}
	var got v1alpha1.InstanceIP
	if err := c.Get(ctx, client.ObjectKey{Name: "default.vn-claims.198.18.61.1"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Node != "claims-a" || got.Spec.NodeIP != "198.18.200.1" || got.Spec.Label != 17 || got.Spec.Port != "ca/eth1" ||
		got.Labels[v1alpha1.LabelNode] != "claims-a" || got.Spec.Pod == nil || got.Spec.Pod.UID != "u1" {
		t.Fatalf("instance ip %+v labels %v", got.Spec, got.Labels)
	}
	eventually(t, "b's cache sees a's claim", func() bool { return b.Taken("default/vn-claims", netip.MustParseAddr("198.18.61.1")) })
	time.Sleep(1500 * time.Millisecond) // a sync pass or more: a keeps the claim of its port
	if err := c.Get(ctx, client.ObjectKey{Name: got.Name}, &v1alpha1.InstanceIP{}); err != nil {
		t.Fatalf("the claim of a live port was swept: %v", err)
	}
	if err := fa.DeletePort(ctx, "ca/eth1"); err != nil {
		t.Fatal(err)
	}
	a.Release(ca)
	eventually(t, "release deletes the instance ip", func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: got.Name}, &v1alpha1.InstanceIP{}))
	})
	eventually(t, "b's cache sees the release", func() bool { return !b.Taken("default/vn-claims", netip.MustParseAddr("198.18.61.1")) })
	if a.Pending() != 0 {
		t.Fatalf("%d releases pending", a.Pending())
	}
}

func mkVN(t *testing.T, c client.Client, name, cidr string, vni uint32, fabric bool) {
	t.Helper()
	vn := &v1alpha1.VirtualNetwork{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1alpha1.VirtualNetworkSpec{VNName: "k8s-" + name + "-pod-network", Project: "k8s-default", CIDR: cidr, VNI: vni, FabricForwarding: fabric}}
	if err := c.Create(context.Background(), vn); err != nil {
		t.Fatal(err)
	}
}

// TestSweepsClaimsOfNoPort: an InstanceIP of this node whose port is gone
// (a DEL while the API server was down) is deleted by the sync.
func TestSweepsClaimsOfNoPort(t *testing.T) {
	ctx := context.Background()
	env := kubetest.Require(t)
	cs, _ := Scheme()
	c, err := client.New(env.Config, client.Options{Scheme: cs})
	if err != nil {
		t.Fatal(err)
	}
	ensureCRDs(t, env)
	stale := &v1alpha1.InstanceIP{ObjectMeta: metav1.ObjectMeta{Name: "default.vn-sweep.198.18.62.9"},
		Spec: v1alpha1.InstanceIPSpec{Network: "default/vn-sweep", IP: "198.18.62.9", Node: "sweep-a", Port: "gone/eth1"}}
	if err := c.Create(ctx, stale); err != nil {
		t.Fatal(err)
	}
	other := &v1alpha1.InstanceIP{ObjectMeta: metav1.ObjectMeta{Name: "default.vn-sweep.198.18.62.10"},
		Spec: v1alpha1.InstanceIPSpec{Network: "default/vn-sweep", IP: "198.18.62.10", Node: "sweep-other", Port: "x/eth1"}}
	if err := c.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	setup(t, "sweep-a", "198.18.200.3")
	eventually(t, "the stale claim is swept", func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: stale.Name}, &v1alpha1.InstanceIP{}))
	})
	if err := c.Get(ctx, client.ObjectKey{Name: other.Name}, &v1alpha1.InstanceIP{}); err != nil {
		t.Fatalf("another node's claim was touched: %v", err)
	}
}

// TestNetworksAndRoutes: VNs become networks; another node's InstanceIP
// becomes a tunnel (or fabric) route while its Node exists.
func TestNetworksAndRoutes(t *testing.T) {
	_, fa, c := setup(t, "routes-a", "198.18.200.4")
	ctx := context.Background()
	mkVN(t, c, "vn-routes", "198.18.63.0/24", 4242, false)
	mkVN(t, c, "vn-routes-fab", "198.18.64.0/24", 4243, true)
	eventually(t, "networks applied", func() bool {
		_, e1 := fa.GetNetwork(ctx, "default", "vn-routes")
		_, e2 := fa.GetNetwork(ctx, "default", "vn-routes-fab")
		return e1 == nil && e2 == nil
	})
	if n, _ := fa.GetNetwork(ctx, "default", "vn-routes"); n.VNI != 4242 || n.CIDR != "198.18.63.0/24" {
		t.Fatalf("network %+v", n)
	}
	nodeB := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "routes-b"}}
	if err := c.Create(ctx, nodeB); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct{ network, ip string }{{"default/vn-routes", "198.18.63.5"}, {"default/vn-routes-fab", "198.18.64.5"}} {
		o := &v1alpha1.InstanceIP{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.InstanceIPName(x.network, netip.MustParseAddr(x.ip))},
			Spec: v1alpha1.InstanceIPSpec{Network: x.network, Attachment: x.network, IP: x.ip, Node: "routes-b", NodeIP: "198.18.200.5", Label: 21, Port: "b/eth1"}}
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "routes to node b", func() bool {
		_, ok1 := fa.route("default/vn-routes|198.18.63.5/32")
		_, ok2 := fa.route("default/vn-routes-fab|198.18.64.5/32")
		return ok1 && ok2
	})
	r, _ := fa.route("default/vn-routes|198.18.63.5/32")
	if r.Source != api.RouteSourceKube || r.NextHop.Type != api.NextHopTunnel || r.NextHop.Node != "198.18.200.5" ||
		r.NextHop.Label != 21 || r.NextHop.VNI != 4242 {
		t.Fatalf("tunnel route %+v", r)
	}
	if r, _ := fa.route("default/vn-routes-fab|198.18.64.5/32"); r.NextHop.Type != api.NextHopFabric || r.NextHop.Node != "198.18.200.5" {
		t.Fatalf("fabric route %+v", r)
	}
	// A hand-made route is never touched.
	fa.ApplyRoute(ctx, api.Route{Network: "default/vn-routes", Prefix: "198.18.63.128/25", NextHop: api.RouteNextHop{Type: api.NextHopDiscard}})
	// The pod goes: its route goes.
	if err := c.Delete(ctx, &v1alpha1.InstanceIP{ObjectMeta: metav1.ObjectMeta{Name: "default.vn-routes.198.18.63.5"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "route of a deleted pod removed", func() bool { _, ok := fa.route("default/vn-routes|198.18.63.5/32"); return !ok })
	// The node goes: its routes go.
	if err := c.Delete(ctx, nodeB); err != nil {
		t.Fatal(err)
	}
	eventually(t, "routes of a deleted node removed", func() bool { _, ok := fa.route("default/vn-routes-fab|198.18.64.5/32"); return !ok })
	if _, ok := fa.route("default/vn-routes|198.18.63.128/25"); !ok {
		t.Fatal("hand-made route removed")
	}
	// The VN goes: the network goes.
	if err := c.Delete(ctx, &v1alpha1.VirtualNetwork{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vn-routes-fab"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "network of a deleted VN removed", func() bool {
		_, err := fa.GetNetwork(ctx, "default", "vn-routes-fab")
		return api.IsNotFound(err)
	})
}

// TestPodsFromTheAPIServer: the CNI's pod read is live, and network-status
// lands in the pod's annotation.
func TestPodsFromTheAPIServer(t *testing.T) {
	n, fa, c := setup(t, "pods-a", "198.18.200.6")
	ctx := context.Background()
	b := n.Backend(fa)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pods-web",
		Annotations: map[string]string{api.NetworksAnnotation: "vn-left-1"}},
		Spec: corev1.PodSpec{NodeName: "pods-a", Containers: []corev1.Container{{Name: "c", Image: "none"}}}}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetPod(ctx, "default", "pods-web")
	if err != nil || got.UID != string(pod.UID) || got.Annotations[api.NetworksAnnotation] != "vn-left-1" {
		t.Fatalf("GetPod %+v %v", got, err)
	}
	if _, err := b.GetPod(ctx, "default", "no-such-pod"); !api.IsNotFound(err) {
		t.Fatalf("missing pod: %v", err)
	}
	if _, err := b.ApplyPod(ctx, api.Pod{Namespace: "default", Name: "x"}); api.StatusOf(err) != 409 {
		t.Fatalf("ApplyPod with Kubernetes: %v", err)
	}
	mkVN(t, c, "vn-pods", "198.18.65.0/24", 4300, false)
	eventually(t, "network applied", func() bool { _, err := fa.GetNetwork(ctx, "default", "vn-pods"); return err == nil })
	ref := &api.PodRef{Namespace: "default", Name: "pods-web", UID: string(pod.UID)}
	if _, err := fa.ApplyPort(ctx, api.Port{ID: "s1/eth0", Network: "default/vn-pods", HostIfName: "v0",
		IP: "198.18.65.3", MAC: "02:00:00:00:65:03", Pod: ref, ContainerID: "s1", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	st, err := b.PublishNetworkStatus(ctx, "default", "pods-web")
	if err != nil || len(st) != 1 {
		t.Fatalf("publish: %+v %v", st, err)
	}
	var p corev1.Pod
	if err := c.Get(ctx, client.ObjectKeyFromObject(pod), &p); err != nil {
		t.Fatal(err)
	}
	var ann []api.NetworkStatus
	if err := json.Unmarshal([]byte(p.Annotations[api.NetworkStatusAnnotation]), &ann); err != nil {
		t.Fatalf("network-status annotation %q: %v", p.Annotations[api.NetworkStatusAnnotation], err)
	}
	if len(ann) != 1 || ann[0].Interface != "eth0" || ann[0].IPs[0] != st[0].IPs[0] || ann[0].Mac != st[0].Mac {
		t.Fatalf("annotation %+v, want %+v", ann, st)
	}
	// A pod recreated under the same name is not annotated with the old sandbox.
	if err := c.Delete(ctx, &p, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	pod.ResourceVersion, pod.UID = "", ""
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PublishNetworkStatus(ctx, "default", "pods-web"); err == nil {
		t.Fatal("published the old sandbox's status on a recreated pod")
	}
}
