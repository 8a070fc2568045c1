package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/kube/kubetest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// realNodeIPs are the node IPs of TestRealNodeTwo, on the underlay bridge.
var realNodeIPs = []string{"198.18.201.1", "198.18.201.2"}

// newRealNodes starts the control plane (etcd, kube-apiserver with
// ServiceAccount admission and the kubelet egress, kube-controller-manager
// with node-lifecycle, kube-scheduler) and len(ips) real nodes, each its
// own network namespace (a fabric veth on the one underlay bridge),
// containerd (the images imported) and kubelet (clusterDNS kube-dns), with
// its "host" directories in a root of its own. Every node's
// renderManifests is done; with several nodes, renderNodes makes the one
// set of manifests to apply.
func newRealNodes(t *testing.T, ips []string) []*realNode {
	t.Helper()
	if testing.Short() {
		t.Skip("real nodes are not started under -short")
	}
	nettest.RequireRoot(t)
	start := time.Now()
	images := buildImages(t)
	t.Logf("images built in %v", time.Since(start).Round(time.Millisecond))
	env, c := startControlPlane(t, kubetest.Options{KubeletEgress: true, ServiceAccountAdmission: true})
	// node-lifecycle: it lifts the not-ready taint kubelet registers the
	// Node with, once the Node is Ready (the node has a real kubelet).
	kcm := env.StartControllerManager(t, kubetest.ControllerManagerOptions{
		Controllers: append(slices.Clone(kubetest.DefaultControllers), "node-lifecycle-controller")})
	env.StartScheduler(t)

	ov := newUnderlay(t, "xrul", "xrbr")

	var nodes []*realNode
	for i, ip := range ips {
		rn := &realNode{env: env, c: c, kcm: kcm, ip: ip}
		rn.ns = nettest.NewNS(t, fmt.Sprintf("xrn%d", i))
		rn.fabric, _ = ov.fabricLink(t, rn.ns, fmt.Sprintf("xrf%d", i), rn.ip)
		var err error
		if rn.root, err = os.MkdirTemp("", "xvr-rn-"); err != nil {
			t.Fatal(err)
		}
		root := rn.root
		t.Cleanup(func() { os.RemoveAll(root) }) // removed last (cleanups run in reverse): after containerd
		rn.ctrd = kubetest.StartContainerd(t, kubetest.ContainerdOptions{
			SandboxImage: "xvr.local/pause:" + imageTag, NetNS: rn.ns.Name,
			CNIBinDir: rn.hostPath("/opt/cni/bin"), CNIConfDir: rn.hostPath("/etc/cni/net.d"),
		})
		// containerd 1.6 brings up each sandbox's lo with the standard
		// loopback plugin (containernetworking-plugins: Debian's here).
		if err := os.Symlink("/usr/lib/cni/loopback", filepath.Join(rn.ctrd.CNIBinDir, "loopback")); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"pause", "test-app", "xvr-node", "xvr-controller", "coredns"} {
			rn.ctrd.Import(t, filepath.Join(images, f+".tar"))
		}
		rn.name = nettest.Name(t, fmt.Sprintf("xvrrn%d", i))
		rn.kubelet = env.StartKubelet(t, kubetest.KubeletOptions{NodeName: rn.name, Containerd: rn.ctrd, NodeIP: rn.ip,
			ClusterDNS: []string{kubeDNSIP}})
		nodes = append(nodes, rn)
	}
	// Before the kubelets' cleanups drain the nodes: no DaemonSet or
	// Deployment recreating what they delete.
	t.Cleanup(func() { _ = kcm.Stop() })
	for _, rn := range nodes {
		waitFor(t, "node "+rn.name+" registered", 60*time.Second, func() (bool, error) {
			var n corev1.Node
			err := c.Get(context.Background(), client.ObjectKey{Name: rn.name}, &n)
			return err == nil, err
		})
		name := rn.name
		t.Cleanup(func() {
			_ = c.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
		})
		rn.renderManifests(t)
	}
	return nodes
}

