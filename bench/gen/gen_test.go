package gen_test

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/xvr-project/xvr/bench/gen"
	"github.com/xvr-project/xvr/internal/nettest"
)

var (
	srcMAC = net.HardwareAddr{0x02, 0, 0xc6, 0x12, 0, 1}
	dstMAC = net.HardwareAddr{0x02, 0, 0xc6, 0x12, 0, 2}
	srcIP  = netip.MustParseAddr("198.18.0.1")
	dstIP  = netip.MustParseAddr("198.18.0.2")
)

// pair is a veth pair in a fresh namespace: gen sends on A, sink counts on B.
type pair struct {
	ns   *nettest.NS
	a, b string
	gen  *gen.Generator
	sink *gen.Sink
}

func newPair(t testing.TB, frame []byte) *pair {
	t.Helper()
	nettest.RequireRoot(t)
	p := &pair{ns: nettest.NewNS(t, "xg"), a: nettest.Name(t, "xga"), b: nettest.Name(t, "xgb")}
	p.ns.AddVeth(t, p.a, p.b)
	err := gen.InNetNS(p.ns.Name, func() error {
		ia, err := net.InterfaceByName(p.a)
		if err != nil {
			return err
		}
		ib, err := net.InterfaceByName(p.b)
		if err != nil {
			return err
		}
		if p.sink, err = gen.AttachSink(ib.Index); err != nil {
			return err
		}
		p.gen, err = gen.NewGenerator(ia.Index, frame)
		return err
	})
	if err != nil {
		t.Fatalf("setting up generator and sink: %v", err)
	}
	t.Cleanup(func() {
		if err := p.gen.Close(); err != nil {
			t.Error(err)
		}
		if err := p.sink.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// stats returns the ethtool -S counters of dev.
func (p *pair) stats(t testing.TB, dev string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for _, line := range strings.Split(p.ns.Run(t, "ethtool", "-S", dev), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if n, err := strconv.ParseUint(v, 10, 64); ok && err == nil {
			m[k] = n
		}
	}
	return m
}

// stat returns one ethtool -S counter of dev, failing t if it is missing.
func (p *pair) stat(t testing.TB, dev, key string) uint64 {
	t.Helper()
	v, ok := p.stats(t, dev)[key]
	if !ok {
		t.Fatalf("ethtool -S %s has no %s", dev, key)
	}
	return v
}

// veth counters that tell what the generator transmitted and the sink saw.
const (
	statXmit    = "tx_queue_0_xdp_xmit"
	statXmitErr = "tx_queue_0_xdp_xmit_errors"
	statRxXDP   = "rx_queue_0_xdp_packets"
)

// TestGeneratorIntoSink: every injected frame crosses the veth and is
// counted once, and the veth's own counters agree.
func TestGeneratorIntoSink(t *testing.T) {
	p := newPair(t, gen.Frame64(srcMAC, dstMAC, srcIP, dstIP))
	for _, n := range []uint32{1, 100_000} {
		xmit0, rx0 := p.stat(t, p.a, statXmit), p.stat(t, p.b, statRxXDP)
		c0 := count(t, p.sink)
		took, err := p.gen.Send(n)
		if err != nil {
			t.Fatal(err)
		}
		got := count(t, p.sink) - c0
		xmit, rx := p.stat(t, p.a, statXmit)-xmit0, p.stat(t, p.b, statRxXDP)-rx0
		t.Logf("%s: sent %d in %v (%.2f Mpps): veth xdp xmit %d, peer rx %d, sink %d",
			p.gen.Mode(), n, took, float64(n)/took.Seconds()/1e6, xmit, rx, got)
		if p.gen.Mode() == gen.ModeAFXDP {
			xmit = uint64(n) // AF_XDP TX goes through the veth's xmit, not its XDP xmit counter
		}
		if got != uint64(n) || xmit != uint64(n) || rx != uint64(n) {
			t.Errorf("sent %d: veth xmit %d, peer rx %d, sink %d; want all equal", n, xmit, rx, got)
		}
	}
	if e := p.stat(t, p.a, statXmitErr); e != 0 {
		t.Errorf("%s = %d", statXmitErr, e)
	}
}

// TestGeneratorNeedsPeerXDP pins the trap the package doc describes: with
// no XDP program (and no GRO) on the peer, Send succeeds, nothing crosses,
// and no veth counter records the loss. The AF_XDP fallback sends skbs:
// there every frame reaches the peer's stack.
func TestGeneratorNeedsPeerXDP(t *testing.T) {
	p := newPair(t, gen.Frame64(srcMAC, dstMAC, srcIP, dstIP))
	if p.gen.Mode() == gen.ModeAFXDP {
		if err := p.sink.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := p.gen.Send(1000); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if rx := strings.TrimSpace(p.ns.Run(t, "cat", "/sys/class/net/"+p.b+"/statistics/rx_packets")); rx != "1000" {
			t.Errorf("af_xdp generator, peer without XDP: stack rx %s, want 1000", rx)
		}
		t.Logf("live frames refused (%v): checked the AF_XDP fallback instead", gen.LiveFramesErr())
		return
	}
	if err := p.sink.Close(); err != nil {
		t.Fatal(err)
	}
	p.ns.Run(t, "ethtool", "-K", p.b, "gro", "off")
	if _, err := p.gen.Send(1000); err != nil {
		t.Fatalf("Send: %v", err)
	}
	xmit, rx := p.stat(t, p.a, statXmit), p.stat(t, p.b, statRxXDP)
	rxStack := strings.TrimSpace(p.ns.Run(t, "cat", "/sys/class/net/"+p.b+"/statistics/rx_packets"))
	if xmit != 0 || rx != 0 || rxStack != "0" {
		t.Errorf("peer without XDP: xmit %d, XDP rx %d, stack rx %s; the package doc is out of date", xmit, rx, rxStack)
	}
}

func count(t testing.TB, s *gen.Sink) uint64 {
	t.Helper()
	c, err := s.Count()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGeneratorRejects(t *testing.T) {
	frame := gen.Frame64(srcMAC, dstMAC, srcIP, dstIP)
	for _, c := range []struct {
		ifindex int
		frame   []byte
	}{{0, frame}, {1, frame[:13]}, {1, make([]byte, gen.MaxFrameLen+1)}} {
		if g, err := gen.NewGenerator(c.ifindex, c.frame); err == nil {
			g.Close()
			t.Errorf("NewGenerator(%d, %d bytes) succeeded", c.ifindex, len(c.frame))
		}
	}
	p := newPair(t, frame)
	if _, err := p.gen.Send(gen.MaxSend + 1); err == nil {
		t.Error("Send above MaxSend succeeded")
	}
}

// TestInNetNS: fn runs in the named namespace, the thread comes back.
func TestInNetNS(t *testing.T) {
	nettest.RequireRoot(t)
	ns := nettest.NewNS(t, "xg")
	runtime.LockOSThread() // so that the thread InNetNS used is ours to inspect
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	want, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	err = gen.InNetNS(ns.Name, func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(want) {
			return errors.New("fn did not run in the namespace")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	back, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if !back.Equal(orig) {
		t.Fatal("thread left in the wrong namespace")
	}
	if gen.InNetNS("xvr-no-such-ns", func() error { return nil }) == nil {
		t.Error("InNetNS with a missing namespace succeeded")
	}
}

// BenchmarkGenerator: 64-byte frames into a sink, 1 M frames per op.
func BenchmarkGenerator(b *testing.B) {
	p := newPair(b, gen.Frame64(srcMAC, dstMAC, srcIP, dstIP))
	const perOp = 1 << 20
	c0 := count(b, p.sink)
	b.ReportAllocs()
	b.ResetTimer()
	var busy time.Duration
	for range b.N {
		took, err := p.gen.Send(perOp)
		if err != nil {
			b.Fatal(err)
		}
		busy += took
	}
	b.StopTimer()
	sent := uint64(b.N) * perOp
	b.ReportMetric(float64(sent)/busy.Seconds(), "pps")
	b.ReportMetric(float64(busy.Nanoseconds())/float64(sent), "ns/frame")
	if lost := sent - (count(b, p.sink) - c0); lost != 0 {
		b.Errorf("sink missed %d of %d frames", lost, sent)
	}
}

// TestSendPaced: a paced send delivers exactly n frames, no faster than
// the rate asked.
func TestSendPaced(t *testing.T) {
	p := newPair(t, gen.Frame64(srcMAC, dstMAC, srcIP, dstIP))
	if !p.gen.Paces() {
		t.Skipf("generator is %s: this kernel refuses XDP live frames, which paced sends need", p.gen.Mode())
	}
	for _, rate := range []float64{100e3, 1e6} {
		const n = 50_000
		c0 := count(t, p.sink)
		sent, took, err := p.gen.SendPaced(rate, n, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if sent != n {
			t.Fatalf("rate %.0f: sent %d of %d", rate, sent, n)
		}
		if got := count(t, p.sink) - c0; got != n {
			t.Fatalf("rate %.0f: sink counted %d of %d", rate, got, n)
		}
		want := time.Duration(float64(n) / rate * float64(time.Second))
		// Never faster than asked (that is the pacing); slower only as much
		// as a loaded machine holds the sending thread off its CPU.
		if took < want*9/10 || took > want*10 {
			t.Errorf("rate %.0f: %d frames took %v, want about %v", rate, n, took, want)
		}
		t.Logf("rate %.0f: %d frames in %v (%.0f/s)", rate, sent, took, float64(sent)/took.Seconds())
	}
	if _, _, err := p.gen.SendPaced(0, 10, time.Second); err == nil {
		t.Error("SendPaced at rate 0 succeeded")
	}
}
