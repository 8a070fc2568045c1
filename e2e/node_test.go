package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

const vrouterMAC = "02:78:76:72:00:01"

// node is one xvrd in its own network namespace.
type node struct {
	t      *testing.T
	ns     *nettest.NS
	dir    string
	socket string
	proc   *nettest.Proc
}

func newNode(t *testing.T) *node {
	nettest.RequireRoot(t)
	dir := t.TempDir()
	n := &node{t: t, ns: nettest.NewNS(t, "xvn"), dir: dir, socket: filepath.Join(dir, "xvrd.sock")}
	n.start()
	return n
}

// start runs xvrd in the node namespace and waits for its API.
func (n *node) start() {
	n.t.Helper()
	n.proc = n.ns.Start(n.t, bin("xvrd"), "-socket", n.socket, "-db", filepath.Join(n.dir, "xvrd.db"),
		"-mac", vrouterMAC, "-reconcile", "500ms", "-host-if", "") // hand-made pods: no host interface
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := n.ctl("status"); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("xvrd did not serve within 15s:\n%s", n.proc.Output())
}

// ctl runs xvrctl against this node's socket.
func (n *node) ctl(args ...string) (string, error) {
	out, err := exec.Command(bin("xvrctl"), append([]string{"--socket", n.socket}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("xvrctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (n *node) mustCtl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.ctl(args...)
	if err != nil {
		t.Fatalf("%v\nxvrd log:\n%s", err, tail(n.proc.Output(), 3000))
	}
	return out
}

// ctlJSON runs a read command with -o json and decodes its output into v.
func (n *node) ctlJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out := n.mustCtl(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decoding xvrctl %v: %v\n%s", args, err, out)
	}
}

func (n *node) dropCount(t *testing.T, reason string) uint64 {
	t.Helper()
	var ds []api.DropStat
	n.ctlJSON(t, &ds, "dropstats", "--all")
	for _, d := range ds {
		if d.Reason == reason {
			return d.Count
		}
	}
	t.Fatalf("dropstats has no reason %q: %+v", reason, ds)
	return 0
}

// applyNADs writes yaml to a file and applies it with xvrctl apply -f.
func (n *node) applyNADs(yaml string) {
	n.t.Helper()
	f := filepath.Join(n.dir, fmt.Sprintf("nad-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		n.t.Fatal(err)
	}
	n.mustCtl(n.t, "apply", "-f", f)
}

// addPod creates a pod namespace and attaches it as a port of network.
func (n *node) addPod(network, ip, gw, mac string) *nettest.Pod {
	n.t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		n.t.Fatal(err)
	}
	pfx := netip.MustParsePrefix(ip)
	pod := nettest.AddPod(n.t, n.ns, "xvp", pfx, netip.MustParseAddr(gw), hw)
	n.mustCtl(n.t, "port", "add", "--id", pod.NS.Name+"/eth0", "--network", network, "--host-if", pod.HostIf,
		"--ip", pfx.Addr().String(), "--mac", mac)
	return pod
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