// renderNodes makes the manifests for nodes on one machine: deploy/kubernetes
// as rendered for nodes[0], with node.yaml once per node. On real machines
// one DaemonSet serves every node, its host paths each machine's own; here
// the nodes share one file system, so each node gets a copy of the
// DaemonSet (and of the conflist ConfigMap, which names the socket) with a
// nodeSelector on kubernetes.io/hostname, its own host directories and
// fabric NIC (XVR_FABRIC_IF in its env, over xvr-config's), and a label
// xvr.test/node in its selector: two xvrd never share /run/xvr or
// /var/lib/xvr.
func renderNodes(t testing.TB, nodes []*realNode) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(nodes[0].manifest, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if filepath.Base(f) == "node.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, rn := range nodes {
		data, err := os.ReadFile(filepath.Join(rn.manifest, "node.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, e := range []struct {
			re, repl string
			count    int
		}{
			{`(?m)^  name: xvr-node$`, fmt.Sprintf("  name: xvr-node-%d", i), 1},
			{`(?m)^(\s+)name: xvr-cni-config$`, fmt.Sprintf("${1}name: xvr-cni-config-%d", i), 2},
			{`(?m)^(\s+)app.kubernetes.io/name: xvr-node$`, fmt.Sprintf("${1}app.kubernetes.io/name: xvr-node\n${1}xvr.test/node: %q", fmt.Sprint(i)), 3},
			{`(?m)^(\s+)serviceAccountName: xvr-node$`, "${1}serviceAccountName: xvr-node\n${1}nodeSelector:\n${1}  kubernetes.io/hostname: " + rn.name, 1},
			{`(?m)^(\s+)env:\n`, "${1}env:\n${1}  - name: XVR_FABRIC_IF\n${1}    value: " + rn.fabric + "\n", 1},
		} {
			re := regexp.MustCompile(e.re)
			if n := len(re.FindAllStringIndex(s, -1)); n != e.count {
				t.Fatalf("node.yaml for %s: %q matches %d times, want %d", rn.name, e.re, n, e.count)
			}
			s = re.ReplaceAllString(s, e.repl)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("node-%d.yaml", i)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// waitNodeDaemonPod waits for the xvr-node pod on the node to be Ready.
func (rn *realNode) waitNodeDaemonPod(t testing.TB, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var ready *corev1.Pod
	waitFor(t, "the xvr-node pod on "+rn.name+" Ready", timeout, func() (bool, error) {
		var l corev1.PodList
		if err := rn.c.List(context.Background(), &l, client.InNamespace("kube-system"),
			client.MatchingLabels{"app.kubernetes.io/name": "xvr-node"}); err != nil {
			return false, err
		}
		for i, p := range l.Items {
			if p.Spec.NodeName == rn.name && p.DeletionTimestamp == nil && podReady(&p) {
				ready = &l.Items[i]
				return true, nil
			}
		}
		return false, fmt.Errorf("pods %s", podSummary(l.Items))
	})
	return ready
}

// createAppOn creates a test-app pod in default on the node (nodeName),
// attached to networks.
func (rn *realNode) createAppOn(t testing.TB, name, networks string) {
	t.Helper()
	p := appPod(name, networks)
	p.Spec.NodeName = rn.name
	rn.createPod(t, p)
}

// tunnelTo reports whether the node's xvrd routes ip/32 on network
// through a tunnel next hop to the node at nodeIP.
func (rn *realNode) tunnelTo(network, ip, nodeIP string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := api.NewClient(rn.hostPath("/run/xvr/xvrd.sock"))
	defer c.Close()
	rt, err := c.RouteTable(ctx, network)
	if err != nil {
		return err
	}
	nhs, err := c.NextHops(ctx)
	if err != nil {
		return err
	}
	for _, r := range rt {
		if r.Prefix != ip+"/32" {
			continue
		}
		for _, nh := range nhs {
			if nh.ID == r.NextHop {
				if nh.Node != nodeIP {
					return fmt.Errorf("route %+v: next hop %+v", r, nh)
				}
				return nil
			}
		}
		return fmt.Errorf("route %+v: no next hop %d", r, r.NextHop)
	}
	return fmt.Errorf("no route to %s/32 in %s: %+v", ip, network, rt)
}

// TestRealNodeTwo runs two real nodes (containerd and kubelet each in its
// own network namespace, node IPs on one underlay bridge), installs xvr
// with kubectl apply (renderNodes: a DaemonSet per node, as the nodes
// share this machine's file system), and checks that a test-app pod on
// vn-left-1 pinned to each node (and the controller's two replicas, one
// on each) reaches the other over the overlay (ping
// and HTTP, both ways) and that each node's xvrd routes the other's pod
// through a tunnel to the other node.
func TestRealNodeTwo(t *testing.T) {
	start := time.Now()
	nodes := newRealNodes(t, realNodeIPs)
	t.Logf("control plane and %d nodes up in %v", len(nodes), time.Since(start).Round(time.Millisecond))
	a, b := nodes[0], nodes[1]

	inst := time.Now()
	a.mustKubectl(t, "apply", "-f", renderNodes(t, nodes))
	for _, rn := range nodes {
		rn.waitNodeDaemonPod(t, 120*time.Second)
		for _, f := range []string{"/opt/cni/bin/xvr", "/etc/cni/net.d/10-xvr.conflist"} {
			if _, err := os.Stat(rn.hostPath(f)); err != nil {
				t.Errorf("node %s: the init container did not install %s: %v", rn.name, f, err)
			}
		}
		if err := rn.env.WaitNodeReady(rn.name, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Its required anti-affinity on kubernetes.io/hostname: one replica
	// on each node.
	waitFor(t, "both xvr-kube-manager replicas available", 90*time.Second, func() (bool, error) {
		var d appsv1.Deployment
		if err := a.c.Get(context.Background(), client.ObjectKey{Namespace: "kube-system", Name: "xvr-kube-manager"}, &d); err != nil {
			return false, err
		}
		return d.Status.AvailableReplicas == 2, fmt.Errorf("status %+v", d.Status)
	})
	t.Logf("xvr installed, both nodes Ready and both controller replicas available in %v", time.Since(inst).Round(time.Millisecond))

	a.mustKubectl(t, "apply", "-f", "../examples/vn-left-1.yaml")
	a.waitVN(t, "default", "vn-left-1")
	podStart := time.Now()
	apps := []string{"two-a", "two-b"}
	for i, rn := range nodes {
		rn.createAppOn(t, apps[i], `[{"name":"vn-left-1"}]`)
	}
	for _, app := range apps {
		a.waitReady(t, app, 90*time.Second)
	}
	t.Logf("a pod on each node Ready in %v", time.Since(podStart).Round(time.Millisecond))
	a.checkExecAddr(t, apps[0], "default/vn-left-1")
	b.checkExecAddr(t, apps[1], "default/vn-left-1")
	ipA, ipB := a.netIP(t, apps[0], "eth1"), b.netIP(t, apps[1], "eth1")

	for _, c := range []struct {
		from, to *realNode
		app, ip  string
	}{{a, b, apps[0], ipB}, {b, a, apps[1], ipA}} {
		d := c.from.waitPing(t, c.app+" on "+c.from.name+" -> "+c.ip+" on "+c.to.name, c.app, c.ip, 20*time.Second)
		t.Logf("%s (%s) -> %s (%s) over the overlay after %v", c.app, c.from.name, c.ip, c.to.name, d.Round(time.Millisecond))
		if out, err := c.from.kubectl(t, "exec", c.app, "--", "/test-app", "get", "http://"+c.ip+":8080/healthz"); err != nil {
			t.Errorf("HTTP %s -> %s: %v", c.app, c.ip, err)
		} else {
			t.Logf("HTTP %s -> %s: %s", c.app, c.ip, strings.TrimSpace(out))
		}
	}
	for _, c := range []struct {
		on, other *realNode
		ip        string
	}{{a, b, ipB}, {b, a, ipA}} {
		waitFor(t, c.on.name+"'s xvrd routes "+c.ip+" to "+c.other.ip, 10*time.Second, func() (bool, error) {
			err := c.on.tunnelTo("default/vn-left-1", c.ip, c.other.ip)
			return err == nil, err
		})
	}

	a.mustKubectl(t, "delete", "pod", apps[0], apps[1], "--wait=false")
	a.mustKubectl(t, "wait", "--for=delete", "pod/"+apps[0], "pod/"+apps[1], "--timeout=60s")
	for _, rn := range nodes {
		waitFor(t, "nothing left of the pods on "+rn.name, 30*time.Second, func() (bool, error) {
			left := rn.leftovers(t)
			return len(left) == 0, fmt.Errorf("left: %v", left)
		})
	}
	t.Logf("TestRealNodeTwo done in %v", time.Since(start).Round(time.Millisecond))
}
