package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/xvr-project/xvr/internal/nettest"
)

// KubeletOptions are StartKubelet's choices.
type KubeletOptions struct {
	// NodeName is the Node kubelet registers (--hostname-override).
	// Required; make it unique (nettest.Name).
	NodeName string
	// Containerd is the runtime; kubelet runs in its network namespace.
	// Required.
	Containerd *Containerd
	// NodeIP is --node-ip, the Node's InternalIP and the address of its
	// hostNetwork Pods. kubelet refuses a loopback one and needs it on an
	// interface of its namespace. Required with a Containerd.NetNS (give
	// the namespace a device with it); otherwise default kubelet's choice
	// (the address of the default route's interface).
	//
	// kube-apiserver dials the Node (its name, else NodeIP) at Port for
	// logs, exec and port-forward: that works when the Env was started
	// with Options.KubeletEgress.
	NodeIP string
	// ClusterDNS is the Pods' nameservers (clusterDNS); empty: the node's
	// resolv.conf only.
	ClusterDNS []string
	// Args are more kubelet flags, appended last.
	Args []string
}

// Kubelet is a running kubelet of a test.
type Kubelet struct {
	// NodeName is the Node it registers.
	NodeName string
	// Dir is its --root-dir (and holds its config and kubeconfig).
	Dir string
	// Port is where it serves, on 127.0.0.1 of its namespace (with a
	// namespace, the test's 127.0.0.1:Port is forwarded there).
	Port int

	proc    *nettest.Proc
	argv    []string // how proc was started (Restart)
	cgroups []string // the cgroup root, one directory per hierarchy
}

// Restart stops kubelet (SIGTERM, SIGKILL after 10 s) and starts it again
// with the same flags, as a node's service manager does. The pods keep
// running in containerd meanwhile.
func (k *Kubelet) Restart() error {
	if err := stopProc(k.proc); err != nil {
		return fmt.Errorf("kubetest: stopping kubelet: %w", err)
	}
	p, err := nettest.Spawn(k.argv...)
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	k.proc = p
	return nil
}

// stopProc sends SIGTERM to p and SIGKILL after 10 s, and waits.
func stopProc(p *nettest.Proc) error {
	_ = p.Signal(syscall.SIGTERM)
	if p.Wait(10*time.Second) == nil {
		return nil
	}
	if err := p.Kill(); err != nil {
		return err
	}
	if err := p.Wait(10 * time.Second); err != nil && strings.Contains(err.Error(), "still running") {
		return err
	}
	return nil
}

// Log returns what kubelet wrote so far.
func (k *Kubelet) Log() string { return k.proc.Output() }

