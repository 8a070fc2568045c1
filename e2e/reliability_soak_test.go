package e2e

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// Soak bounds. make soak sets XVR_SOAK_DURATION (default 5m there); the
// default here keeps the soak in make test short.
const (
	soakDefault     = 20 * time.Second
	soakMax         = 9*time.Minute + 30*time.Second
	soakPods        = 4
	soakChurners    = 2
	soakRSSBound    = 16 << 10 // KiB of growth from the warmed-up baseline
	soakGoroutines  = 10       // more goroutines than the baseline
	soakFDs         = 5        // more fds than the baseline
	soakTransferMiB = 8
)

// soakSample is one look at xvrd during the soak.
type soakSample struct {
	procSample
	goroutines float64 // go_goroutines from /metrics; NaN when not exposed
	cycles     int64   // churn ADD/DEL cycles so far
}

// TestReliabilitySoak runs mixed traffic (UDP probes every 10 ms between
// four 3-interface pods on every network, TCP transfers, pings) plus pod
// churn (two workers adding and deleting 3-interface pods) against one xvrd
// for XVR_SOAK_DURATION (20 s unless set, at most 9m30s), sampling xvrd's
// RSS, threads, fds and go_goroutines. After the churn stops, they must be
// within bounds of the warmed-up baseline (RSS +16 MiB, goroutines +10,
// fds +5), the probes must have been answered (at least 90 %), every
// transfer intact, and nothing of the churned pods left. With XVR_SOAK_REPORT
// it writes a markdown report there.
func TestReliabilitySoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: minutes of traffic and churn; skipped in -short")
	}
	d := soakDefault
	if s := os.Getenv("XVR_SOAK_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 || d > soakMax {
			t.Fatalf("XVR_SOAK_DURATION %q: want a duration in (0, %v]", s, soakMax)
		}
	}
	rn := newRelNode(t)
	rn.apply(t, twoVNs)
	t.Run("soak", func(t *testing.T) { soak(t, rn, d) })
}

func soak(t *testing.T, rn *relNode, d time.Duration) {
	pods := make([]*cniPod, soakPods)
	for i := range pods {
		pods[i] = rn.addPod(t, "default", fmt.Sprintf("soak-%d", i), "vn-left-1,vn-right-1")
		startEcho(t, pods[i].ns.Name)
	}
	var probers []*prober
	for i, p := range pods {
		next := pods[(i+1)%len(pods)]
		for _, ifn := range []string{"eth0", "eth1", "eth2"} {
			probers = append(probers, startProber(t, p.name+"->"+next.name+"/"+ifn, p.ns.Name, next.addr(t, ifn),
				10*time.Millisecond, d+time.Minute))
		}
	}
	for _, pr := range probers {
		pr.waitAnswered(t, 10*time.Second)
	}
	kept := rn.state(t)
	pid := xvrdPID(t, rn.socket)
	for i := range soakChurners * 4 {
		rn.setPod(t, "default", fmt.Sprintf("soak-churn-%d", i), "vn-left-1,vn-right-1")
	}

	start := time.Now()
	var cycles atomic.Int64
	var lat latencies
	stop := make(chan struct{})
	errs := make(chan error, soakChurners)
	nss := newPodNamespaces(t)
	for w := range soakChurners {
		cfg := libcni.NewCNIConfigWithCacheDir(rn.cfg.Path, t.TempDir(), nil)
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				took, err := rn.cycle(t, cfg, nss, fmt.Sprintf("soak-churn-%d", w*4+i%4))
				if err != nil {
					errs <- err
					return
				}
				lat.add(took)
				cycles.Add(1)
			}
		}()
	}
	sample := func() soakSample {
		return soakSample{procSample: sampleProc(t, pid), goroutines: rn.goroutines(t), cycles: cycles.Load()}
	}
	every := max(d/40, time.Second)
	var samples []soakSample
	var baseline soakSample
	transfers, pings := 0, 0
	for time.Since(start) < d {
		s := sample()
		samples = append(samples, s)
		if baseline.rssKB == 0 && time.Since(start) >= d/10 {
			baseline = s // warmed up: UMEM frames touched, churn running
		}
		if len(samples)%4 == 0 { // now and then a TCP transfer and pings on every network
			a, b := pods[transfers%len(pods)], pods[(transfers+1)%len(pods)]
			b.ns.TCPTransfer(t, a.ns, netip.MustParseAddr(b.addr(t, "eth1")), 5400+transfers%100, soakTransferMiB<<20)
			transfers++
			for _, ifn := range []string{"eth0", "eth2"} {
				mustPingNS(t, a, b.addr(t, ifn))
				pings++
			}
		}
		time.Sleep(min(every, time.Until(start.Add(d))))
	}
	close(stop)
	for range soakChurners {
		if err := <-errs; err != nil {
			t.Fatalf("churn: %v\nxvrd log:\n%s", err, tail(rn.proc.Output(), 3000))
		}
	}
	final := sample()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) &&
		(final.fds > baseline.fds || final.goroutines > baseline.goroutines); {
		time.Sleep(500 * time.Millisecond) // let deleted ports' sockets and goroutines go
		final = sample()
	}
	samples = append(samples, final)
	if baseline.rssKB == 0 {
		baseline = samples[0]
	}
	var sent, answered int
	for _, pr := range probers {
		s, a := pr.counts()
		sent, answered = sent+s, answered+a
	}
	r := soakReport{d: d, took: time.Since(start), samples: samples, baseline: baseline, final: final,
		cycles: cycles.Load(), lat: lat.sorted(), sent: sent, answered: answered, transfers: transfers, pings: pings}
	t.Log("\n" + r.String())
	if path := os.Getenv("XVR_SOAK_REPORT"); path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(r.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if g := final.rssKB - baseline.rssKB; g > soakRSSBound {
		t.Errorf("xvrd VmRSS grew %d KiB from the warmed-up baseline, over %d KiB", g, soakRSSBound)
	}
	if math.IsNaN(final.goroutines) {
		t.Errorf("xvrd's /metrics has no go_goroutines: its registry lacks the Go collector")
	} else if final.goroutines > baseline.goroutines+soakGoroutines {
		t.Errorf("xvrd goroutines went from %v to %v", baseline.goroutines, final.goroutines)
	}
	if final.fds > baseline.fds+soakFDs {
		t.Errorf("xvrd fds went from %d to %d", baseline.fds, final.fds)
	}
	if answered < sent*9/10 {
		t.Errorf("%d of %d probes answered during the soak", answered, sent)
	}
	if r.cycles == 0 {
		t.Error("no churn cycle completed")
	}
	if left := nss.leftovers(t); len(left) != 0 {
		t.Errorf("churn namespaces left: %v", left)
	}
	sameState(t, kept, rn.state(t))
}

