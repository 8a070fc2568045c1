package rfc2544

import (
	"errors"
	"math"
	"testing"
	"time"
)

// device is a fake forwarder: it delivers everything up to capacity
// frames/s and loses the excess; jitter adds a few lost frames at any rate
// above noiseFrom.
type device struct {
	capacity, gen float64
	noiseFrom     float64
	trials        int
}

func (d *device) trial(rate float64) (Outcome, error) {
	d.trials++
	if math.IsInf(rate, 1) || rate > d.gen {
		rate = d.gen
	}
	sent := uint64(rate) // one-second trial
	recv := min(sent, uint64(d.capacity))
	if d.noiseFrom > 0 && rate > d.noiseFrom && recv > 3 {
		recv -= 3
	}
	return Outcome{Offered: rate, Sent: sent, Received: recv}, nil
}

func TestSearchConverges(t *testing.T) {
	for _, capacity := range []float64{1e3, 250e3, 499e3, 2.5e6, 4.99e6} {
		d := &device{capacity: capacity, gen: 5e6}
		r, err := Search(Config{Max: 5e6, Resolution: 0.01, MaxTrials: 30}, d.trial)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rate > capacity || r.Rate < capacity*0.98 {
			t.Errorf("capacity %.0f: found %.0f, want within 2 %% below", capacity, r.Rate)
		}
		if r.AtMax || r.Best.Lost() != 0 || len(r.Trials) != d.trials {
			t.Errorf("capacity %.0f: result %+v", capacity, r)
		}
	}
}

func TestSearchHintSavesTrials(t *testing.T) {
	plain, hinted := &device{capacity: 300e3, gen: 5e6}, &device{capacity: 300e3, gen: 5e6}
	c := Config{Max: 5e6, Resolution: 0.02, MaxTrials: 30}
	if _, err := Search(c, plain.trial); err != nil {
		t.Fatal(err)
	}
	c.Hint = 305e3
	r, err := Search(c, hinted.trial)
	if err != nil || hinted.trials >= plain.trials || r.Rate > 300e3 {
		t.Fatalf("hinted: %d trials (plain %d), rate %.0f, err %v", hinted.trials, plain.trials, r.Rate, err)
	}
}

func TestSearchAtMaxAndBounds(t *testing.T) {
	d := &device{capacity: 9e6, gen: 5e6}
	r, err := Search(Config{Max: 5e6, Resolution: 0.01, MaxTrials: 10}, d.trial)
	if err != nil || !r.AtMax || r.Rate != 5e6 || d.trials != 1 {
		t.Fatalf("generator-bound: %+v, %d trials, %v", r, d.trials, err)
	}
	d = &device{capacity: 1e3, gen: 5e6}
	r, err = Search(Config{Max: 5e6, Resolution: 1e-6, MaxTrials: 5}, d.trial)
	if err != nil || d.trials != 5 {
		t.Fatalf("MaxTrials 5: %d trials, %v", d.trials, err)
	}
	if r.Rate != 0 {
		t.Fatalf("nothing passed in 5 halvings from 5M but rate %.0f", r.Rate)
	}
}

func TestSearchLossTolerance(t *testing.T) {
	d := &device{capacity: 1e6, gen: 5e6, noiseFrom: 1}
	r, _ := Search(Config{Max: 5e6, Resolution: 0.01, MaxTrials: 20}, d.trial)
	if r.Rate != 0 {
		t.Fatalf("zero-loss search passed a lossy trial: %.0f", r.Rate)
	}
	d = &device{capacity: 1e6, gen: 5e6, noiseFrom: 1}
	r, _ = Search(Config{Max: 5e6, Resolution: 0.01, MaxTrials: 20, LossTolerance: 1e-4}, d.trial)
	if r.Rate < 0.98e6 || r.Rate > 1e6 {
		t.Fatalf("tolerant search: %.0f", r.Rate)
	}
}

