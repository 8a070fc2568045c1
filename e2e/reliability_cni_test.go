package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/xvr-project/xvr/cni"
	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// killedAdds is how many ADDs are killed.
const killedAdds = 50

// TestReliabilityCNIKilledAdd kills the real plugin (SIGKILL) in the middle
// of ADD 50 times, each time after a random delay within one ADD's measured
// duration, with the environment and stdin a runtime gives it. The killed
// sandboxes keep their namespaces (so a host veth the plugin left is still
// there to find). Then the runtime retries one killed sandbox (it must work
// and reach a pod) and deletes it, and runs GC with the valid attachments
// (two pods that were there all along): no host veth, no port and no
// address may be left of the killed sandboxes, the valid pods must be
// untouched, and the next ADD must get the lowest free addresses.
func TestReliabilityCNIKilledAdd(t *testing.T) {
	cn := newCNINode(t)
	cn.apply(t, twoVNs)
	keep := []*cniPod{cn.addPod(t, "default", "keep-0", "vn-left-1,vn-right-1"),
		cn.addPod(t, "default", "keep-1", "vn-left-1,vn-right-1")}
	keptPorts := cn.ports(t, "")
	want := []string{lowestFree(t, cn, defaultCIDR), lowestFree(t, cn, "198.18.10.0/24"), lowestFree(t, cn, "198.18.20.0/24")}
	cn.setPod(t, "default", "victim", "vn-left-1,vn-right-1")
	stdin := pluginStdin(t, cn.list)
	plugin := filepath.Join(cniPath(t), "xvr")
	nss := newPodNamespaces(t)

	full := calibrateAdd(t, cn, plugin, stdin, nss)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	outcomes := map[string]int{}
	var last *libcni.RuntimeConf
	start := time.Now()
	for i := range killedAdds {
		name, err := nss.add(t)
		if err != nil {
			t.Fatal(err)
		}
		rt := runtimeConf(name, "default", "victim")
		delay := time.Duration(rng.Int64N(int64(full)))
		outcome, err := execPlugin(plugin, "ADD", rt, stdin, delay)
		if err != nil {
			t.Fatalf("ADD #%d: %v", i, err)
		}
		outcomes[outcome]++
		last = rt
	}
	t.Logf("%d ADDs (full ADD %v, kill after 0..%v): %v in %v", killedAdds, full.Round(time.Millisecond),
		full.Round(time.Millisecond), outcomes, time.Since(start).Round(time.Millisecond))
	if outcomes["killed"] < killedAdds/2 {
		t.Fatalf("only %d of %d ADDs were killed mid-way (%v): the kill delays miss the ADD", outcomes["killed"], killedAdds, outcomes)
	}
	t.Logf("left by the killed ADDs before GC: %d host veths, %d ports", len(cn.hostVeths(t)), len(cn.ports(t, "")))

	retryAndDelete(t, cn, last, keep[1])
	gc(t, cn, keep)
	assertOnly(t, cn, keep, keptPorts)

	next := cn.addPod(t, "default", "after-kills", "vn-left-1,vn-right-1")
	if got := []string{next.addr(t, "eth0"), next.addr(t, "eth1"), next.addr(t, "eth2")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("the next ADD got %v, want the lowest free addresses %v: addresses leaked", got, want)
	}
	mustPingNS(t, next, keep[1].addr(t, "eth1"))
	mustPingNS(t, keep[0], keep[1].addr(t, "eth2"))
}

// pluginStdin is the network config the runtime writes to the plugin's
// stdin for the list's first plugin (name and cniVersion injected, as
// libcni does).
func pluginStdin(t *testing.T, list *libcni.NetworkConfigList) []byte {
	t.Helper()
	pc, err := libcni.InjectConf(list.Plugins[0], map[string]interface{}{"name": list.Name, "cniVersion": list.CNIVersion})
	if err != nil {
		t.Fatal(err)
	}
	return pc.Bytes
}

// calibrateAdd times two whole ADDs through exec (then DELs them) and
// returns the faster.
func calibrateAdd(t *testing.T, cn *cniNode, plugin string, stdin []byte, nss *podNamespaces) time.Duration {
	t.Helper()
	best := time.Duration(1 << 62)
	for range 2 {
		name, err := nss.add(t)
		if err != nil {
			t.Fatal(err)
		}
		rt := runtimeConf(name, "default", "victim")
		start := time.Now()
		if out, err := execPlugin(plugin, "ADD", rt, stdin, time.Hour); err != nil || out != "completed" {
			t.Fatalf("calibration ADD: %s %v", out, err)
		}
		best = min(best, time.Since(start))
		if out, err := execPlugin(plugin, "DEL", rt, stdin, time.Hour); err != nil || out != "completed" {
			t.Fatalf("calibration DEL: %s %v", out, err)
		}
		if err := nss.del(name); err != nil {
			t.Fatal(err)
		}
	}
	return best
}

