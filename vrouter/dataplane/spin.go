package dataplane

// minSpin is the fewest empty rounds an adaptive poller spins before it
// sleeps.
const minSpin = 16

// spinBudget is how many empty rounds a poller busy-polls before it sleeps
// in poll(2). Adaptive (the default), it halves each time a whole budget
// passes without a frame and doubles, up to max, when frames arrive in its
// second half: spinning only pays when frames come back while the poller
// still holds the CPU. When they cannot — the other end of the path is a
// thread waiting for this core, as with two xvrds on one core across nodes
// — every spin is CPU taken from it, and the budget falls to minSpin.
// Fixed, it is always max (the behaviour before adaptation).
type spinBudget struct {
	n, max int
	fixed  bool
	spent  bool // the current idle period has used up n
}

func newSpinBudget(max int, fixed bool) spinBudget {
	return spinBudget{n: max, max: max, fixed: fixed}
}

// sleepAfter reports whether the poller should sleep after idle empty
// rounds in a row; it shrinks the budget once per idle period that uses it
// up.
func (s *spinBudget) sleepAfter(idle int) bool {
	if idle <= s.n {
		return false
	}
	if !s.spent && !s.fixed {
		s.n = max(s.n/2, min(minSpin, s.max))
	}
	s.spent = true
	return true
}

// received is called for a round that received frames after idle empty
// rounds: a late catch (the second half of the budget, before sleeping)
// doubles the budget.
func (s *spinBudget) received(idle int) {
	if !s.spent && !s.fixed && idle > s.n/2 && idle <= s.n {
		s.n = min(s.max, 2*s.n)
	}
	s.spent = false
}