func TestSearchErrors(t *testing.T) {
	bad := []Config{{}, {Max: 1, Resolution: 0, MaxTrials: 1}, {Max: math.Inf(1), Resolution: 0.1, MaxTrials: 1},
		{Max: 1, Resolution: 0.1}, {Max: 1, Resolution: 0.1, MaxTrials: 1, LossTolerance: 1}}
	for _, c := range bad {
		if _, err := Search(c, (&device{}).trial); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	boom := errors.New("boom")
	_, err := Search(Config{Max: 1e6, Resolution: 0.1, MaxTrials: 3}, func(float64) (Outcome, error) { return Outcome{}, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("trial error lost: %v", err)
	}
	_, err = Search(Config{Max: 1e6, Resolution: 0.1, MaxTrials: 3}, func(float64) (Outcome, error) { return Outcome{}, nil })
	if !errors.Is(err, ErrNoSent) {
		t.Fatalf("empty trial: %v", err)
	}
}

func TestPaceRate(t *testing.T) {
	var got uint64
	send := func(n uint64) (uint64, error) { got += n; return n, nil }
	const rate, total = 200e3, 40_000 // 0.2 s
	for _, slice := range []time.Duration{25 * time.Millisecond, FineSlice} {
		got = 0
		var biggest uint64
		sent, took, err := Pace(rate, total, time.Second, slice, func(n uint64) (uint64, error) {
			biggest = max(biggest, n)
			return send(n)
		})
		if err != nil || sent != total || got != total {
			t.Fatalf("slice %v: sent %d (send saw %d) of %d: %v", slice, sent, got, total, err)
		}
		if achieved := float64(sent) / took.Seconds(); achieved > rate*1.05 || achieved < rate*0.8 {
			t.Fatalf("slice %v: paced at %.0f/s, want about %.0f/s (took %v)", slice, achieved, rate, took)
		}
		if b := Burst(rate, slice); biggest > 4*b {
			t.Fatalf("slice %v: a send of %d frames, over 4 bursts of %d", slice, biggest, b)
		}
	}
}

func TestPaceLimitAndUnlimited(t *testing.T) {
	slow := func(n uint64) (uint64, error) { time.Sleep(time.Millisecond); return min(n, 10), nil }
	sent, took, err := Pace(1e9, 1e12, 50*time.Millisecond, FineSlice, slow)
	if err != nil || took > 500*time.Millisecond || sent == 0 {
		t.Fatalf("limit: sent %d in %v, %v", sent, took, err)
	}
	var calls int
	fast := func(n uint64) (uint64, error) { calls++; return n, nil }
	sent, _, err = Pace(math.Inf(1), 3*maxChunk+5, time.Second, FineSlice, fast)
	if err != nil || sent != 3*maxChunk+5 || calls != 4 {
		t.Fatalf("unlimited: sent %d in %d calls, %v", sent, calls, err)
	}
}

func TestIMIX(t *testing.T) {
	if got := IMIX.AvgSize(); math.Abs(got-(7*64+4*576+1500)/12.0) > 1e-9 {
		t.Fatalf("IMIX average %v", got)
	}
	if IMIX.Name() != "IMIX" || Fixed(64).Name() != "64" {
		t.Fatalf("names %q %q", IMIX.Name(), Fixed(64).Name())
	}
	s, err := NewSplitter(IMIX)
	if err != nil {
		t.Fatal(err)
	}
	var per [3]uint64
	var total uint64
	for i := range 1000 {
		n := uint64(i%37 + 1) // odd chunkings
		for j, c := range s.Split(n) {
			per[j] += c
		}
		total += n
	}
	for j, p := range IMIX {
		want := total * uint64(p.Weight) / 12
		if per[j] != want {
			t.Errorf("part %d: %d frames of %d, want %d", j, per[j], total, want)
		}
	}
	if _, err := NewSplitter(Mix{{64, 0}}); err == nil {
		t.Fatal("zero weight accepted")
	}
}
