package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/kube/kubetest"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/vrouter/api"
)

// realNode is one real Kubernetes node run as an operator installs xvr:
// the control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) on the test's 127.0.0.1, containerd and kubelet in a node
// namespace with a fabric veth on an underlay, the project's images
// (scripts/images.sh) imported into that containerd, and deploy/kubernetes
// applied with the real kubectl. The manifests' host paths are moved into a
// directory of the test (the machine's /opt/cni/bin, /etc/cni/net.d,
// /run/xvr and /var/lib/xvr are never touched) and config.yaml names the
// node's fabric veth and the API server on the node's 127.0.0.1 (forwarded
// to the test's).
type realNode struct {
	env      *kubetest.Env
	c        client.Client
	kcm      *kubetest.ControllerManager
	ctrd     *kubetest.Containerd
	kubelet  *kubetest.Kubelet
	ns       *nettest.NS
	name, ip string
	fabric   string
	root     string // the node's "host" directories
	manifest string // the rendered deploy/kubernetes
}

const (
	realNodeIP = "198.18.201.1"
	imageTag   = "dev"
)

// kubectl runs the real kubectl as the admin, bounded to 2 minutes, and
// returns its stdout (kubectl exec's client logs go to stderr, seen
// around a kubelet restart: "Unknown stream id 1, discarding message"),
// with stderr too on an error.
func (rn *realNode) kubectl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(kubeBinDir(), "kubectl"), append([]string{"--kubeconfig", rn.env.Kubeconfig}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), fmt.Errorf("kubectl %s: %w: %s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}

func (rn *realNode) mustKubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := rn.kubectl(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kubeBinDir is where make kube-bins puts the Kubernetes binaries.
func kubeBinDir() string {
	if d := os.Getenv(kubetest.AssetsEnv); d != "" {
		return d
	}
	return filepath.Join("..", ".cache", "kube", "bin")
}

// buildImages runs scripts/images.sh into a directory of the test.
func buildImages(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("./scripts/images.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "IMAGES_DIR="+dir, "IMAGE_TAG="+imageTag)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/images.sh: %v\n%s", err, out)
	}
	return dir
}

// newRealNode starts everything but xvr, with one node (newRealNodes).
func newRealNode(t *testing.T) *realNode {
	t.Helper()
	return newRealNodes(t, []string{realNodeIP})[0]
}

// hostPath is where the node's path p is kept in the test.
func (rn *realNode) hostPath(p string) string { return filepath.Join(rn.root, p) }

// renderManifests copies deploy/kubernetes/*.yaml into a directory of the
// test with the node's paths under rn.root and config.yaml filled in. Each
// replacement must match as often as expected, so a manifest change that
// would make the test touch the machine's own paths fails here.
func (rn *realNode) renderManifests(t testing.TB) {
	t.Helper()
	rn.manifest = t.TempDir()
	edits := map[string][]struct {
		re    string
		repl  string
		count int
	}{
		"config.yaml": {
			{`(?m)^  XVR_FABRIC_IF: .*$`, "  XVR_FABRIC_IF: " + rn.fabric, 1},
			{`(?m)^  XVR_SERVICE_CIDR: .*$`, "  XVR_SERVICE_CIDR: " + kubetest.ServiceCIDR, 1},
			{`(?m)^  # KUBERNETES_SERVICE_HOST: .*$`, `  KUBERNETES_SERVICE_HOST: "127.0.0.1"`, 1},
			{`(?m)^  # KUBERNETES_SERVICE_PORT: .*$`, `  KUBERNETES_SERVICE_PORT: "` + strconv.Itoa(rn.env.SecurePort) + `"`, 1},
		},
		"node.yaml": {
			{`(?m)^(\s+path: )(/opt/cni/bin|/etc/cni/net.d|/run/xvr|/var/lib/xvr)$`, "${1}" + rn.root + "${2}", 4},
			{`"socket": "/run/xvr/xvrd.sock"`, `"socket": "` + rn.hostPath("/run/xvr/xvrd.sock") + `"`, 1},
		},
	}
	files, err := filepath.Glob("../deploy/kubernetes/*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("deploy/kubernetes: %v, %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, e := range edits[filepath.Base(f)] {
			re := regexp.MustCompile(e.re)
			if n := len(re.FindAllStringIndex(s, -1)); n != e.count {
				t.Fatalf("%s: %q matches %d times, want %d", f, e.re, n, e.count)
			}
			s = re.ReplaceAllString(s, e.repl)
		}
		if err := os.WriteFile(filepath.Join(rn.manifest, filepath.Base(f)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := kubetest.DecodeManifest(kubeScheme(t), filepath.Join(rn.manifest, "node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if ds, ok := o.(*appsv1.DaemonSet); ok {
			for _, v := range ds.Spec.Template.Spec.Volumes {
				if v.HostPath != nil && !strings.HasPrefix(v.HostPath.Path, rn.root+"/") {
					t.Fatalf("node.yaml: host path %s of volume %s is not the test's", v.HostPath.Path, v.Name)
				}
			}
		}
	}
}

// install applies the manifests and waits for xvrd (the DaemonSet's pod
// Ready, the plugin and conflist installed), the controller (one replica
// available: the second has no other node) and the Node Ready.
func (rn *realNode) install(t testing.TB) *corev1.Pod {
	t.Helper()
	start := time.Now()
	rn.mustKubectl(t, "apply", "-f", rn.manifest)
	xvrd := rn.waitDaemonPod(t, "")
	for _, f := range []string{"/opt/cni/bin/xvr", "/opt/cni/bin/contrail-k8s-cni", "/etc/cni/net.d/10-xvr.conflist"} {
		if _, err := os.Stat(rn.hostPath(f)); err != nil {
			t.Errorf("the init container did not install %s: %v", f, err)
		}
	}
	waitFor(t, "xvr-kube-manager available", 90*time.Second, func() (bool, error) {
		var d appsv1.Deployment
		if err := rn.c.Get(context.Background(), client.ObjectKey{Namespace: "kube-system", Name: "xvr-kube-manager"}, &d); err != nil {
			return false, err
		}
		return d.Status.AvailableReplicas >= 1, fmt.Errorf("status %+v", d.Status)
	})
	if err := rn.env.WaitNodeReady(rn.name, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("xvr installed and the node Ready in %v", time.Since(start).Round(time.Millisecond))
	return xvrd
}

// waitDaemonPod waits for the xvr-node pod on the node (not old) to be
// Ready and returns it.
func (rn *realNode) waitDaemonPod(t testing.TB, old string) *corev1.Pod {
	t.Helper()
	var ready *corev1.Pod
	waitFor(t, "the xvr-node pod Ready", 120*time.Second, func() (bool, error) {
		var l corev1.PodList
		if err := rn.c.List(context.Background(), &l, client.InNamespace("kube-system"),
			client.MatchingLabels{"app.kubernetes.io/name": "xvr-node"}); err != nil {
			return false, err
		}
		for i, p := range l.Items {
			if p.Name != old && p.DeletionTimestamp == nil && podReady(&p) {
				ready = &l.Items[i]
				return true, nil
			}
		}
		return false, fmt.Errorf("pods %s", podSummary(l.Items))
	})
	return ready
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podSummary(ps []corev1.Pod) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s: %s %+v %+v; ", p.Name, p.Status.Phase, p.Status.Conditions, append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...))
	}
	return b.String()
}

// ipAddr is one interface of `ip -j addr`.
type ipAddr struct {
	IfName   string `json:"ifname"`
	Address  string `json:"address"`
	AddrInfo []struct {
		Family string `json:"family"`
		Local  string `json:"local"`
	} `json:"addr_info"`
}

// checkExecAddr asserts that the pod's network-status lists exactly the
// interfaces `kubectl exec <pod> -- ip -j addr` shows besides lo, with
// their IPs and MACs, eth0 first on the default network.
func (rn *realNode) checkExecAddr(t testing.TB, name string, networks ...string) {
	t.Helper()
	var p corev1.Pod
	if err := rn.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(p.Annotations[nadv1.NetworkStatusAnnot]), &st); err != nil {
		t.Fatalf("network-status %q: %v", p.Annotations[nadv1.NetworkStatusAnnot], err)
	}
	out := rn.mustKubectl(t, "exec", name, "--", "ip", "-j", "addr")
	var addrs []ipAddr
	if err := json.Unmarshal([]byte(out), &addrs); err != nil {
		t.Fatalf("ip -j addr in %s: %v\n%s", name, err, out)
	}
	inside := map[string]ipAddr{}
	for _, a := range addrs {
		if a.IfName != "lo" {
			inside[a.IfName] = a
		}
	}
	want := append([]string{"default/" + api.DefaultNetworkName}, networks...)
	if len(st) != len(want) || len(inside) != len(want) {
		t.Fatalf("pod %s: network-status %+v, inside %s; want networks %v", name, st, out, want)
	}
	for i, e := range st {
		a, ok := inside[e.Interface]
		var ips []string
		for _, ai := range a.AddrInfo {
			if ai.Family == "inet" {
				ips = append(ips, ai.Local)
			}
		}
		switch {
		case e.Name != want[i] || e.Interface != fmt.Sprintf("eth%d", i) || e.Default != (i == 0):
			t.Errorf("pod %s: entry %d is %+v, want %s on eth%d", name, i, e, want[i], i)
		case !ok || !strings.EqualFold(a.Address, e.Mac):
			t.Errorf("pod %s: %s has MAC %q inside, %q in network-status", name, e.Interface, a.Address, e.Mac)
		case len(e.IPs) != 1 || !slices.Equal(ips, e.IPs):
			t.Errorf("pod %s: %s has %v inside, %v in network-status", name, e.Interface, ips, e.IPs)
		}
	}
	if i := slices.IndexFunc(st, func(e nadv1.NetworkStatus) bool { return e.Default }); i != 0 || len(st[0].IPs) == 0 || st[0].IPs[0] != p.Status.PodIP {
		t.Errorf("pod %s: PodIP %s, network-status %+v", name, p.Status.PodIP, st)
	}
}

// leftovers lists what xvr still holds for pods on the node: veths in its
// namespace other than the fabric and the host interface, xvrd's pod
// ports, pod InstanceIPs.
func (rn *realNode) leftovers(t testing.TB) []string {
	t.Helper()
	left := rn.podVeths(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ports, err := api.NewClient(rn.hostPath("/run/xvr/xvrd.sock")).ListPorts(ctx)
	if err != nil {
		t.Fatalf("xvrd's ports: %v", err)
	}
	for _, p := range ports {
		if p.Pod != nil {
			left = append(left, "port "+p.ID)
		}
	}
	var xips v1alpha1.InstanceIPList
	if err := rn.c.List(ctx, &xips); err != nil {
		t.Fatal(err)
	}
	for _, x := range xips.Items {
		if x.Spec.Pod != nil {
			left = append(left, "InstanceIP "+x.Name)
		}
	}
	return left
}

// nodeGet is an HTTP GET of path on ip:8080 from the node's namespace (its
// own address: through xvr's host interface), bounded to a second.
func (rn *realNode) nodeGet(ip, path string) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       func(_ context.Context, _, addr string) (net.Conn, error) { return rn.ns.DialTCP(addr) },
	}}
	resp, err := c.Get("http://" + net.JoinHostPort(ip, "8080") + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

// restartXvrd deletes the xvr-node pod as an operator (or an upgrade)
// would: the DaemonSet makes a new one, whose xvrd restores the ports from
// /var/lib/xvr on the host; the node reaches the running pod again, with
// the same interfaces, and the pod's container was never restarted.
func (rn *realNode) restartXvrd(t testing.TB, old *corev1.Pod, app string) {
	t.Helper()
	var p corev1.Pod
	if err := rn.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: app}, &p); err != nil {
		t.Fatal(err)
	}
	if err := rn.nodeGet(p.Status.PodIP, "/healthz"); err != nil {
		t.Fatalf("node -> pod %s before the restart: %v", p.Status.PodIP, err)
	}
	start := time.Now()
	rn.mustKubectl(t, "-n", "kube-system", "delete", "pod", old.Name, "--wait=false")
	rn.waitDaemonPod(t, old.Name)
	ready := time.Since(start)
	waitFor(t, "node -> pod after xvrd's restart", 30*time.Second, func() (bool, error) {
		err := rn.nodeGet(p.Status.PodIP, "/healthz")
		return err == nil, err
	})
	back := time.Since(start)
	t.Logf("xvr-node pod deleted: the new one Ready after %v, node -> pod back after %v",
		ready.Round(time.Millisecond), back.Round(time.Millisecond))
	// docs/reliability.md's bound: traffic back within 1 s of the new xvrd
	// being ready (here: its pod Ready, /healthz answering).
	if back-ready > time.Second {
		t.Errorf("node -> pod back %v after the new xvrd pod was Ready, want < 1s", (back - ready).Round(time.Millisecond))
	}
	rn.checkExecAddr(t, app, "default/vn-left-1", "default/vn-right-1")
	if err := rn.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: app}, &p); err != nil {
		t.Fatal(err)
	}
	if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].RestartCount != 0 {
		t.Errorf("pod %s's containers after xvrd's restart: %+v", app, cs)
	}
}