// kubeletSysctls are the kernel settings kubelet's container manager sets
// at start (protectKernelDefaults false); they are the whole machine's,
// so StartKubelet puts back what it found when the kubelet stops.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// StartKubelet runs the real kubelet (built by make kube-bins) for a Node
// of e, against o.Containerd, in its network namespace, until t's
// cleanup. It does not wait for the Node: use WaitNodeReady. The kubelet:
//
//   - uses a client certificate of its own, user system:node:<NodeName>
//     in the groups system:nodes and system:masters (e has no Node
//     authorizer);
//   - has cgroupDriver cgroupfs, failSwapOn false and a cgroup root of
//     its own (/xvr-<NodeName> in every hierarchy), so its Pods'
//     processes are found and killed by cgroup at cleanup;
//   - serves with anonymous access and AlwaysAllow authorization on
//     127.0.0.1 (kube-apiserver dials it without a client certificate),
//     makes no iptables chains, and has an empty static pod directory;
//   - writes under Dir (root dir, pod logs), except what kubelet always
//     puts in place: /var/lib/kubelet/device-plugins/kubelet.sock and
//     the links in /var/log/containers (its own are removed at cleanup).
//
// At cleanup it deletes the Pods bound to the Node (grace 0) and waits
// (bounded) for containerd to have no tasks, so their sandboxes are torn
// down by kubelet (CNI DEL); then it stops kubelet, kills what is left in
// its cgroups, removes them, puts back the sysctls and removes Dir. When t
// has failed, the end of kubelet's log goes to t.Log.
func (e *Env) StartKubelet(t testing.TB, o KubeletOptions) *Kubelet {
	t.Helper()
	nettest.RequireRoot(t)
	if o.NodeName == "" || o.Containerd == nil {
		t.Fatal("kubetest: KubeletOptions.NodeName and Containerd are required")
	}
	if o.Containerd.NetNS != "" && o.NodeIP == "" {
		t.Fatal("kubetest: KubeletOptions.NodeIP is required in a network namespace")
	}
	bin := binPath("kubelet")
	if err := needBinary(bin); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "xvr-kubelet-")
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	k := &Kubelet{NodeName: o.NodeName, Dir: dir}
	t.Cleanup(func() {
		// kubelet mounts the pods' volumes (tmpfs) under its root dir.
		if err := errors.Join(unmountUnder(dir), removeLinksInto(containerLogLinks, dir), os.RemoveAll(dir)); err != nil {
			t.Error(err)
		}
	})
	saved := readSysctls()
	t.Cleanup(func() { restoreSysctls(t, saved) })
	if k.cgroups, err = makeCgroupRoot("xvr-" + o.NodeName); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		if err := removeCgroups(k.cgroups); err != nil {
			t.Error(err)
		}
	})

	k.Port = e.kubeletPort(t, o.Containerd.NetNS)
	kubeconfig, err := e.nodeKubeconfig(dir, o.NodeName, o.Containerd.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	if o.Containerd.NetNS != "" {
		(&nettest.NS{Name: o.Containerd.NetNS}).ForwardTCP(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(e.SecurePort)))
	}
	if e.egress != nil {
		hosts := []string{o.NodeName}
		if o.NodeIP != "" {
			hosts = append(hosts, o.NodeIP)
		}
		e.egress.route(o.Containerd.NetNS, hosts...)
		t.Cleanup(func() { e.egress.unroute(hosts...) })
	}
	cfg, err := writeKubeletConfig(dir, k.Port, "/xvr-"+o.NodeName, o)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{bin,
		"--config=" + cfg,
		"--kubeconfig=" + kubeconfig,
		"--root-dir=" + filepath.Join(dir, "root"),
		"--cert-dir=" + filepath.Join(dir, "pki"),
		"--hostname-override=" + o.NodeName,
		"--v=2",
	}, o.Args...)
	if o.NodeIP != "" {
		args = append(args, "--node-ip="+o.NodeIP)
	}
	k.argv = inNetNS(o.Containerd.NetNS, args...)
	if k.proc, err = nettest.Spawn(k.argv...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubelet %s log (end):\n%s", o.NodeName, tail(k.Log(), 80))
		}
		if err := e.drainNode(o.NodeName, o.Containerd, 60*time.Second); err != nil {
			t.Error(err)
		}
		_ = stopProc(k.proc)
	})
	return k
}

