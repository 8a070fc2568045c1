package topo

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mine lists the namespaces of this process (pid in base 36 in the name).
func mine(t *testing.T) []string {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	pid := strconv.FormatInt(int64(os.Getpid()), 36)
	var ns []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "xb") && strings.Contains(f[0], pid) {
			ns = append(ns, f[0])
		}
	}
	return ns
}

// TestBuildAndTearDown builds each kernel topology, checks that pod a
// reaches pod b (ping through the datapath) and that Close leaves no
// namespace behind.
func TestBuildAndTearDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, veth, XDP)")
	}
	for _, k := range []Kind{LinuxRouting, LinuxBridge, KernelVXLAN} {
		t.Run(string(k), func(t *testing.T) {
			tp, err := Build(k, Options{ForwarderCPU: -1})
			if err != nil {
				t.Fatal(err)
			}
			if len(mine(t)) < 3 {
				t.Errorf("only namespaces %v", mine(t))
			}
			if out, err := tp.A.NS.Run("ping", "-c", "2", "-i", "0.2", "-W", "1", tp.B.IP.Addr().String()); err != nil {
				t.Errorf("ping a->b: %v\n%s", err, out)
			}
			src, err := tp.NewSource([]int{64, 1500})
			if err != nil {
				t.Fatal(err)
			}
			if err := src.Send(1, 1000); err != nil {
				t.Error(err)
			}
			time.Sleep(100 * time.Millisecond)
			if n, err := tp.Sink.Count(); err != nil || n == 0 {
				t.Errorf("sink counted %d of 1000 frames: %v", n, err)
			}
			if err := src.Close(); err != nil {
				t.Error(err)
			}
			if err := tp.Close(); err != nil {
				t.Fatal(err)
			}
			if left := mine(t); len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

func TestOVSSkip(t *testing.T) {
	if OVSMissing() == "" {
		t.Skip("openvswitch installed; the skip path is not taken")
	}
	_, err := Build(OVSAFXDP, Options{})
	if err == nil || !strings.Contains(err.Error(), "skipped: openvswitch-switch not installed") {
		t.Fatalf("Build(ovs) = %v", err)
	}
}

func TestParseCPU(t *testing.T) {
	got, err := ParseProcStat("4242 (x) (vr d) S 1 4242 4242 0 -1 4194560 9340 0 0 0 8 47 0 0 20 0 8 0 113239 1863778304\n")
	if err != nil || got != 550*time.Millisecond {
		t.Fatalf("ParseProcStat = %v, %v", got, err)
	}
	s, err := ParseSystemCPU("cpu  100 5 50 9000 3 7 11 0 0 0")
	if err != nil || s.Busy != 1730*time.Millisecond || s.SoftIRQ != 110*time.Millisecond {
		t.Fatalf("ParseSystemCPU = %+v, %v", s, err)
	}
	if _, err := Name("Bad!"); err == nil {
		t.Fatal("bad prefix accepted")
	}
	if _, err := Name("waytoolongprefix"); err == nil {
		t.Fatal("long name accepted")
	}
}
