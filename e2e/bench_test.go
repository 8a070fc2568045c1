package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/bench/topo"
	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// Whole-path forwarding benchmarks: pod a's eth0 -> node -> pod b's eth0,
// forwarded by xvrd (BenchmarkForwardXVR) or by the node's Linux routing
// (BenchmarkForwardLinux) over the same namespaces and veths, built by
// bench/topo (the topologies xvr-bench uses, unpinned here). A live-frames
// generator transmits UDP frames out of a's eth0; a counting sink on b's
// eth0 counts what arrived. Metrics per sub-benchmark (frame size):
//
//	pps          delivered frames per second (sink count / time until the last arrived)
//	offered-pps  frames the generator pushed per second
//	loss-%       frames sent but never delivered
//	rxdrop-%     frames dropped by a's host veth before the datapath took them (for xvr:
//	             AF_XDP RX ring full or fill ring empty, the xsk_* reasons of xvrctl dropstats)
//	cpu-ns/pkt   busy CPU time of the whole machine per delivered frame (generator included)
//	xvrd-ns/pkt  CPU time of the xvrd process per delivered frame (xvr only)
//
// ns/op is the time of one op (framesPerOp frames plus the drain) and means
// little. Run with: go test -run '^$' -bench 'Forward(XVR|Linux)' -benchtime 1x ./e2e/

const (
	// maxBenchFrames bounds the frames of all ops of one sub-benchmark.
	maxBenchFrames = 5_000_000
	// maxSendTime bounds the sending of one op.
	maxSendTime = 20 * time.Second
	// sendChunk is how many frames one Generator.Send injects; the deadline
	// is checked between chunks.
	sendChunk = 1 << 16
	// warmupFrames are sent before timing, so that first-packet work (flow
	// set-up, page faults) is not measured and a broken path fails fast.
	warmupFrames = 1000
	// A run has drained when the sink has not grown for drainQuiet, or
	// drainMax after sending ended.
	drainQuiet = 200 * time.Millisecond
	drainMax   = 3 * time.Second
)

// fwdSizes are the frame sizes benchmarked and the frames one op offers.
var fwdSizes = []struct{ size, framesPerOp int }{{64, 1 << 20}, {1500, 1 << 18}}

func BenchmarkForwardXVR(b *testing.B) {
	tp := newFwdTopo(b, topo.XVR)
	tp.benchSizes(b)
	tp.logXVRCounters(b)
}

func BenchmarkForwardLinux(b *testing.B) {
	tp := newFwdTopo(b, topo.LinuxRouting)
	tp.benchSizes(b)
}

// fwdTopo is a bench/topo topology between pod a (generator) and pod b (sink).
type fwdTopo struct{ *topo.Topology }

func newFwdTopo(b *testing.B, kind topo.Kind) *fwdTopo {
	nettest.RequireRoot(b)
	t, err := topo.Build(kind, topo.Options{BinDir: binDir, ForwarderCPU: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := t.Close(); err != nil {
			b.Error(err)
		}
	})
	return &fwdTopo{t}
}

// generator is a live-frames source of size-byte frames from a to b.
func (tp *fwdTopo) generator(b *testing.B, size int) *topo.Source {
	src, err := tp.NewSource([]int{size})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := src.Close(); err != nil {
			b.Error(err)
		}
	})
	return src
}

func (tp *fwdTopo) benchSizes(b *testing.B) {
	for _, s := range fwdSizes {
		b.Run(fmt.Sprintf("size=%d", s.size), func(b *testing.B) { tp.bench(b, s.size, s.framesPerOp) })
	}
}