// kubeletPort picks a free port on the test's 127.0.0.1 for kubelet. In a
// namespace, the port is held by a forwarder into the namespace's
// 127.0.0.1, where kubelet listens on the same number.
func (e *Env) kubeletPort(t testing.TB, netns string) int {
	t.Helper()
	if netns != "" {
		f := (&nettest.NS{Name: netns}).ForwardTCPInto(t, "127.0.0.1:0", "")
		return f.Addr().(*net.TCPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// nodeKubeconfig writes a kubeconfig for system:node:<name> into dir.
func (e *Env) nodeKubeconfig(dir, name, netns string) (string, error) {
	u, err := e.env.ControlPlane.AddUser(envtest.User{Name: "system:node:" + name, Groups: []string{"system:nodes", "system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("kubetest: adding the node's user: %w", err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("kubetest: making the node's kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		return "", fmt.Errorf("kubetest: %w", err)
	}
	return path, nil
}

// writeKubeletConfig writes kubelet's KubeletConfiguration and returns its
// path.
func writeKubeletConfig(dir string, port int, cgroupRoot string, o KubeletOptions) (string, error) {
	static := filepath.Join(dir, "manifests")
	logs := filepath.Join(dir, "pod-logs")
	for _, d := range []string{static, logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("kubetest: %w", err)
		}
	}
	cfg := map[string]any{
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"kind":                     "KubeletConfiguration",
		"address":                  "127.0.0.1",
		"port":                     port,
		"readOnlyPort":             0,
		"healthzPort":              0,
		"cgroupDriver":             "cgroupfs",
		"cgroupRoot":               cgroupRoot,
		"failSwapOn":               false,
		"containerRuntimeEndpoint": "unix://" + o.Containerd.Socket,
		"staticPodPath":            static,
		"podLogsDir":               logs,
		"makeIPTablesUtilChains":   false,
		"clusterDomain":            ClusterDomain,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": true},
			"webhook":   map[string]any{"enabled": false},
		},
		"authorization": map[string]any{"mode": "AlwaysAllow"},
		// A test machine's disk may be fuller than a node's: no evictions.
		"evictionHard": map[string]string{
			"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%",
		},
		"imageGCHighThresholdPercent": 100, // nothing to pull a collected image back from
		"imageGCLowThresholdPercent":  99,
		"nodeStatusReportFrequency":   "10s",
		"serializeImagePulls":         false,
	}
	if len(o.ClusterDNS) > 0 {
		cfg["clusterDNS"] = o.ClusterDNS
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("kubetest: encoding the kubelet config: %w", err)
	}
	path := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("kubetest: %w", err)
	}
	return path, nil
}

// WaitNodeReady waits up to timeout for the Node name to be Ready.
func (e *Env) WaitNodeReady(name string, timeout time.Duration) error {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	var last string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, err := cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
		} else {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					if c.Status == corev1.ConditionTrue {
						return nil
					}
					last = fmt.Sprintf("Ready=%s: %s: %s", c.Status, c.Reason, c.Message)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("kubetest: node %s not ready after %v: %s", name, timeout, last)
}

// drainNode deletes every Pod bound to node (grace 0) and waits up to
// timeout for containerd to run no task.
func (e *Env) drainNode(node string, c *Containerd, timeout time.Duration) error {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
	if err != nil {
		return fmt.Errorf("kubetest: listing the pods of node %s: %w", node, err)
	}
	zero := int64(0)
	for _, p := range pods.Items {
		_ = cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}
	for ctx.Err() == nil {
		out, err := c.Ctr("tasks", "ls", "-q")
		if err != nil || strings.TrimSpace(out) == "" {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil // what is left is killed by cgroup and by containerd's cleanup
}

// makeCgroupRoot creates /name in every cgroup v1 hierarchy mounted under
// /sys/fs/cgroup (kubelet's cgroupRoot must exist in each), with the
// cpuset hierarchy's cpus and mems copied from its root, and returns the
// directories.
func makeCgroupRoot(name string) ([]string, error) {
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil, fmt.Errorf("reading /sys/fs/cgroup: %w", err)
	}
	var dirs []string
	for _, ent := range ents {
		h := filepath.Join("/sys/fs/cgroup", ent.Name())
		if fi, err := os.Lstat(h); err != nil || !fi.IsDir() {
			continue // cpu,cpuacct style links
		}
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			continue
		}
		d := filepath.Join(h, name)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return dirs, fmt.Errorf("creating cgroup %s: %w", d, err)
		}
		dirs = append(dirs, d)
		if ent.Name() == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err == nil {
					err = os.WriteFile(filepath.Join(d, f), v, 0o644)
				}
				if err != nil {
					return dirs, fmt.Errorf("cgroup %s: %s: %w", d, f, err)
				}
			}
		}
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("no cgroup hierarchy under /sys/fs/cgroup")
	}
	return dirs, nil
}

// removeCgroups kills every process in the cgroups dirs and below and
// removes them, deepest first; bounded.
func removeCgroups(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		var all []string
		_ = filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		var err error
		for try := 0; try < 50; try++ {
			err = nil
			for i := len(all) - 1; i >= 0; i-- {
				killCgroup(all[i])
				if rerr := syscall.Rmdir(all[i]); rerr != nil && !errors.Is(rerr, syscall.ENOENT) {
					err = rerr
				}
			}
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("kubetest: removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// killCgroup SIGKILLs the processes listed in dir/cgroup.procs.
func killCgroup(dir string) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// containerLogLinks is where kubelet links each container's log file,
// whatever its podLogsDir.
const containerLogLinks = "/var/log/containers"

// removeLinksInto removes the symbolic links in dir whose target is under
// into: the ones this kubelet made.
func removeLinksInto(dir, into string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil // no links made
	}
	var errs []error
	for _, ent := range ents {
		p := filepath.Join(dir, ent.Name())
		target, err := os.Readlink(p)
		if err != nil || !strings.HasPrefix(target, into+"/") {
			continue
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, fmt.Errorf("kubetest: %w", err))
		}
	}
	return errors.Join(errs...)
}

// readSysctls reads kubeletSysctls.
func readSysctls() map[string]string {
	m := map[string]string{}
	for _, k := range kubeletSysctls {
		if v, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			m[k] = strings.TrimSpace(string(v))
		}
	}
	return m
}

// restoreSysctls writes back the values readSysctls found, where they
// changed.
func restoreSysctls(t testing.TB, saved map[string]string) {
	for k, v := range saved {
		p := filepath.Join("/proc/sys", k)
		if now, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(now)) == v {
			continue
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Errorf("kubetest: restoring %s: %v", k, err)
		}
	}
}