// TestRealNode installs xvr from deploy/kubernetes on a real kubelet +
// containerd node and runs the multi-interface pod of examples/ on it:
// the xvr-node pod (xvrd -in-cluster) becomes Ready and its init container
// installs the plugin and conflist; the controller's Deployment is
// available; the Node turns Ready; the NADs become VNs; the pod (test-app,
// an httpGet readiness and a tcpSocket liveness probe that kubelet sends
// through xvr's host interface) turns Ready; its network-status matches
// `kubectl exec -- ip -j addr`; the xvr-node pod deleted, the DaemonSet's
// new one restores it (restartXvrd); pods on vn-left-1 reach each other
// and not a pod on blue/vn-blue (peers); kubelet's and containerd's
// restarts keep the pods and their traffic (restartKubelet,
// restartContainerd); a pod created while the xvr-node DaemonSet is off
// the node gets its interfaces once it is back, with nothing leaked
// (podCreatedWithoutXvrd); with kube-proxy and CoreDNS, a pod reaches a
// Service by name (dns); `kubectl delete` leaves no veth, port or
// InstanceIP.
func TestRealNode(t *testing.T) {
	start := time.Now()
	rn := newRealNode(t)
	t.Logf("control plane and node up in %v", time.Since(start).Round(time.Millisecond))
	xvrd := rn.install(t)

	rn.mustKubectl(t, "apply", "-f", "../examples/vn-left-1.yaml", "-f", "../examples/vn-right-1.yaml")
	rn.waitVN(t, "default", "vn-left-1")
	rn.waitVN(t, "default", "vn-right-1")
	podStart := time.Now()
	rn.mustKubectl(t, "apply", "-f", "../examples/pod-test-app.yaml")
	if _, err := rn.kubectl(t, "wait", "--for=condition=Ready", "pod/multi-net-app", "--timeout=90s"); err != nil {
		out, _ := rn.kubectl(t, "describe", "pod", "multi-net-app")
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("multi-interface pod Ready in %v", time.Since(podStart).Round(time.Millisecond))
	rn.checkExecAddr(t, "multi-net-app", "default/vn-left-1", "default/vn-right-1")
	rn.restartXvrd(t, xvrd, "multi-net-app")
	peer := rn.peers(t, "multi-net-app")
	rn.restartKubelet(t, "multi-net-app", peer)
	rn.restartContainerd(t, "multi-net-app", peer)
	rn.podCreatedWithoutXvrd(t, "multi-net-app", "late-left")
	rn.dns(t, "multi-net-app", "peer-left", "peer-blue", "late-left")

	rn.mustKubectl(t, "delete", "-f", "../examples/pod-test-app.yaml", "--wait=false")
	rn.mustKubectl(t, "delete", "pod", "peer-left", "peer-blue", "late-left", "--wait=false")
	rn.mustKubectl(t, "wait", "--for=delete", "pod/multi-net-app", "pod/peer-left", "pod/peer-blue", "pod/late-left", "--timeout=60s")
	waitFor(t, "nothing left of the pods", 30*time.Second, func() (bool, error) {
		left := rn.leftovers(t)
		return len(left) == 0, fmt.Errorf("left: %v", left)
	})
	var p corev1.Pod
	if err := rn.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "multi-net-app"}, &p); !apierrors.IsNotFound(err) {
		t.Errorf("pod after delete: %v", err)
	}
	t.Logf("TestRealNode done in %v", time.Since(start).Round(time.Millisecond))
}
