package kubetest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/internal/nettest"
)

// The programs of a real node, from Debian (make deps): containerd 1.6 and
// its runc shim, ctr to load images, and nsenter (util-linux) to start them
// in a node's network namespace without `ip netns exec`, which remounts
// /sys and so hides the cgroup file systems runc and kubelet need.
const (
	ContainerdPath = "/usr/bin/containerd"
	CtrPath        = "/usr/bin/ctr"
	nsenterPath    = "/usr/bin/nsenter"
)

// CRINamespace is the containerd namespace of the CRI plugin: kubelet's
// pods, and where images must be imported for them.
const CRINamespace = "k8s.io"

// ContainerdOptions are StartContainerd's choices.
type ContainerdOptions struct {
	// SandboxImage is the CRI plugin's sandbox_image, the pause image of
	// every pod; it must be imported (Import) before kubelet starts a pod.
	// Required (no registry to pull registry.k8s.io/pause from).
	SandboxImage string
	// NetNS is the named network namespace (nettest.NS) containerd runs
	// in: hostNetwork pods live there and CNI plugins run there, as on a
	// node. Empty: the test process's own namespace.
	NetNS string
	// CNIBinDir and CNIConfDir are the CRI plugin's CNI directories.
	// Default: cni/bin and cni/net.d under Dir, created empty.
	CNIBinDir, CNIConfDir string
}

// Containerd is a running containerd of a test, with its root, state, runc
// root and socket in a directory of its own.
type Containerd struct {
	// Dir holds everything containerd writes.
	Dir string
	// Socket is containerd's gRPC socket (kubelet's
	// containerRuntimeEndpoint is unix://Socket).
	Socket string
	// NetNS is ContainerdOptions.NetNS.
	NetNS                 string
	CNIBinDir, CNIConfDir string

	proc *nettest.Proc
	argv []string // how proc was started (Restart)
}

// Restart stops containerd (SIGTERM, SIGKILL after 10 s) and starts it
// again with the same config, as a node's service manager does on an
// upgrade: the shims, and so the pods' containers, keep running. It
// returns once the new containerd serves.
func (c *Containerd) Restart() error {
	if err := stopProc(c.proc); err != nil {
		return fmt.Errorf("kubetest: stopping containerd: %w", err)
	}
	p, err := nettest.Spawn(c.argv...)
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	c.proc = p
	if err := c.waitServing(30 * time.Second); err != nil {
		return fmt.Errorf("kubetest: containerd restarted: %w\n%s", err, tail(p.Output(), 40))
	}
	return nil
}

// containerdConfig is containerd's config.toml: everything under dir, the
// CRI plugin with cgroupfs and restrict_oom_score_adj (root has no
// CAP_SYS_RESOURCE on the test machines: without it every sandbox fails
// with "can't get final child's PID from pipe"), pod network namespaces
// under the state directory, and exec/attach streams on 127.0.0.1.
func (c *Containerd) config(sandbox string) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[7]q
    conf_dir = %[8]q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[9]q
