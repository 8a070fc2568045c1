package topo

import (
	"net/netip"
	"os"
	"os/exec"
	"runtime"
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

func TestOVSRouterFlows(t *testing.T) {
	routes := []ovsRoute{{netip.MustParseAddr("198.18.52.1"), macA, 1}, {netip.MustParseAddr("198.18.52.2"), macB, 2}}
	got := ovsRouterFlows(ovsRouterMAC, netip.MustParsePrefix("198.18.52.7/24"), routes)
	want := "table=0,priority=100,arp,arp_op=1,arp_tpa=198.18.52.0/24,actions=" +
		"move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:02:00:00:00:36:01,load:0x2->NXM_OF_ARP_OP[]," +
		"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],load:0x020000003601->NXM_NX_ARP_SHA[]," +
		"move:NXM_OF_ARP_TPA[]->NXM_NX_REG0[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]," +
		"move:NXM_NX_REG0[]->NXM_OF_ARP_SPA[],IN_PORT\n" +
		"table=0,priority=100,ip,dl_dst=02:00:00:00:36:01,nw_dst=198.18.52.1,actions=mod_dl_src:02:00:00:00:36:01,mod_dl_dst:02:00:00:00:32:01,dec_ttl,output:1\n" +
		"table=0,priority=100,ip,dl_dst=02:00:00:00:36:01,nw_dst=198.18.52.2,actions=mod_dl_src:02:00:00:00:36:01,mod_dl_dst:02:00:00:00:32:02,dec_ttl,output:2\n" +
		"table=0,priority=0,actions=drop\n"
	if got != want {
		t.Fatalf("flows:\n%s\nwant:\n%s", got, want)
	}
	if cpuMask(1) != "0x2" || cpuMask(5) != "0x20" {
		t.Fatalf("cpuMask(1) = %s, cpuMask(5) = %s", cpuMask(1), cpuMask(5))
	}
	for col, want := range map[string]bool{
		"[afxdp, afxdp-nonpmd, bareudp, erspan, geneve, internal, system]\n": true,
		`["afxdp"]`:                        true,
		"[afxdp-nonpmd, internal, system]": false,
		"[]":                               false,
	} {
		if hasIfaceType(col, OVSPortAFXDP) != want {
			t.Errorf("hasIfaceType(%q, afxdp) = %v", col, !want)
		}
	}
}

// TestOVSBuildAndTearDown builds the OVS topology with AF_XDP ports (PMD
// pinned to CPU 1 where there are two CPUs) and with AF_PACKET ports,
// checks that pod a reaches pod b through OVS's router flows (TTL
// decremented, generated frames counted by the sink), and that Close
// leaves no namespace, no OVS process and no OVS directory behind.
func TestOVSBuildAndTearDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, veth, XDP)")
	}
	if why := OVSMissing(); why != "" {
		t.Skip(why)
	}
	for _, pt := range []string{"", OVSPortSystem} {
		name := pt
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			o := Options{ForwarderCPU: -1, OVSPortType: pt}
			if pt == "" && runtime.NumCPU() >= 2 {
				o.ForwarderCPU = 1
			}
			tp, err := Build(OVSAFXDP, o)
			if err != nil {
				t.Fatal(err)
			}
			v := tp.OVS
			closed := false
			defer func() {
				if !closed {
					_ = tp.Close()
				}
			}()
			checkOVS(t, tp, pt, o.ForwarderCPU)
			if err := tp.Close(); err != nil {
				t.Fatal(err)
			}
			closed = true
			checkOVSGone(t, v)
		})
	}
}

func checkOVS(t *testing.T, tp *Topology, pt string, cpu int) {
	v := tp.OVS
	wantType := pt
	if pt == "" {
		// Debian's 3.1 is built with libxdp; a build without AF_XDP falls
		// back to AF_PACKET ports under another name.
		out, err := v.Vsctl("get", "Open_vSwitch", ".", "iface_types")
		if err != nil {
			t.Fatal(err)
		}
		if wantType = OVSPortSystem; hasIfaceType(out, OVSPortAFXDP) {
			wantType = OVSPortAFXDP
		}
	}
	if v.PortType != wantType || (wantType == OVSPortAFXDP) != (tp.Label == "") {
		t.Errorf("port type %q label %q, want %q", v.PortType, tp.Label, wantType)
	}
	if len(mine(t)) != 3 || len(v.Pids()) != 2 {
		t.Errorf("namespaces %v, OVS pids %v", mine(t), v.Pids())
	}
	if cpu >= 0 {
		out, err := v.Appctl("dpif-netdev/pmd-rxq-show")
		if err != nil || !strings.Contains(out, "core_id "+strconv.Itoa(cpu)+":") ||
			!strings.Contains(out, tp.A.HostIf) || !strings.Contains(out, tp.B.HostIf) {
			t.Errorf("pmd-rxq-show: want both ports on core %d: %v\n%s", cpu, err, out)
		}
	}
	out, err := tp.A.NS.Run("ping", "-c", "2", "-i", "0.2", "-W", "2", tp.B.IP.Addr().String())
	if err != nil || !strings.Contains(out, "ttl=63") {
		t.Errorf("ping a->b through the router flows (want ttl=63): %v\n%s\n%s", err, out, v.vswitchd.LogTail())
	}
	src, err := tp.NewSource([]int{64, 1500})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := src.Send(0, 1000); err != nil {
		t.Error(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n, err := tp.Sink.Count(); err != nil || n == 0 {
		flows, _ := v.Ofctl("dump-flows")
		t.Errorf("sink counted %d of 1000 frames: %v\n%s", n, err, flows)
	}
}

// checkOVSGone: OVS's processes have exited and its directory is gone,
// and the namespaces of this test process too.
func checkOVSGone(t *testing.T, v *OVS) {
	for _, pid := range v.Pids() {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && strings.Contains(string(b), v.Dir) {
			t.Errorf("OVS process %d still runs: %q", pid, b)
		}
	}
	if _, err := os.Stat(v.Dir); !os.IsNotExist(err) {
		t.Errorf("OVS dir %s left behind: %v", v.Dir, err)
	}
	if left := mine(t); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