// execPlugin runs the plugin binary for cmd the way a runtime does (CNI_*
// environment, config on stdin) and SIGKILLs it after killAfter unless it
// has exited. It returns "killed", "completed" or "failed: <CNI error>";
// err is for a plugin that could not be run at all.
func execPlugin(plugin, cmd string, rt *libcni.RuntimeConf, stdin []byte, killAfter time.Duration) (string, error) {
	var args []string
	for _, kv := range rt.Args {
		args = append(args, kv[0]+"="+kv[1])
	}
	c := exec.Command(plugin)
	c.Env = append(os.Environ(), "CNI_COMMAND="+cmd, "CNI_CONTAINERID="+rt.ContainerID, "CNI_NETNS="+rt.NetNS,
		"CNI_IFNAME="+rt.IfName, "CNI_ARGS="+strings.Join(args, ";"), "CNI_PATH="+filepath.Dir(plugin))
	c.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", plugin, err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return "failed: " + strings.TrimSpace(out.String()), nil
		}
		return "completed", nil
	case <-time.After(killAfter):
	}
	kerr := c.Process.Kill() // our child, not reaped yet: its pid cannot have been reused
	err := <-done
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ProcessState.String() == "signal: killed" {
		return "killed", nil
	}
	if err == nil {
		return "completed", nil
	}
	if kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
		return "", fmt.Errorf("killing the plugin: %w", kerr)
	}
	return "failed: " + strings.TrimSpace(out.String()), nil
}

// retryAndDelete is the runtime's retry of a killed sandbox (same container
// ID, same netns): the ADD succeeds over whatever the killed one left and
// the pod reaches peer; then the runtime deletes it.
func retryAndDelete(t *testing.T, cn *cniNode, rt *libcni.RuntimeConf, peer *cniPod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := libcni.NewCNIConfigWithCacheDir(cn.cfg.Path, t.TempDir(), nil)
	if _, err := cfg.AddNetworkList(ctx, cn.list, rt); err != nil {
		t.Fatalf("retried ADD of a killed sandbox: %v\nxvrd log:\n%s", err, tail(cn.proc.Output(), 3000))
	}
	p := &cniPod{ns: nsOf(rt), namespace: "default", name: "victim", rt: rt}
	if n := len(cn.ports(t, rt.ContainerID)); n != 3 {
		t.Fatalf("retried sandbox has %d ports, want 3", n)
	}
	mustPingNS(t, p, peer.addr(t, "eth1"))
	if err := cfg.DelNetworkList(ctx, cn.list, rt); err != nil {
		t.Fatalf("DEL of the retried sandbox: %v", err)
	}
}

// gc runs the runtime's GC with the valid pods' attachments.
func gc(t *testing.T, cn *cniNode, valid []*cniPod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var atts []types.GCAttachment
	for _, p := range valid {
		atts = append(atts, types.GCAttachment{ContainerID: p.rt.ContainerID, IfName: p.rt.IfName})
	}
	if err := cn.cfg.GCNetworkList(ctx, cn.list, &libcni.GCArgs{ValidAttachments: atts}); err != nil {
		t.Fatalf("GC: %v\nxvrd log:\n%s", err, tail(cn.proc.Output(), 3000))
	}
}

// assertOnly fails t unless the node's host veths and xvrd's ports are
// exactly those of the valid pods, the ports unchanged from kept.
func assertOnly(t *testing.T, cn *cniNode, valid []*cniPod, kept []api.Port) {
	t.Helper()
	var wantVeths []string
	for _, p := range valid {
		for _, ifn := range []string{"eth0", "eth1", "eth2"} {
			wantVeths = append(wantVeths, cni.HostIfName(p.rt.ContainerID, ifn))
		}
	}
	veths := cn.hostVeths(t)
	sort.Strings(veths)
	sort.Strings(wantVeths)
	if !slices.Equal(veths, wantVeths) {
		var b strings.Builder
		for _, v := range veths {
			if !slices.Contains(wantVeths, v) {
				out, _ := cn.ns.Try("ip", "-d", "link", "show", "dev", v)
				b.WriteString(out)
			}
		}
		t.Fatalf("host veths after GC: %v, want only the valid pods' %v; the others:\n%s", veths, wantVeths, b.String())
	}
	ports := cn.ports(t, "")
	sort.Slice(ports, func(i, j int) bool { return ports[i].ID < ports[j].ID })
	sort.Slice(kept, func(i, j int) bool { return kept[i].ID < kept[j].ID })
	if !reflect.DeepEqual(ports, kept) {
		t.Fatalf("ports after GC:\n%+v\nwant the valid pods' unchanged:\n%+v", ports, kept)
	}
}

// nsOf is the namespace of rt, made and deleted by a podNamespaces.
func nsOf(rt *libcni.RuntimeConf) *nettest.NS {
	return &nettest.NS{Name: filepath.Base(rt.NetNS)}
}
