package topo

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/vrouter/api"
)

// buildBins builds xvrd and xvrctl from this tree into a temporary
// directory, so the test runs what the tree holds, not a stale bin/.
func buildBins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", "../../cmd/xvrd", "../../cmd/xvrctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build xvrd xvrctl: %v\n%s", err, out)
	}
	return dir
}

// TestOverlayBuildAndTearDown builds each across-node xvr topology, pings
// pod b from pod a through it, checks that the sink counts generated
// frames and that Close leaves no namespace behind.
func TestOverlayBuildAndTearDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, veth, XDP)")
	}
	bins := buildBins(t)
	for _, k := range []Kind{XVRMPLSoUDP, XVRVXLAN, XVRFabric} {
		t.Run(string(k), func(t *testing.T) {
			tp, err := Build(k, Options{BinDir: bins, ForwarderCPU: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := tp.Close(); err != nil {
					t.Error(err)
				}
				if left := mine(t); len(left) != 0 {
					t.Errorf("left behind: %v", left)
				}
			}()
			if len(mine(t)) != 4 || len(tp.Forwarders) != 2 {
				t.Errorf("namespaces %v, %d forwarders; want 2 nodes + 2 pods, 2 xvrds", mine(t), len(tp.Forwarders))
			}
			checkOverlayPath(t, tp)
			checkNextHop(t, tp)
			checkShortcut(t, tp)
		})
	}
}

// checkOverlayPath pings a -> b and sends 1000 frames of 64 and 1500 bytes.
func checkOverlayPath(t *testing.T, tp *Topology) {
	t.Helper()
	if out, err := tp.A.NS.Run("ping", "-c", "3", "-i", "0.2", "-W", "2", tp.B.IP.Addr().String()); err != nil {
		t.Errorf("ping a->b: %v\n%s\nnode 1 xvrd:\n%s\nnode 2 xvrd:\n%s", err, out,
			tp.Forwarders[0].LogTail(), tp.Forwarders[1].LogTail())
	}
	src, err := tp.NewSource([]int{64, 1500})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := range src.Sizes {
		before, err := tp.Sink.Count()
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Send(i, 1000); err != nil {
			t.Fatal(err)
		}
		n := waitCount(tp, before)
		if n-before < 500 || n-before > 1000 {
			t.Errorf("%d-byte frames: sink counted %d of 1000", src.Sizes[i], n-before)
		}
	}
	if cpu, err := tp.ForwarderCPU(); err != nil || cpu <= 0 {
		t.Errorf("ForwarderCPU = %v, %v; want > 0", cpu, err)
	}
}

// checkNextHop checks that node 1 reaches node 2 the way the kind says:
// its next-hop table shows an MPLSoUDP or VXLAN tunnel, or a native one.
func checkNextHop(t *testing.T, tp *Topology) {
	t.Helper()
	want := map[Kind]string{XVRMPLSoUDP: "MPLSoUDP ", XVRVXLAN: "VXLAN ", XVRFabric: "native "}[tp.Kind] + ovNodeIPs[1]
	out, err := tp.Forwarders[0].Ctl("nh")
	if err != nil || !strings.Contains(out, want) {
		t.Errorf("node 1 next hops (err %v) lack %q:\n%s", err, want, out)
	}
}

// checkShortcut checks that the XDP shortcut carried the frames: out of
// pod a's vif on node 1, into pod b from node 2's fabric.
func checkShortcut(t *testing.T, tp *Topology) {
	t.Helper()
	for i, typ := range []string{"virtual", "fabric"} {
		out, err := tp.Forwarders[i].Ctl("-o", "json", "vif")
		if err != nil {
			t.Fatalf("node %d vifs: %v", i+1, err)
		}
		var vifs []api.Vif
		if err := json.Unmarshal([]byte(out), &vifs); err != nil {
			t.Fatalf("node %d vifs: %v\n%s", i+1, err, out)
		}
		var n uint64
		for _, v := range vifs {
			if v.Type == typ {
				n += v.ShortcutPackets
			}
		}
		if n < 1000 {
			t.Errorf("node %d: the shortcut took %d frames on %s vifs, want the 2000 sent (at least 1000)\n%s", i+1, n, typ, out)
		}
	}
}

// waitCount polls the sink until it stops growing (at most 2 s).
func waitCount(tp *Topology, last uint64) uint64 {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		n, err := tp.Sink.Count()
		if err != nil || (n == last && n > 0) {
			return n
		}
		last = n
	}
	return last
}