`, filepath.Join(c.Dir, "root"), filepath.Join(c.Dir, "state"), c.Socket, c.Socket+".ttrpc",
		filepath.Join(c.Dir, "opt"), sandbox, c.CNIBinDir, c.CNIConfDir, filepath.Join(c.Dir, "runc"))
}

// StartContainerd starts a containerd of t's own (see ContainerdOptions)
// and waits until it serves. At t's cleanup every task it runs is killed
// and deleted, containerd and any shim of it left are killed, what it
// mounted under Dir is unmounted and Dir removed; when t has failed, the
// end of its log goes to t.Log.
func StartContainerd(t testing.TB, o ContainerdOptions) *Containerd {
	t.Helper()
	nettest.RequireRoot(t)
	for _, p := range []string{ContainerdPath, CtrPath, nsenterPath, "/usr/sbin/runc", "/usr/bin/containerd-shim-runc-v2"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("kubetest: %v (make deps: apt-get install containerd runc util-linux)", err)
		}
	}
	if o.SandboxImage == "" {
		t.Fatal("kubetest: ContainerdOptions.SandboxImage is required")
	}
	// A short path: containerd's shim and CRI sockets must fit in
	// sun_path (108 bytes).
	dir, err := os.MkdirTemp("", "xvr-ctrd-")
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	c := &Containerd{Dir: dir, Socket: filepath.Join(dir, "containerd.sock"), NetNS: o.NetNS,
		CNIBinDir: o.CNIBinDir, CNIConfDir: o.CNIConfDir}
	if c.CNIBinDir == "" {
		c.CNIBinDir = filepath.Join(dir, "cni", "bin")
	}
	if c.CNIConfDir == "" {
		c.CNIConfDir = filepath.Join(dir, "cni", "net.d")
	}
	t.Cleanup(func() {
		if t.Failed() && c.proc != nil {
			t.Logf("containerd log (end):\n%s", tail(c.proc.Output(), 60))
		}
		if err := c.stop(); err != nil {
			t.Error(err)
		}
	})
	for _, d := range []string{c.CNIBinDir, c.CNIConfDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("kubetest: %v", err)
		}
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(c.config(o.SandboxImage)), 0o644); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	c.argv = inNetNS(o.NetNS, ContainerdPath, "--config", cfg)
	if c.proc, err = nettest.Spawn(c.argv...); err != nil {
		t.Fatal(err)
	}
	if err := c.waitServing(30 * time.Second); err != nil {
		t.Fatalf("kubetest: containerd: %v\n%s", err, tail(c.proc.Output(), 40))
	}
	return c
}

// inNetNS is argv run inside the named network namespace (only that one:
// the mount namespace stays the test's), or argv itself for "".
func inNetNS(netns string, argv ...string) []string {
	if netns == "" {
		return argv
	}
	return append([]string{nsenterPath, "--net=" + filepath.Join("/run/netns", netns), "--"}, argv...)
}

// waitServing polls `ctr version` until containerd answers.
func (c *Containerd) waitServing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := c.Ctr("version")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving after %v: %w", timeout, err)
		}
		if err := exited(c.proc, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// exited waits up to d and returns an error if p exited meanwhile.
func exited(p *nettest.Proc, d time.Duration) error {
	err := p.Wait(d)
	if err != nil && strings.Contains(err.Error(), "still running") {
		return nil
	}
	return fmt.Errorf("exited: %v", err)
}

// Ctr runs ctr against c in CRINamespace (bounded to 2 minutes) and
// returns its combined output.
func (c *Containerd) Ctr(args ...string) (string, error) {
	cmd := exec.Command(CtrPath, append([]string{"--address", c.Socket, "--namespace", CRINamespace}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("ctr %s: %w", strings.Join(args, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
		}
		return out.String(), nil
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("ctr %s: timed out", strings.Join(args, " "))
	}
}

// Import loads a docker-save or OCI archive (scripts/images.sh,
// internal/image) into CRINamespace, where kubelet's pods find it with
// imagePullPolicy: Never.
func (c *Containerd) Import(t testing.TB, archive string) {
	t.Helper()
	if out, err := c.Ctr("images", "import", archive); err != nil {
		t.Fatalf("kubetest: importing %s: %v\n%s", archive, err, out)
	}
}

// Images lists the image names in CRINamespace.
func (c *Containerd) Images() ([]string, error) {
	out, err := c.Ctr("images", "ls", "-q")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// Log returns what containerd wrote so far.
func (c *Containerd) Log() string { return c.proc.Output() }

// stop kills and deletes every task, then containerd and its leftover
// shims, unmounts what is mounted under Dir and removes it.
func (c *Containerd) stop() error {
	var errs []error
	if c.proc != nil {
		if err := c.removeTasks(); err != nil {
			errs = append(errs, err)
		}
		if err := c.proc.Kill(); err != nil {
			errs = append(errs, fmt.Errorf("kubetest: stopping containerd: %w", err))
		}
		_ = c.proc.Wait(10 * time.Second)
		if err := killShims(c.Socket); err != nil {
			errs = append(errs, err)
		}
	}
	if err := unmountUnder(c.Dir); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("kubetest: %w", err))
	}
	return errors.Join(errs...)
}

// removeTasks SIGKILLs every task of CRINamespace and deletes it and its
// container, so that each shim exits cleanly; bounded.
func (c *Containerd) removeTasks() error {
	if _, err := c.Ctr("version"); err != nil {
		return nil // containerd is gone: killShims does the rest
	}
	out, err := c.Ctr("tasks", "ls", "-q")
	if err != nil {
		return fmt.Errorf("kubetest: listing containerd's tasks: %w", err)
	}
	var errs []error
	for _, id := range strings.Fields(out) {
		_, _ = c.Ctr("tasks", "kill", "--signal", "SIGKILL", id) // it may have exited already
		if _, err := c.Ctr("tasks", "delete", "--force", id); err != nil {
			errs = append(errs, fmt.Errorf("kubetest: %w", err))
		}
	}
	if out, err = c.Ctr("containers", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			_, _ = c.Ctr("containers", "delete", id)
		}
	}
	return errors.Join(errs...)
}

// killShims SIGKILLs the containerd-shim processes serving socket (their
// -address argument), which containerd starts in process groups of their
// own; only those, found by that exact argument.
func killShims(socket string) error {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	var errs []error
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") || !hasArg(argv, "-address", socket) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kubetest: killing shim %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// hasArg reports whether argv has flag followed by value (or flag=value).
func hasArg(argv []string, flag, value string) bool {
	for i, a := range argv {
		if a == flag+"="+value || (a == flag && i+1 < len(argv) && argv[i+1] == value) {
			return true
		}
	}
	return false
}

// unmountUnder detaches every mount at or below dir (overlay root file
// systems, pod network namespaces, shm), deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points))) // children after their parents' names sort later
	var errs []error
	for _, mp := range points {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("kubetest: unmounting %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
