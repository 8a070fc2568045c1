package kubetest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/xvr-project/xvr/internal/image"
	"github.com/xvr-project/xvr/internal/nettest"
)

// pauseImage builds images/pause static and writes it as the image ref
// into an archive in dir.
func pauseImage(t *testing.T, dir, ref string) string {
	t.Helper()
	bin := filepath.Join(dir, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./images/pause")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building images/pause: %v\n%s", err, out)
	}
	im := image.New(ref, image.Config{Entrypoint: []string{"/pause"}})
	if err := im.AddFile("/pause", bin); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "pause.tar")
	if _, err := im.WriteFile(archive); err != nil {
		t.Fatal(err)
	}
	return archive
}

// pausePod is a Pod running only ref on node.
func pausePod(name, node, ref string, hostNetwork bool) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:    node,
			HostNetwork: hostNetwork,
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name: "pause", Image: ref, ImagePullPolicy: corev1.PullNever,
			}},
			TerminationGracePeriodSeconds: new(int64),
		},
	}
}

// waitRunning waits for the Pod to be Running and returns it.
func waitRunning(t *testing.T, cs *kubernetes.Clientset, name string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	waitFor(t, timeout, "pod "+name+" Running", func() (bool, error) {
		var err error
		p, err = cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Status.Phase == corev1.PodRunning {
			return true, nil
		}
		return false, fmt.Errorf("phase %s, conditions %+v, containers %+v", p.Status.Phase, p.Status.Conditions, p.Status.ContainerStatuses)
	})
	return p
}

// TestKubeletRunsPods runs a real node: containerd and kubelet in a
// network namespace of the test, the pause image made by internal/image.
// A hostNetwork Pod runs with no CNI at all; then, with Debian's bridge
// and host-local plugins configured, the Node turns Ready and a Pod of
// its own network runs with an address of the bridge's range. The API
// server reaches the kubelet (a Pod's logs) through the egress proxy.
func TestKubeletRunsPods(t *testing.T) {
	if testing.Short() {
		t.Skip("kubetest: a real node is not started under -short")
	}
	nettest.RequireRoot(t)
	e, err := StartWith(Options{KubeletEgress: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Error(err)
		}
	})
	cs := clientset(t, e)
	const ref = "xvr.local/pause:kubetest"
	archive := pauseImage(t, t.TempDir(), ref)
	node := nettest.NewNS(t, "xvrkn")
	c := StartContainerd(t, ContainerdOptions{SandboxImage: ref, NetNS: node.Name})
	c.Import(t, archive)
	if imgs, err := c.Images(); err != nil || !slices.Contains(imgs, ref) {
		t.Fatalf("images after import: %v, %v", imgs, err)
	}
	const nodeIP = "198.18.245.1"
	dev := nettest.Name(t, "xvrkd") // the node's "NIC": one end of a veth pair inside (no dummy module here)
	node.AddVeth(t, dev, nettest.Name(t, "xvrkp"))
	node.Run(t, "ip", "addr", "add", nodeIP+"/24", "dev", dev)
	name := nettest.Name(t, "xvrkn")
	e.StartKubelet(t, KubeletOptions{NodeName: name, Containerd: c, NodeIP: nodeIP})
	waitFor(t, 60*time.Second, "node "+name+" registered", func() (bool, error) {
		_, err := cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		return err == nil, err
	})
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })

	host := pausePod(name+"-host", name, ref, true)
	if _, err := cs.CoreV1().Pods("default").Create(context.Background(), host, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := waitRunning(t, cs, host.Name, 90*time.Second); p.Status.PodIP != nodeIP {
		t.Errorf("hostNetwork pod IP %q, want the node's %s", p.Status.PodIP, nodeIP)
	}
	// kube-apiserver -> egress proxy -> kubelet in the node namespace.
	if _, err := cs.CoreV1().Pods("default").GetLogs(host.Name, &corev1.PodLogOptions{}).DoRaw(context.Background()); err != nil {
		t.Errorf("logs of %s through kube-apiserver: %v", host.Name, err)
	}

	// A CNI network: a bridge of a unique name inside the node namespace.
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if err := os.Symlink(filepath.Join("/usr/lib/cni", p), filepath.Join(c.CNIBinDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	subnet := netip.MustParsePrefix("198.18.244.0/24")
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "kubetest",
  "plugins": [{
    "type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
    "ipam": {"type": "host-local", "subnet": %q, "dataDir": %q}
  }]
}`, nettest.Name(t, "xvrbr"), subnet, filepath.Join(c.Dir, "ipam"))
	if err := os.WriteFile(filepath.Join(c.CNIConfDir, "10-kubetest.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitNodeReady(name, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	pod := pausePod(name+"-pod", name, ref, false)
	if _, err := cs.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitRunning(t, cs, pod.Name, 90*time.Second)
	if ip, err := netip.ParseAddr(p.Status.PodIP); err != nil || !subnet.Contains(ip) {
		t.Errorf("pod IP %q, want one of %v", p.Status.PodIP, subnet)
	}
}