// goroutines is xvrd's go_goroutines, or NaN when /metrics has none.
func (cn *cniNode) goroutines(t *testing.T) float64 {
	t.Helper()
	if v, ok := cn.scrape(t).first("go_goroutines"); ok {
		return v
	}
	return math.NaN()
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
}

func (l *latencies) sorted() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.d)
	slices.Sort(out)
	return out
}

type soakReport struct {
	d, took          time.Duration
	samples          []soakSample
	baseline, final  soakSample
	cycles           int64
	lat              []time.Duration
	sent, answered   int
	transfers, pings int
}

func (r soakReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# xvrd soak report\n\n")
	fmt.Fprintf(&b, "- date: %s\n- machine: %s\n- go: %s\n", time.Now().UTC().Format(time.RFC3339), machine(), runtime.Version())
	fmt.Fprintf(&b, "- traffic phase: %v (ran %v); %d long-lived pods x 3 interfaces; %d churn workers\n",
		r.d, r.took.Round(time.Second), soakPods, soakChurners)
	fmt.Fprintf(&b, "- churn: %d ADD+DEL cycles of 3-interface pods", r.cycles)
	if n := len(r.lat); n > 0 {
		fmt.Fprintf(&b, ", ADD p50 %v p99 %v max %v", r.lat[n/2].Round(time.Millisecond),
			r.lat[(n-1)*99/100].Round(time.Millisecond), r.lat[n-1].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "\n- UDP probes: %d sent, %d answered (%.2f %%); %d TCP transfers of %d MiB intact; %d pings\n\n",
		r.sent, r.answered, 100*float64(r.answered)/math.Max(1, float64(r.sent)), r.transfers, soakTransferMiB, r.pings)
	fmt.Fprintf(&b, "| | VmRSS KiB | threads | fds | go_goroutines |\n|---|---|---|---|---|\n")
	for _, s := range []struct {
		name string
		s    soakSample
	}{{"first sample", r.samples[0]}, {"baseline (warmed up)", r.baseline}, {"peak RSS", peak(r.samples)}, {"final (churn stopped)", r.final}} {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %v |\n", s.name, s.s.rssKB, s.s.threads, s.s.fds, s.s.goroutines)
	}
	fmt.Fprintf(&b, "\nGrowth from baseline to final: VmRSS %+d KiB (bound %d), fds %+d (bound %d), goroutines %+v (bound %d).\n",
		r.final.rssKB-r.baseline.rssKB, soakRSSBound, r.final.fds-r.baseline.fds, soakFDs,
		r.final.goroutines-r.baseline.goroutines, soakGoroutines)
	fmt.Fprintf(&b, "\nSamples (s since start: RSS KiB / fds / goroutines / cycles):")
	t0 := r.samples[0].at
	for i, s := range r.samples {
		if i%8 == 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, " %.0f:%d/%d/%v/%d", s.at.Sub(t0).Seconds(), s.rssKB, s.fds, s.goroutines, s.cycles)
	}
	b.WriteString("\n")
	return b.String()
}

func peak(ss []soakSample) soakSample {
	p := ss[0]
	for _, s := range ss {
		if s.rssKB > p.rssKB {
			p = s
		}
	}
	return p
}

// machine describes the host: kernel, CPUs and their model.
func machine() string {
	kernel, _ := exec.Command("uname", "-sr").Output()
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs (%s)", strings.TrimSpace(string(kernel)), runtime.NumCPU(), model)
}
