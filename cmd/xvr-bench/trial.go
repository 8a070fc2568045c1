package main

import (
	"fmt"
	"math"
	"time"

	"github.com/xvr-project/xvr/bench/gen"
	"github.com/xvr-project/xvr/bench/rfc2544"
	"github.com/xvr-project/xvr/bench/topo"
)

const (
	// maxGenRate bounds the frames of an unpaced trial (above the
	// generator's ~5 Mpps).
	maxGenRate = 10e6
	// The sink has drained when it has not grown for drainQuiet, or
	// drainMax after sending ended.
	drainQuiet = 50 * time.Millisecond
	drainMax   = time.Second
)

// cpuUse is the CPU time one trial cost.
type cpuUse struct {
	sys topo.SystemCPU
	fwd time.Duration
}

// runner runs trials of one mix through one topology.
type runner struct {
	t    *topo.Topology
	src  *topo.Source
	mix  rfc2544.Mix
	dur  time.Duration
	cpus map[float64]cpuUse // by trial rate, the last trial at that rate
	// overload is the rate the sink received in the unpaced trial.
	overload float64
}

// trial offers frames at rate for r.dur (unpaced for +Inf) and counts what
// the sink received.
func (r *runner) trial(rate float64) (rfc2544.Outcome, error) {
	return r.trialVia(rate, !math.IsInf(rate, 1))
}

// trialVia is trial through the paced generator (Source.SendPaced) or the
// unpaced one.
func (r *runner) trialVia(rate float64, paced bool) (rfc2544.Outcome, error) {
	total := uint64(min(rate, maxGenRate) * r.dur.Seconds())
	c0, cpu0, err := r.snapshot()
	if err != nil {
		return rfc2544.Outcome{}, err
	}
	sent, took, err := r.offer(rate, total, r.dur+r.dur/2, paced)
	if err != nil {
		return rfc2544.Outcome{}, err
	}
	c1, err := drain(r.t.Sink)
	if err != nil {
		return rfc2544.Outcome{}, err
	}
	_, cpu1, err := r.snapshot()
	if err != nil {
		return rfc2544.Outcome{}, err
	}
	r.cpus[rate] = cpuUse{sys: cpu1.sys.Sub(cpu0.sys), fwd: cpu1.fwd - cpu0.fwd}
	return rfc2544.Outcome{Offered: float64(sent) / took.Seconds(), Sent: sent, Received: c1 - c0}, nil
}

// offer paces total frames of the mix at rate (+Inf: unpaced), stopping
// after limit, through the paced generator or the unpaced one.
func (r *runner) offer(rate float64, total uint64, limit time.Duration, paced bool) (uint64, time.Duration, error) {
	split, err := rfc2544.NewSplitter(r.mix)
	if err != nil {
		return 0, 0, err
	}
	if math.IsInf(rate, 1) {
		rate = 0 // unpaced
	}
	if paced && rate > 0 && r.kernelPaced() {
		return r.src.Pace(0, rate, total, limit)
	}
	send := r.src.Send
	if paced {
		send = r.src.SendPaced
	}
	return rfc2544.Pace(rate, total, limit, rfc2544.FineSlice, func(n uint64) (uint64, error) {
		var sent uint64
		for i, c := range split.Split(n) {
			if err := send(i, uint32(c)); err != nil {
				return sent, err
			}
			sent += c
		}
		return sent, nil
	})
}

// kernelPaced reports whether paced trials of the mix are spaced in the
// kernel (one frame size, live frames) rather than sent in FineSlice
// bursts through the AF_XDP generator.
func (r *runner) kernelPaced() bool { return len(r.mix.Sizes()) == 1 && r.src.Paces() }

// burst is the most frames a paced trial at rate puts back to back.
func (r *runner) burst(rate float64) uint64 {
	if r.kernelPaced() {
		return gen.MaxPacedBurst
	}
	return rfc2544.Burst(rate, rfc2544.FineSlice)
}

func (r *runner) snapshot() (uint64, cpuUse, error) {
	c, err := r.t.Sink.Count()
	if err != nil {
		return 0, cpuUse{}, err
	}
	var u cpuUse
	if u.sys, err = topo.ReadSystemCPU(); err != nil {
		return 0, u, err
	}
	u.fwd, err = r.t.ForwarderCPU()
	return c, u, err
}

// drain polls the sink until it stops growing and returns its count.
func drain(s *gen.Sink) (uint64, error) {
	c, err := s.Count()
	if err != nil {
		return 0, err
	}
	start, last := time.Now(), time.Now()
	for time.Since(last) < drainQuiet && time.Since(start) < drainMax {
		time.Sleep(5 * time.Millisecond)
		n, err := s.Count()
		if err != nil {
			return 0, err
		}
		if n != c {
			c, last = n, time.Now()
		}
	}
	return c, nil
}

// warmUp sends a few frames unpaced and fails when none arrive: a
// datapath that delivers nothing has no throughput worth searching.
func (r *runner) warmUp() error {
	c0, err := r.t.Sink.Count()
	if err != nil {
		return err
	}
	sent, _, err := r.offer(0, 2000, 2*time.Second, false)
	if err != nil {
		return err
	}
	c1, err := drain(r.t.Sink)
	if err != nil {
		return err
	}
	if c1 == c0 {
		return fmt.Errorf("none of %d warm-up frames from %s reached %s", sent, r.t.A.IP, r.t.B.IP)
	}
	return nil
}
