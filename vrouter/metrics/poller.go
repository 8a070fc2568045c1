package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// minRatioWindow is the shortest interval xvr_poller_busy_ratio is computed
// over: a scrape sooner than this after the one that last computed it
// reports that value again.
const minRatioWindow = time.Second

// BusySource is one poller's time accounting (*dataplane.Poller satisfies
// it): time spent in rounds that received frames, and time running.
type BusySource interface {
	Busy() (busy, running time.Duration)
}

// PollerCollector is a prometheus.Collector of the pollers' busy time,
// labelled poller="0".. in the order given:
//
//   - xvr_poller_busy_seconds_total and xvr_poller_running_seconds_total,
//     counters whose rate() ratio is the busy ratio over any window;
//   - xvr_poller_busy_ratio, a gauge: the busy ratio since the scrape that
//     last computed it (at least minRatioWindow earlier; the first scrape
//     gives the ratio since the poller started).
type PollerCollector struct {
	pollers              []BusySource
	busy, running, ratio *prometheus.Desc

	mu   sync.Mutex
	last []busySample // per poller: the sample the ratio was last computed at
}

type busySample struct {
	busy, running time.Duration
	ratio         float64
	valid         bool
}

// NewPollerCollector returns a collector of pollers.
func NewPollerCollector(pollers []BusySource) *PollerCollector {
	return &PollerCollector{pollers: pollers, last: make([]busySample, len(pollers)),
		busy:    desc("xvr_poller_busy_seconds_total", "Time the poller spent on rounds that received frames.", "poller"),
		running: desc("xvr_poller_running_seconds_total", "Time the poller has been running (busy, spinning idle, asleep).", "poller"),
		ratio: desc("xvr_poller_busy_ratio",
			"Fraction of the poller's time spent on rounds that received frames, since the previous scrape (at least 1 s).", "poller"),
	}
}

// Describe sends every metric's description.
func (c *PollerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.busy
	ch <- c.running
	ch <- c.ratio
}

// Collect reads every poller's clock.
func (c *PollerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.pollers {
		busy, running := p.Busy()
		l := strconv.Itoa(i)
		send(ch, c.busy, prometheus.CounterValue, busy.Seconds(), l)
		send(ch, c.running, prometheus.CounterValue, running.Seconds(), l)
		send(ch, c.ratio, prometheus.GaugeValue, c.last[i].update(busy, running), l)
	}
}

// update returns the ratio since s, moving s to (busy, running) when that
// is at least minRatioWindow later or s has no ratio yet.
func (s *busySample) update(busy, running time.Duration) float64 {
	d := running - s.running
	if s.valid && d < minRatioWindow || d <= 0 {
		return s.ratio
	}
	r := float64(busy-s.busy) / float64(d)
	*s = busySample{busy: busy, running: running, ratio: min(max(r, 0), 1), valid: true}
	return s.ratio
}
