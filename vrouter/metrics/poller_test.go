package metrics

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xvr-project/xvr/vrouter/dataplane"
)

var _ BusySource = (*dataplane.Poller)(nil)

// fakeClock is a poller clock the test moves by hand.
type fakeClock struct {
	mu            sync.Mutex
	busy, running time.Duration
}

func (f *fakeClock) Busy() (time.Duration, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.busy, f.running
}

func (f *fakeClock) advance(busy, running time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busy += busy
	f.running += running
}

func TestPollerCollector(t *testing.T) {
	p0, p1 := &fakeClock{}, &fakeClock{}
	c := NewPollerCollector([]BusySource{p0, p1})
	p0.advance(time.Second, 4*time.Second) // since start: 0.25
	compare := func(want string) {
		t.Helper()
		if err := testutil.CollectAndCompare(c, strings.NewReader(want),
			"xvr_poller_busy_seconds_total", "xvr_poller_running_seconds_total", "xvr_poller_busy_ratio"); err != nil {
			t.Fatal(err)
		}
	}
	compare(`
# HELP xvr_poller_busy_seconds_total Time the poller spent on rounds that received frames.
# TYPE xvr_poller_busy_seconds_total counter
xvr_poller_busy_seconds_total{poller="0"} 1
xvr_poller_busy_seconds_total{poller="1"} 0
# HELP xvr_poller_running_seconds_total Time the poller has been running (busy, spinning idle, asleep).
# TYPE xvr_poller_running_seconds_total counter
xvr_poller_running_seconds_total{poller="0"} 4
xvr_poller_running_seconds_total{poller="1"} 0
# HELP xvr_poller_busy_ratio Fraction of the poller's time spent on rounds that received frames, since the previous scrape (at least 1 s).
# TYPE xvr_poller_busy_ratio gauge
xvr_poller_busy_ratio{poller="0"} 0.25
xvr_poller_busy_ratio{poller="1"} 0
`)
	// 2 s more, fully busy on 0, half on 1: the ratio is over those 2 s.
	p0.advance(2*time.Second, 2*time.Second)
	p1.advance(time.Second, 2*time.Second)
	ratios := `
# HELP xvr_poller_busy_ratio Fraction of the poller's time spent on rounds that received frames, since the previous scrape (at least 1 s).
# TYPE xvr_poller_busy_ratio gauge
xvr_poller_busy_ratio{poller="0"} 1
xvr_poller_busy_ratio{poller="1"} 0.5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(ratios), "xvr_poller_busy_ratio"); err != nil {
		t.Fatal(err)
	}
	// A scrape 100 ms later repeats the ratio rather than computing one
	// over a window too short to mean anything.
	p0.advance(0, 100*time.Millisecond)
	p1.advance(0, 100*time.Millisecond)
	if err := testutil.CollectAndCompare(c, strings.NewReader(ratios), "xvr_poller_busy_ratio"); err != nil {
		t.Fatal(err)
	}
	// 1 s idle (from the last computed sample: 1.1 s, no busy time).
	p0.advance(0, time.Second)
	p1.advance(0, time.Second)
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP xvr_poller_busy_ratio Fraction of the poller's time spent on rounds that received frames, since the previous scrape (at least 1 s).
# TYPE xvr_poller_busy_ratio gauge
xvr_poller_busy_ratio{poller="0"} 0
xvr_poller_busy_ratio{poller="1"} 0
`), "xvr_poller_busy_ratio"); err != nil {
		t.Fatal(err)
	}
}
