package nettest

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	MaybeRunHelper()
	os.Exit(m.Run())
}

func TestNameUniqueAndShort(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		n := Name(t, "xvrtst")
		if len(n) > MaxNameLen || seen[n] {
			t.Fatalf("name %q: len %d, duplicate %v", n, len(n), seen[n])
		}
		seen[n] = true
	}
}

func TestHelperArgs(t *testing.T) {
	got := helperArgs([]string{"bin", "-test.run=^$", "--", "a", "--", "b"})
	if strings.Join(got, " ") != "a -- b" {
		t.Fatalf("helperArgs = %q", got)
	}
	if helperArgs([]string{"bin", "a"}) != nil {
		t.Fatal("helperArgs without -- must be nil")
	}
}

func TestUnknownHelper(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runHelper("nope", nil, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "unknown") {
		t.Fatalf("code %d, stderr %q", code, errOut.String())
	}
	if code := runHelper("raw-send", []string{"lo", "2000000", "random"}, &out, &errOut); code == 0 {
		t.Fatal("raw-send accepted a count above MaxRawFrames")
	}
}

func newTestGen() *frameGen {
	g := &frameGen{dst: broadcast, src: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	g.rng = newRand(1)
	return g
}

func TestFrameKinds(t *testing.T) {
	g := newTestGen()
	for range 2000 {
		checkIP(t, "truncated-ip", g.truncatedIP(), func(f []byte) bool { return len(f) < ethHdrLen+ipv4HdrLen })
		checkIP(t, "bad-ihl", g.badIHL(), func(f []byte) bool {
			ihl := int(f[ethHdrLen] & 0xf)
			return ihl < 5 || ihl*4 > len(f)-ethHdrLen
		})
		checkIP(t, "bad-total-length", g.badTotalLength(), func(f []byte) bool {
			tl := int(binary.BigEndian.Uint16(f[ethHdrLen+2:]))
			return tl < ipv4HdrLen || tl > len(f)-ethHdrLen
		})
		if f := g.truncatedEth(); len(f) != ethHdrLen {
			t.Fatalf("truncated-eth length %d", len(f))
		}
		if f := g.random(); len(f) > maxFrame {
			t.Fatalf("random length %d", len(f))
		}
		if f := g.unknownEthertype(); !bytes.Equal(f[:6], broadcast) || len(f) != 60 {
			t.Fatalf("unknown-ethertype frame %x", f)
		}
		if f := g.ipv6(); binary.BigEndian.Uint16(f[12:]) != 0x86dd || f[ethHdrLen]>>4 != 6 {
			t.Fatalf("ipv6 frame %x", f)
		}
	}
}

func checkIP(t *testing.T, kind string, f []byte, bad func([]byte) bool) {
	t.Helper()
	if binary.BigEndian.Uint16(f[12:]) != 0x0800 || !bad(f) {
		t.Fatalf("%s frame is not what it claims: %x", kind, f)
	}
}

func TestProcKill(t *testing.T) {
	RequireRoot(t)
	ns := NewNS(t, "xp")
	p := ns.Start(t, "sleep", "60")
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(5 * time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Wait after Kill = %v, want killed", err)
	}
	if err := p.Kill(); err != nil {
		t.Fatalf("Kill after exit must be a no-op: %v", err)
	}
}

func TestProcOutput(t *testing.T) {
	RequireRoot(t)
	ns := NewNS(t, "xp")
	p := ns.Start(t, "sh", "-c", "echo out; echo err >&2")
	if err := p.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if out := p.Output(); !strings.Contains(out, "out") || !strings.Contains(out, "err") {
		t.Fatalf("output %q", out)
	}
}

var (
	hostAddr = netip.MustParsePrefix("198.18.0.1/24")
	podAddr  = netip.MustParsePrefix("198.18.0.2/24")
	podMAC   = net.HardwareAddr{0x02, 0x00, 0xc6, 0x12, 0x00, 0x02}
)

// TestPodTopology builds node + pod joined by a plain veth (no xvr), checks
// ping, a TCP transfer and every raw frame kind, then that nothing is left.
func TestPodTopology(t *testing.T) {
	RequireRoot(t)
	var names []string
	t.Run("use", func(t *testing.T) {
		node := NewNS(t, "xn")
		pod := AddPod(t, node, "xq", podAddr, hostAddr.Addr(), podMAC)
		names = []string{node.Name, pod.NS.Name, pod.HostIf}
		node.Run(t, "ip", "addr", "add", hostAddr.String(), "dev", pod.HostIf)
		checkPodConfig(t, pod)
		if out, err := pod.Ping(hostAddr.Addr(), 3); err != nil {
			t.Fatalf("ping: %v\n%s", err, out)
		}
		sink, _ := node.TCPTransfer(t, pod.NS, hostAddr.Addr(), 5201, 8<<20)
		t.Logf("tcp: %s", sink)
		checkRawSend(t, pod)
	})
	if t.Failed() {
		return
	}
	netnsList, _ := ipCmd("netns", "list")
	links, _ := ipCmd("-o", "link")
	for _, n := range names {
		if strings.Contains(netnsList, n) || strings.Contains(links, n) {
			t.Errorf("%s still exists after cleanup", n)
		}
	}
}

func checkPodConfig(t *testing.T, pod *Pod) {
	t.Helper()
	if got := pod.NS.MAC(t, PodIf); got != podMAC.String() {
		t.Errorf("pod MAC %s, want %s", got, podMAC)
	}
	if out := pod.NS.Run(t, "ethtool", "-k", PodIf); !strings.Contains(out, "tx-checksumming: off") {
		t.Errorf("tx checksumming not off:\n%s", out)
	}
	for _, c := range []struct {
		ns  *NS
		dev string
	}{{pod.NS, PodIf}, {pod.Node, pod.HostIf}} {
		if v := c.ns.Run(t, "cat", "/proc/sys/net/ipv6/conf/"+c.dev+"/disable_ipv6"); strings.TrimSpace(v) != "1" {
			t.Errorf("IPv6 not disabled on %s", c.dev)
		}
	}
	if out := pod.NS.Run(t, "ip", "route", "show", "default"); !strings.Contains(out, "via "+hostAddr.Addr().String()) {
		t.Errorf("default route: %q", out)
	}
}

func checkRawSend(t *testing.T, pod *Pod) {
	t.Helper()
	const count = 3000
	for _, kind := range FrameKinds {
		before := txPackets(t, pod)
		sent := pod.RawSend(t, count, kind)
		delta := txPackets(t, pod) - before
		t.Logf("raw-send %-17s sent=%d tx_packets+%d", kind, sent, delta)
		min := count
		if kind == "random" || kind == "mixed" {
			min = count * 95 / 100 // frames under 14 bytes are refused
		}
		if sent < min || sent > count {
			t.Errorf("%s: sent %d of %d", kind, sent, count)
		}
		if delta < sent || delta > sent+10 {
			t.Errorf("%s: eth0 tx_packets grew by %d for %d frames sent", kind, delta, sent)
		}
	}
}

func txPackets(t *testing.T, pod *Pod) int {
	t.Helper()
	s := pod.NS.Run(t, "cat", "/sys/class/net/"+PodIf+"/statistics/tx_packets")
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("tx_packets %q: %v", s, err)
	}
	return n
}
