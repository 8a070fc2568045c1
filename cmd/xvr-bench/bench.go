package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/xvr-project/xvr/bench/gen"
	"github.com/xvr-project/xvr/bench/report"
	"github.com/xvr-project/xvr/bench/rfc2544"
	"github.com/xvr-project/xvr/bench/topo"
)

// progress writes timestamped progress lines.
type progress struct {
	w     io.Writer
	start time.Time
}

func (p progress) printf(format string, a ...any) {
	fmt.Fprintf(p.w, "[%5.1fs] "+format+"\n", append([]any{time.Since(p.start).Seconds()}, a...)...)
}

// bench runs every datapath and writes the report.
func bench(c config, log io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, veth, XDP)")
	}
	p := progress{w: log, start: time.Now()}
	rep := &report.Report{Machine: machine(), Date: time.Now(), Command: c.command, Quick: c.quick, Method: method(c)}
	c.fwdCPU = pinning(&c, rep, p)
	deadline := p.start.Add(c.budget)
	for _, k := range c.datapaths {
		rep.Datapaths = append(rep.Datapaths, runDatapath(c, k, deadline, p))
	}
	if c.scaling && slices.Contains(c.datapaths, topo.XVR) {
		rep.Scaling = scaling(c, deadline, p)
	}
	rep.FillRatios(string(topo.LinuxRouting))
	rep.Targets = rep.Standings(report.Goals)
	rep.Checks = rep.OtherTargets()
	if err := rep.WriteDir(c.out); err != nil {
		return err
	}
	p.printf("report: %s/{%s,%s,%s}", c.out, report.MarkdownFile, report.JSONFile, report.SVGFile)
	return nil
}

// pinning pins this process (the generator) to c.genCPU and returns the
// forwarder CPU to use (-1: none, on a one-CPU machine or when asked).
func pinning(c *config, rep *report.Report, p progress) int {
	n := runtime.NumCPU()
	if c.fwdCPU < 0 || n < 2 || c.genCPU == c.fwdCPU || c.genCPU >= n || c.fwdCPU >= n {
		rep.Pinning = "none (generator, forwarder and helpers share all CPUs)"
		return -1
	}
	if err := pinProcess(c.genCPU); err != nil {
		p.printf("warning: %v; running unpinned", err)
		rep.Pinning = "none (pinning failed: " + err.Error() + ")"
		return -1
	}
	rep.Pinning = fmt.Sprintf("generator (xvr-bench, all threads) on CPU %d; forwarder on CPU %d "+
		"(xvrd: its pollers by -poller-cpus, its control plane on the other CPUs, and its XDP shortcut where the kernel runs the ingress host veth's XDP: "+
		"in that veth's NAPI, on the CPU of whoever sent to it: the generator's, on one node and across nodes (each veth hop's NAPI runs on the sending CPU, the receiving node's decapsulation too); kernel datapaths: RPS of the ingress host veth; OVS: its PMD thread by pmd-cpu-mask, "+
		"its other threads and ovsdb-server on all CPUs); ping and iperf3 unpinned", c.genCPU, c.fwdCPU)
	return c.fwdCPU
}

