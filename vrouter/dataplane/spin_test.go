package dataplane

import "testing"

// idlePeriod plays one idle period of empty rounds against s and returns
// whether it ended asleep and how many rounds it spun first.
func idlePeriod(s *spinBudget, empty int) (slept bool, spun int) {
	for idle := 1; idle <= empty; idle++ {
		if s.sleepAfter(idle) {
			s.received(empty)
			return true, idle - 1
		}
	}
	s.received(empty)
	return false, empty
}

func TestSpinBudgetAdapts(t *testing.T) {
	s := newSpinBudget(4096, false)
	// Traffic that never comes back while the poller spins (its sender
	// waits for this core): the budget halves per idle period, to minSpin.
	want := []int{4096, 2048, 1024}
	for i, w := range want {
		if slept, spun := idlePeriod(&s, 1<<20); !slept || spun != w {
			t.Fatalf("period %d: slept %v after %d rounds, want %d", i, slept, spun, w)
		}
	}
	for i := 0; i < 20; i++ {
		idlePeriod(&s, 1<<20)
	}
	if s.n != minSpin {
		t.Fatalf("budget %d after long idle, want %d", s.n, minSpin)
	}
	// Frames in the first half of the budget leave it alone; in the second
	// half they double it, up to max.
	idlePeriod(&s, 3)
	if s.n != minSpin {
		t.Fatalf("early catch changed the budget to %d", s.n)
	}
	for i := 0; i < 20; i++ {
		if slept, _ := idlePeriod(&s, s.n); slept {
			t.Fatalf("slept on a catch at the end of the budget %d", s.n)
		}
	}
	if s.n != 4096 {
		t.Fatalf("budget %d after late catches, want max 4096", s.n)
	}
	// Busy rounds (no idle round before) change nothing.
	s.received(0)
	if s.n != 4096 || s.spent {
		t.Fatalf("busy round: %+v", s)
	}
}

func TestSpinBudgetFixedAndZero(t *testing.T) {
	f := newSpinBudget(4096, true)
	for i := 0; i < 5; i++ {
		if slept, spun := idlePeriod(&f, 1<<20); !slept || spun != 4096 {
			t.Fatalf("fixed: slept %v after %d rounds, want 4096", slept, spun)
		}
	}
	z := newSpinBudget(0, false) // sleep after every empty round
	for i := 0; i < 3; i++ {
		if slept, spun := idlePeriod(&z, 10); !slept || spun != 0 {
			t.Fatalf("zero: slept %v after %d rounds", slept, spun)
		}
	}
	small := newSpinBudget(8, false) // max below minSpin stays the floor
	idlePeriod(&small, 100)
	idlePeriod(&small, 100)
	if small.n != 8 {
		t.Fatalf("budget %d, want 8", small.n)
	}
}