// bench measures b.N ops of framesPerOp frames (fewer when b.N is large, so
// that all ops offer at most maxBenchFrames) of size bytes each.
func (tp *fwdTopo) bench(b *testing.B, size, framesPerOp int) {
	g := tp.generator(b, size)
	tp.warmUp(b, g)
	perOp := max(1, min(framesPerOp, maxBenchFrames/b.N))
	var total runResult
	b.ResetTimer()
	for range b.N {
		r, err := tp.run(g, perOp)
		if err != nil {
			b.Fatal(err)
		}
		total.add(r)
	}
	b.StopTimer()
	tp.check(b, total)
	total.report(b, tp.Forwarder != nil)
}

// warmUp sends warmupFrames and fails b unless some arrive: a datapath that
// delivers nothing has no throughput worth reporting.
func (tp *fwdTopo) warmUp(b *testing.B, g *topo.Source) {
	r, err := tp.run(g, warmupFrames)
	if err != nil {
		b.Fatal(err)
	}
	if r.delivered == 0 {
		b.Fatalf("none of %d warm-up frames from %s reached %s%s", r.sent, tp.A.IP, tp.B.IP, tp.diagnosis())
	}
}

func (tp *fwdTopo) check(b *testing.B, r runResult) {
	if r.delivered == 0 {
		b.Fatalf("none of %d frames was delivered%s", r.sent, tp.diagnosis())
	}
	if r.delivered > r.sent {
		b.Errorf("sink counted %d frames, only %d were sent%s", r.delivered, r.sent, tp.diagnosis())
	}
}

// diagnosis is xvrd's counters and log, for a failure message.
func (tp *fwdTopo) diagnosis() string {
	if tp.Forwarder == nil {
		return ""
	}
	ds, vifs, err := tp.counters()
	return fmt.Sprintf("\ndropstats %+v\nvifs %+v (err %v)\nxvrd log:\n%s", ds, vifs, err, tp.Forwarder.LogTail())
}

// counters reads xvrd's drop reasons and vifs with xvrctl.
func (tp *fwdTopo) counters() ([]api.DropStat, []api.Vif, error) {
	var ds []api.DropStat
	var vifs []api.Vif
	for _, q := range []struct {
		v    any
		args []string
	}{{&ds, []string{"dropstats", "--all", "-o", "json"}}, {&vifs, []string{"vif", "-o", "json"}}} {
		out, err := tp.Forwarder.Ctl(q.args...)
		if err != nil {
			return nil, nil, fmt.Errorf("xvrctl %s: %w", q.args[0], err)
		}
		if err := json.Unmarshal([]byte(out), q.v); err != nil {
			return nil, nil, fmt.Errorf("xvrctl %s: %w", q.args[0], err)
		}
	}
	return ds, vifs, nil
}