func method(c config) []string {
	generator := "the kernel's XDP live-frames test run (bench/gen), and for paced trials of mixes an AF_XDP socket's TX ring in copy mode"
	pacing := fmt.Sprintf("Pacing: a trial of one frame size is spaced in the kernel (the live-frames program transmits only when the next frame is due, so at most %d frames leave back to back); a mix goes through the AF_XDP generator, every %v the frames due since the trial began in one burst (at most 4 slices' worth). The trials column gives the burst of the zero-loss trial; a pass at the highest rate the paced generator reaches is marked generator-bound (a lower bound).", gen.MaxPacedBurst, rfc2544.FineSlice)
	if err := gen.LiveFramesErr(); err != nil {
		generator = fmt.Sprintf("an AF_XDP socket's TX ring in copy mode (bench/gen; this kernel refuses XDP live frames: %v)", err)
		pacing = fmt.Sprintf("Pacing: every %v the frames due since the trial began go out as one burst (at most 4 slices' worth) through the AF_XDP generator; the trials column gives the burst of the zero-loss trial; a pass at the generator's own rate is marked generator-bound.", rfc2544.FineSlice)
	}
	return []string{
		"Generator: " + generator + " on pod a's eth0; sink: XDP program on pod b's eth0 counting and dropping UDP to port 9 (other traffic passes).",
		fmt.Sprintf("Zero-loss throughput: RFC 2544 binary search on the offered rate (first trial unpaced, then the rate delivered under overload, then bisection), %v per trial, stop at %.0f %% resolution or %d trials, loss tolerance %g.", c.trial, c.resolution*100, c.maxTrials, c.lossTol),
		pacing,
		"Gbit/s counts frame bytes on the veth (no FCS, preamble or gap). IMIX is 7:4:1 of 64/576/1500-byte frames, interleaved in exact proportion.",
		fmt.Sprintf("Latency: RTT of %d ICMP echoes (ping -i 0.001, 84-byte IP) from pod a to pod b through the datapath, while the generator offers %.0f %% of the zero-loss rate of that frame size.", c.pings, c.loadFrac*100),
		"CPU ns/pkt: busy time of the whole machine (/proc/stat user+nice+system+irq+softirq, generator included) and its softirq part, and the forwarder process's utime+stime (/proc/PID/stat: xvrd, or ovs-vswitchd, whose PMD thread polls without sleeping), over the best passing trial, per delivered frame; 10 ms tick resolution.",
		"TCP: one iperf3 stream, pod a to pod b.",
		"Pods: configured alike for every datapath, as xvr-cni configures its pods: transmit checksum offload off, GRO on (once up), a pfifo_fast root qdisc on eth0 (without one a veth drops what the pod sends while its peer's ring is full; with one the kernel stops the queue instead). docs/benchmarks.md has every datapath's TCP without the qdisc too.",
	}
}

// runDatapath builds one topology, measures every mix and tears it down.
func runDatapath(c config, k topo.Kind, deadline time.Time, p progress) report.Datapath {
	d := report.Datapath{Name: string(k)}
	if time.Now().After(deadline) {
		d.Skipped = "time budget of this mode used up"
		return d
	}
	p.printf("%s: building topology", k)
	t, err := topo.Build(k, c.options(topo.Options{}))
	if errors.Is(err, topo.ErrSkipped) {
		d.Skipped = skipReason(err)
		p.printf("%s skipped: %s", k, d.Skipped)
		return d
	}
	if err != nil {
		d.Error = err.Error()
		p.printf("%s failed: %v", k, err)
		return d
	}
	d.Notes = t.Notes
	if t.Label != "" {
		d.Name = t.Label
		p.printf("%s: built as %s: %s", k, t.Label, t.Notes)
	}
	measure(c, t, &d, deadline, p)
	if err := t.Close(); err != nil {
		d.Error = errors.Join(errors.New(d.Error), fmt.Errorf("tear-down: %w", err)).Error()
	}
	return d
}

// skipReason is the text after "skipped: " in a topo.ErrSkipped error.
func skipReason(err error) string {
	_, why, ok := strings.Cut(err.Error(), topo.ErrSkipped.Error()+": ")
	if !ok {
		return err.Error()
	}
	return why
}

// measure fills d's rows and TCP result, stopping at the deadline.
func measure(c config, t *topo.Topology, d *report.Datapath, deadline time.Time, p progress) {
	for _, m := range c.mixesFor(t.Kind) {
		if time.Now().After(deadline) {
			d.Error = "time budget used up before frame size " + m.Name()
			return
		}
		row, err := measureMix(c, t, m, p)
		if err != nil {
			d.Error = fmt.Sprintf("%s: %v", m.Name(), err)
			p.printf("%s %s failed: %v", t.Kind, m.Name(), err)
			return
		}
		d.Rows = append(d.Rows, row)
	}
	if c.tcpTime > 0 && time.Now().Before(deadline) {
		p.printf("%s: TCP (iperf3, %v)", t.Kind, c.tcpTime)
		tcp, err := tcpThroughput(t, c.tcpTime)
		if err != nil {
			d.Error = "tcp: " + err.Error()
			p.printf("%s TCP failed: %v", t.Kind, err)
			return
		}
		d.TCP = tcp
		p.printf("%s: TCP %.2f Gbit/s, %d retransmits", t.Kind, tcp.Gbps, tcp.Retransmits)
	}
}

// options is o with the run's binaries, pinning and xvrd flags (the run's
// flags first, o's after them, so o's win).
func (c config) options(o topo.Options) topo.Options {
	o.BinDir, o.ForwarderCPU = c.binDir, c.fwdCPU
	o.XvrdArgs = append(append([]string(nil), c.xvrdArgs...), o.XvrdArgs...)
	return o
}

