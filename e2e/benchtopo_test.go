package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/bench/gen"
	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// The forwarding benchmarks' two pods: one VN, one /24.
const (
	fwdNetwork = "default/vn-bench"
	fwdGW      = "198.18.30.254"
	fwdNAD     = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-bench
  namespace: default
  annotations:
    opencontrail.org/cidr: "198.18.30.0/24"
spec:
  config: '{ "cniVersion": "1.0.0", "type": "xvr" }'
`
)

var (
	fwdIPA  = netip.MustParsePrefix("198.18.30.1/24")
	fwdIPB  = netip.MustParsePrefix("198.18.30.2/24")
	fwdMACA = net.HardwareAddr{0x02, 0, 0, 0, 0x1e, 0x01}
	fwdMACB = net.HardwareAddr{0x02, 0, 0, 0, 0x1e, 0x02}
)

// fwdTopo is the whole-path benchmark topology: pods a and b attached to a
// node namespace, a counting sink on b's eth0, and dstMAC, the destination
// MAC that a's frames need to be routed (the vRouter's MAC for xvr, the
// node's veth MAC for Linux routing).
type fwdTopo struct {
	node   *nettest.NS
	a, b   *nettest.Pod
	dstMAC net.HardwareAddr
	sink   *gen.Sink
	xvrd   *xvrdProc // nil for Linux routing
}

// newXVRTopo: xvrd in the node namespace forwards between a and b, attached
// as ports of one VN with xvrctl.
func newXVRTopo(tb testing.TB) *fwdTopo {
	tb.Helper()
	nettest.RequireRoot(tb)
	node := nettest.NewNS(tb, "xfn")
	x := startXVRD(tb, node)
	x.mustCtl(tb, "apply", "-f", x.writeFile(tb, "nad.yaml", fwdNAD))
	tp := &fwdTopo{node: node, xvrd: x, dstMAC: mustMAC(tb, vrouterMAC)}
	tp.a = tp.addXVRPod(tb, fwdIPA, fwdMACA)
	tp.b = tp.addXVRPod(tb, fwdIPB, fwdMACB)
	tp.attachSink(tb)
	return tp
}

func (tp *fwdTopo) addXVRPod(tb testing.TB, ip netip.Prefix, mac net.HardwareAddr) *nettest.Pod {
	tb.Helper()
	pod := nettest.AddPod(tb, tp.node, "xfp", ip, netip.MustParseAddr(fwdGW), mac)
	tp.xvrd.mustCtl(tb, "port", "add", "--id", pod.NS.Name+"/eth0", "--network", fwdNetwork,
		"--host-if", pod.HostIf, "--ip", ip.Addr().String(), "--mac", mac.String())
	return pod
}

// newLinuxTopo: the same namespaces and veths, routed by the node's kernel.
// The host-side veths carry the gateway address and a /32 route to their
// pod; b's neighbour entry is static because b's sink drops ARP. a's host
// veth gets an XDP program per generator (see restoreHeaders).
func newLinuxTopo(tb testing.TB) *fwdTopo {
	tb.Helper()
	nettest.RequireRoot(tb)
	node := nettest.NewNS(tb, "xfn")
	node.Run(tb, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0")
	tp := &fwdTopo{node: node}
	gw := netip.MustParseAddr(fwdGW)
	tp.a = nettest.AddPod(tb, node, "xfp", fwdIPA, gw, fwdMACA)
	tp.b = nettest.AddPod(tb, node, "xfp", fwdIPB, gw, fwdMACB)
	for _, p := range []*nettest.Pod{tp.a, tp.b} {
		node.Run(tb, "sysctl", "-qw", "net.ipv4.conf."+p.HostIf+".rp_filter=0")
		node.Run(tb, "ip", "addr", "add", fwdGW+"/32", "dev", p.HostIf)
		node.Run(tb, "ip", "route", "add", p.IP.Addr().String()+"/32", "dev", p.HostIf)
	}
	node.Run(tb, "ip", "neigh", "replace", fwdIPB.Addr().String(), "lladdr", fwdMACB.String(),
		"dev", tp.b.HostIf, "nud", "permanent")
	tp.dstMAC = mustMAC(tb, node.MAC(tb, tp.a.HostIf))
	tp.attachSink(tb)
	return tp
}

// attachSink attaches the counting sink to b's eth0.
func (tp *fwdTopo) attachSink(tb testing.TB) {
	tb.Helper()
	err := gen.InNetNS(tp.b.NS.Name, func() error {
		ifi, err := net.InterfaceByName(tp.b.IfName)
		if err != nil {
			return fmt.Errorf("find %s: %w", tp.b.IfName, err)
		}
		tp.sink, err = gen.AttachSink(ifi.Index)
		return err
	})
	if err != nil {
		tb.Fatalf("attaching sink in %s: %v", tp.b.NS.Name, err)
	}
	tb.Cleanup(func() {
		if err := tp.sink.Close(); err != nil {
			tb.Error(err)
		}
	})
}

// generator returns a generator on a's eth0 sending size-byte UDP frames
// from a to b, addressed to dstMAC; it is closed in tb's cleanup.
func (tp *fwdTopo) generator(tb testing.TB, size int) *gen.Generator {
	tb.Helper()
	frame, err := gen.FrameUDP(size, tp.a.MAC, tp.dstMAC,
		netip.AddrPortFrom(tp.a.IP.Addr(), 49152), netip.AddrPortFrom(tp.b.IP.Addr(), 9))
	if err != nil {
		tb.Fatal(err)
	}
	var g *gen.Generator
	err = gen.InNetNS(tp.a.NS.Name, func() error {
		ifi, err := net.InterfaceByName(tp.a.IfName)
		if err != nil {
			return fmt.Errorf("find %s: %w", tp.a.IfName, err)
		}
		g, err = gen.NewGenerator(ifi.Index, frame)
		return err
	})
	if err != nil {
		tb.Fatalf("generator in %s: %v", tp.a.NS.Name, err)
	}
	tb.Cleanup(func() {
		if err := g.Close(); err != nil {
			tb.Error(err)
		}
	})
	if tp.xvrd == nil {
		tp.restoreHeaders(tb, frame)
	}
	return g
}

// restoreHeaders attaches to a's host veth, until tb's cleanup, an XDP
// program that rewrites the Ethernet and IPv4 headers of every frame to
// those of frame and passes it to the stack.
//
// Why: the generator's live frames sit in pages that the kernel recycles
// without re-initialising them, and Linux forwarding rewrites the MACs, TTL
// and checksum in place in the skb built on such a page. Without the
// restore, the next use of a page carries the forwarded header (pod b's MAC
// as destination) and is dropped as PACKET_OTHERHOST: about 1k of 1M frames
// got through. xvr's path copies each frame into its UMEM, so its pages stay
// intact. The program also gives the veth the XDP (NAPI) receive path that
// live frames need (see bench/gen).
func (tp *fwdTopo) restoreHeaders(tb testing.TB, frame []byte) {
	tb.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xvr_restore", Type: ebpf.XDP,
		License: "Dual MIT/GPL", Instructions: restoreInsns(frame[:restoreLen])})
	if err != nil {
		tb.Fatalf("loading restore program: %v", err)
	}
	tb.Cleanup(func() { _ = prog.Close() })
	var l link.Link
	err = gen.InNetNS(tp.node.Name, func() error {
		ifi, err := net.InterfaceByName(tp.a.HostIf)
		if err != nil {
			return fmt.Errorf("find %s: %w", tp.a.HostIf, err)
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		tb.Fatalf("attaching restore program to %s: %v", tp.a.HostIf, err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Error(err)
		}
	})
}

// restoreLen covers what forwarding rewrites: Ethernet and IPv4 headers.
const restoreLen = 14 + 20

// restoreInsns: if the frame holds len(hdr) bytes, overwrite them with hdr
// (len(hdr) even); return XDP_PASS.
func restoreInsns(hdr []byte) asm.Instructions {
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // xdp_md.data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // xdp_md.data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, int32(len(hdr))),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
	}
	off := 0
	for ; off+4 <= len(hdr); off += 4 {
		v := int32(binary.LittleEndian.Uint32(hdr[off:])) // stored in host (little-endian) order
		insns = append(insns, asm.StoreImm(asm.R2, int16(off), int64(v), asm.Word))
	}
	for ; off+2 <= len(hdr); off += 2 {
		v := int16(binary.LittleEndian.Uint16(hdr[off:]))
		insns = append(insns, asm.StoreImm(asm.R2, int16(off), int64(v), asm.Half))
	}
	return append(insns, asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"), asm.Return())
}

const xdpPass = 2

func mustMAC(tb testing.TB, s string) net.HardwareAddr {
	tb.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		tb.Fatal(err)
	}
	return hw
}

// xvrdProc is an xvrd that the benchmark starts itself rather than through
// newNode, for two reasons: newNode takes a *testing.T, and CPU accounting
// needs the daemon's pid. `ip netns exec` execs the command in place, so
// the pid of the started `ip` is xvrd's.
type xvrdProc struct {
	cmd    *exec.Cmd
	dir    string
	socket string
	log    string
}

// startXVRD runs xvrd in ns and waits for its API. In cleanup it is sent
// SIGTERM, then SIGKILL (its process group) if it has not exited in 5 s.
func startXVRD(tb testing.TB, ns *nettest.NS) *xvrdProc {
	tb.Helper()
	dir := tb.TempDir()
	x := &xvrdProc{dir: dir, socket: filepath.Join(dir, "xvrd.sock"), log: filepath.Join(dir, "xvrd.log")}
	logf, err := os.Create(x.log)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	x.cmd = exec.Command("ip", "netns", "exec", ns.Name, bin("xvrd"), "-socket", x.socket,
		"-db", filepath.Join(dir, "xvrd.db"), "-mac", vrouterMAC, "-reconcile", "500ms")
	x.cmd.Stdout, x.cmd.Stderr = logf, logf
	x.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := x.cmd.Start(); err != nil {
		tb.Fatalf("starting xvrd: %v", err)
	}
	tb.Cleanup(func() {
		if err := x.stop(); err != nil {
			tb.Error(err)
		}
	})
	x.waitReady(tb)
	return x
}

func (x *xvrdProc) waitReady(tb testing.TB) {
	tb.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if _, err := x.ctl("status"); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("xvrd did not serve within 15s:\n%s", x.logTail())
}

// stop ends xvrd. It never signals a reaped pid: exited() does not reap, so
// the pid stays xvrd's until cmd.Wait.
func (x *xvrdProc) stop() error {
	pid := x.cmd.Process.Pid
	var errs []error
	if err := unix.Kill(-pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		errs = append(errs, fmt.Errorf("sigterm xvrd: %w", err))
	}
	for deadline := time.Now().Add(5 * time.Second); !x.exited() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !x.exited() {
		errs = append(errs, fmt.Errorf("xvrd ignored sigterm for 5s"))
		if err := unix.Kill(-pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("sigkill xvrd: %w", err))
		}
	}
	_ = x.cmd.Wait() // its exit status after a signal says nothing
	return errors.Join(errs...)
}

// exited reports whether xvrd has exited, without reaping it.
func (x *xvrdProc) exited() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, x.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
	// Linux sets si_signo (SIGCHLD) only when it reports a child; an error
	// means there is nothing left to wait for.
	return err != nil || info.Signo != 0
}

// ctl runs xvrctl against this xvrd.
func (x *xvrdProc) ctl(args ...string) (string, error) {
	out, err := exec.Command(bin("xvrctl"), append([]string{"--socket", x.socket}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("xvrctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (x *xvrdProc) mustCtl(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := x.ctl(args...)
	if err != nil {
		tb.Fatalf("%v\nxvrd log:\n%s", err, x.logTail())
	}
	return out
}

func (x *xvrdProc) writeFile(tb testing.TB, name, content string) string {
	tb.Helper()
	f := filepath.Join(x.dir, name)
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

func (x *xvrdProc) logTail() string {
	b, err := os.ReadFile(x.log)
	if err != nil {
		return err.Error()
	}
	return tail(string(b), 3000)
}

// cpuTime returns the user plus system CPU time xvrd (all its threads) has
// used, from /proc/PID/stat (10 ms resolution).
func (x *xvrdProc) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", x.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read xvrd stat: %w", err)
	}
	return parseProcStat(string(b))
}

// parseProcStat sums utime and stime (fields 14 and 15) of a /proc/PID/stat
// line; the command name (field 2) may hold spaces and parentheses.
func parseProcStat(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat %q: no command name", tail(s, 80))
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the name", len(f))
	}
	return sumTicks(f[11], f[12])
}

// userHZ is the unit of /proc CPU times (USER_HZ, 100 on every Linux ABI).
const userHZ = 100

func sumTicks(fields ...string) (time.Duration, error) {
	var sum uint64
	for _, f := range fields {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu ticks %q: %w", f, err)
		}
		sum += v
	}
	return time.Duration(sum) * time.Second / userHZ, nil
}

// systemBusy returns the CPU time all CPUs together have spent busy (user,
// nice, system, irq, softirq; not idle, iowait or steal), from /proc/stat.
func systemBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat starts with %q", line)
	}
	return sumTicks(f[1], f[2], f[3], f[6], f[7])
}

// hostRxDrops returns the rx_queue_0_drops counter of a's host veth: frames
// its XDP program could not hand on (for xvr: the AF_XDP socket's RX ring
// was full or its fill ring empty), which no xvrd counter sees.
func (tp *fwdTopo) hostRxDrops() (uint64, error) {
	out, err := tp.node.Try("ethtool", "-S", tp.a.HostIf)
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ": "); ok && k == "rx_queue_0_drops" {
			return strconv.ParseUint(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("ethtool -S %s has no rx_queue_0_drops", tp.a.HostIf)
}

// counters reads xvrd's drop reasons and vifs through the API client.
func (x *xvrdProc) counters() ([]api.DropStat, []api.Vif, error) {
	c := api.NewClient(x.socket)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ds, err := c.DropStats(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("dropstats: %w", err)
	}
	vifs, err := c.Vifs(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("vifs: %w", err)
	}
	return ds, vifs, nil
}