// hostRxDrops returns the rx_queue_0_drops counter of a's host veth: frames
// its XDP program could not hand on (for xvr: the AF_XDP socket's RX ring
// was full or its fill ring empty), which no xvrd counter sees.
func (tp *fwdTopo) hostRxDrops() (uint64, error) {
	out, err := tp.A.Node.Run("ethtool", "-S", tp.A.HostIf)
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ": "); ok && k == "rx_queue_0_drops" {
			return strconv.ParseUint(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("ethtool -S %s has no rx_queue_0_drops", tp.A.HostIf)
}

// runResult is what one or more runs measured.
type runResult struct {
	sent, delivered  uint64
	rxDrops          uint64        // dropped at a's host veth
	sending, elapsed time.Duration // sending; from the first send to the last delivery
	procCPU, sysCPU  time.Duration // xvrd's CPU time; the machine's busy CPU time
}

func (r *runResult) add(o runResult) {
	r.sent += o.sent
	r.delivered += o.delivered
	r.rxDrops += o.rxDrops
	r.sending += o.sending
	r.elapsed += o.elapsed
	r.procCPU += o.procCPU
	r.sysCPU += o.sysCPU
}

func (r runResult) report(b *testing.B, withXVRD bool) {
	b.ReportMetric(float64(r.delivered)/r.elapsed.Seconds(), "pps")
	b.ReportMetric(float64(r.sent)/r.sending.Seconds(), "offered-pps")
	b.ReportMetric(100*float64(r.sent-min(r.sent, r.delivered))/float64(r.sent), "loss-%")
	b.ReportMetric(100*float64(r.rxDrops)/float64(r.sent), "rxdrop-%")
	b.ReportMetric(float64(r.sysCPU.Nanoseconds())/float64(r.delivered), "cpu-ns/pkt")
	if withXVRD {
		b.ReportMetric(float64(r.procCPU.Nanoseconds())/float64(r.delivered), "xvrd-ns/pkt")
	}
}

// run offers n frames (fewer if maxSendTime passes first) and waits for the
// sink to drain.
func (tp *fwdTopo) run(g *topo.Source, n int) (runResult, error) {
	d0, err := tp.hostRxDrops()
	if err != nil {
		return runResult{}, err
	}
	c0, err := tp.Sink.Count()
	if err != nil {
		return runResult{}, err
	}
	proc0, sys0, err := tp.cpuTimes()
	if err != nil {
		return runResult{}, err
	}
	start := time.Now()
	sent, err := sendFor(g, n, start.Add(maxSendTime))
	sendEnd := time.Now()
	if err != nil {
		return runResult{}, err
	}
	c1, last, err := tp.drain(sendEnd)
	if err != nil {
		return runResult{}, err
	}
	proc1, sys1, err := tp.cpuTimes()
	if err != nil {
		return runResult{}, err
	}
	d1, err := tp.hostRxDrops()
	if err != nil {
		return runResult{}, err
	}
	return runResult{sent: sent, delivered: c1 - c0, rxDrops: d1 - d0, sending: sendEnd.Sub(start),
		elapsed: last.Sub(start), procCPU: proc1 - proc0, sysCPU: sys1 - sys0}, nil
}

// sendFor injects n frames in chunks and stops early at deadline.
func sendFor(g *topo.Source, n int, deadline time.Time) (uint64, error) {
	var sent uint64
	for left := n; left > 0 && time.Now().Before(deadline); {
		c := min(left, sendChunk)
		if err := g.Send(0, uint32(c)); err != nil {
			return sent, err
		}
		sent += uint64(c)
		left -= c
	}
	return sent, nil
}

// drain polls the sink until it stops growing and returns its count and when
// it last grew (since, if it did not grow after since).
func (tp *fwdTopo) drain(since time.Time) (uint64, time.Time, error) {
	c, err := tp.Sink.Count()
	if err != nil {
		return 0, since, err
	}
	last := since
	for now := time.Now(); now.Sub(last) < drainQuiet && now.Sub(since) < drainMax; now = time.Now() {
		time.Sleep(5 * time.Millisecond)
		n, err := tp.Sink.Count()
		if err != nil {
			return 0, last, err
		}
		if n != c {
			c, last = n, time.Now()
		}
	}
	return c, last, nil
}

// cpuTimes returns xvrd's CPU time (zero without xvrd) and the machine's.
func (tp *fwdTopo) cpuTimes() (proc, sys time.Duration, err error) {
	if proc, err = tp.ForwarderCPU(); err != nil {
		return 0, 0, err
	}
	s, err := topo.ReadSystemCPU()
	return proc, s.Busy, err
}

// logXVRCounters logs xvrd's non-zero drop reasons and its vif counters
// after all sizes ran.
func (tp *fwdTopo) logXVRCounters(b *testing.B) {
	ds, vifs, err := tp.counters()
	if err != nil {
		b.Fatalf("%v\nxvrd log:\n%s", err, tp.Forwarder.LogTail())
	}
	for _, d := range ds {
		if d.Count != 0 {
			b.Logf("dropstats %s: %d", d.Reason, d.Count)
		}
	}
	for _, v := range vifs {
		b.Logf("vif %d %s: rx %d tx %d drops %d", v.ID, v.Name, v.RXPackets, v.TXPackets, v.Drops)
	}
}