// measureMix runs the zero-loss search, latency and CPU figures for one mix.
func measureMix(c config, t *topo.Topology, m rfc2544.Mix, p progress) (report.Row, error) {
	src, err := t.NewSource(m.Sizes())
	if err != nil {
		return report.Row{}, err
	}
	defer src.Close()
	r, res, err := searchFrom(c, t, src, m, p)
	if err != nil {
		return report.Row{}, err
	}
	row := newRow(m, res, r.cpus[res.Rate], r.burst(res.Rate))
	row.OverloadPPS = r.overload
	if res.Rate > 0 {
		load := c.loadFrac * res.Rate
		if row.Latency, err = r.latency(load, c.pings); err != nil {
			return row, err
		}
	}
	p.printf("%s %s: zero-loss %.3f Mpps (%.3f Gbit/s), RTT p99 %s", t.Kind, m.Name(), row.ZeroLossPPS/1e6, row.Gbps, p99(row))
	return row, nil
}

func p99(row report.Row) string {
	if row.Latency == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f µs", row.Latency.P99)
}

// searchFrom warms the path up with src's frames of m and runs the search;
// the runner holds the trials' CPU figures and the overload rate.
func searchFrom(c config, t *topo.Topology, src *topo.Source, m rfc2544.Mix, p progress) (*runner, rfc2544.Result, error) {
	r := &runner{t: t, src: src, mix: m, dur: c.trial, cpus: map[float64]cpuUse{}}
	if err := r.warmUp(); err != nil {
		return r, rfc2544.Result{}, err
	}
	res, err := search(c, r, p)
	return r, res, err
}

// search runs the RFC 2544 search: the first trial unpaced gives the rate
// delivered under overload (Hint) and, with the paced generator's own
// unpaced rate when that is another generator, the highest rate a paced
// trial can offer (Max).
func search(c config, r *runner, p progress) (rfc2544.Result, error) {
	first, err := r.trial(math.Inf(1))
	if err != nil {
		return rfc2544.Result{}, err
	}
	hint := float64(first.Received) / (float64(first.Sent) / first.Offered) // delivered rate
	p.printf("%s %s: unpaced %.3f Mpps offered, %.3f Mpps delivered", r.t.Kind, r.mix.Name(),
		first.Offered/1e6, hint/1e6)
	top := first.Offered
	if r.src.PacedApart() && !r.kernelPaced() {
		pg, err := r.trialVia(math.Inf(1), true)
		if err != nil {
			return rfc2544.Result{}, err
		}
		top = min(top, pg.Offered)
		p.printf("%s %s: paced generator unpaced %.3f Mpps offered", r.t.Kind, r.mix.Name(), pg.Offered/1e6)
	}
	cfg := rfc2544.Config{Max: top, Hint: min(hint, top), Resolution: c.resolution, MaxTrials: c.maxTrials,
		LossTolerance: c.lossTol, Progress: func(rec rfc2544.Record) {
			p.printf("  %s %s trial %.3f Mpps (burst %d): sent %d lost %d pass=%v", r.t.Kind, r.mix.Name(), rec.Rate/1e6,
				r.burst(rec.Rate), rec.Sent, rec.Lost(), rec.Pass)
		}}
	res, err := rfc2544.Search(cfg, r.trial)
	r.overload = hint
	return res, err
}

// newRow turns a search result, the CPU of its best trial and the burst
// size of its pacing into a row.
func newRow(m rfc2544.Mix, res rfc2544.Result, u cpuUse, burst uint64) report.Row {
	row := report.Row{Size: m.Name(), AvgFrame: m.AvgSize(), ZeroLossPPS: res.Rate, GeneratorBound: res.AtMax,
		Trials: len(res.Trials)}
	row.Gbps = res.Rate * m.AvgSize() * 8 / 1e9
	if len(res.Trials) > 0 {
		row.GeneratorPPS = res.Trials[0].Rate
	}
	if res.Rate > 0 {
		row.Burst = burst
	}
	if n := float64(res.Best.Received); n > 0 {
		row.CPUNsPerPkt = float64(u.sys.Busy.Nanoseconds()) / n
		row.SoftIRQNsPerPkt = float64(u.sys.SoftIRQ.Nanoseconds()) / n
		row.FwdNsPerPkt = float64(u.fwd.Nanoseconds()) / n
	}
	return row
}
