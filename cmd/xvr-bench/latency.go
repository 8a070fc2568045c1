package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/xvr-project/xvr/bench/report"
)

// pingInterval is ping's -i: 1 ms between probes (root may go below 2 ms).
const pingInterval = "0.001"

var rttRe = regexp.MustCompile(`time=([0-9.]+) ms`)

// latency pings B from A (count probes, 1 ms apart) while the generator
// offers load frames/s of the mix, and summarises the RTTs.
func (r *runner) latency(load float64, count int) (*report.Latency, error) {
	if err := r.warmPing(); err != nil {
		return nil, err
	}
	d := time.Duration(count)*time.Millisecond + 2*time.Second
	loadErr := make(chan error, 1)
	go func() {
		_, _, err := r.offer(load, uint64(load*d.Seconds()), d, true)
		loadErr <- err
	}()
	out, perr := r.ping(count, d+3*time.Second)
	lerr := <-loadErr
	if lerr != nil {
		return nil, fmt.Errorf("latency load: %w", lerr)
	}
	if perr != nil && len(out) == 0 {
		return nil, perr
	}
	l := summarize(parseRTTs(out), count)
	l.LoadPPS = load
	return l, nil
}

// warmPing resolves the neighbours of the path with 3 pings, tried up to 3
// times: one ARP request lost right after an overload trial (the kernel
// retries it only after 1 s) would otherwise fail the whole size.
func (r *runner) warmPing() error {
	var err error
	for try := 0; try < 3; try++ {
		if _, err = r.ping(3, 5*time.Second); err == nil {
			return nil
		}
	}
	return fmt.Errorf("warm-up ping, 3 tries: %w", err)
}

// ping runs ping in A's namespace on all CPUs; its exit status is non-zero
// when probes were lost, which the summary reports instead.
func (r *runner) ping(count int, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	argv := append([]string{"-c", allCPUs(), "ip"}, r.t.A.NS.ExecArgs("ping", "-n", "-c", strconv.Itoa(count),
		"-i", pingInterval, "-W", "1", r.t.B.IP.Addr().String())...)
	out, err := exec.CommandContext(ctx, "taskset", argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ping: %w: %s", err, tail(string(out)))
	}
	return string(out), nil
}

// parseRTTs returns every "time=X ms" of ping's output, in microseconds.
func parseRTTs(out string) []float64 {
	var us []float64
	for _, m := range rttRe.FindAllStringSubmatch(out, -1) {
		if v, err := strconv.ParseFloat(m[1], 64); err == nil {
			us = append(us, v*1000)
		}
	}
	return us
}

// summarize returns the percentiles of rtts (nearest rank).
func summarize(rtts []float64, probes int) *report.Latency {
	l := &report.Latency{Probes: probes, Lost: max(0, probes-len(rtts))}
	if len(rtts) == 0 {
		return l
	}
	s := slices.Clone(rtts)
	slices.Sort(s)
	l.P50, l.P99, l.P999, l.MaxMicros = pct(s, 50), pct(s, 99), pct(s, 99.9), s[len(s)-1]
	return l
}

// pct is the nearest-rank p-th percentile of sorted s.
func pct(s []float64, p float64) float64 {
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func tail(s string) string {
	if len(s) > 300 {
		return s[len(s)-300:]
	}
	return s
}
