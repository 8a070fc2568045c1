package flowtable

// Delete removes the flow r's entry belongs to (both entries), e.g. on a TCP
// RST. False if r is stale (already removed). Safe for concurrent use.
func (t *Table) Delete(r Ref) bool {
	if uint64(r.Index()) >= uint64(len(t.slots)) || r.ctl()&stateMask != stateLive {
		return false
	}
	if !t.remove(r.Index(), r.ctl()) {
		return false
	}
	t.dels.Add(1)
	return true
}

// blockSlots is the unit of a sweep: Blocks and AgeBlocks count in blocks
// of this many slots, and a block holding no forward entry costs a sweep
// one load.
const blockSlots = 1024

// Age removes every flow idle (in both directions) for longer than its
// timeout at tick now, frees their SNAT ports, and returns how many it
// removed. It walks the whole table without blocking readers; call it
// from one sweeper goroutine (concurrent calls are safe, just wasted).
// A sweeper that shares a CPU with a poller spreads the walk with
// AgeBlocks instead.
func (t *Table) Age(now uint32) int {
	return t.AgeBlocks(now, 0, t.Blocks())
}

// Blocks is how many sweep blocks the table has.
func (t *Table) Blocks() int { return len(t.fwdIn) }

// AgeBlocks is Age over blocks [from, from+n) only (clamped to Blocks), so
// that a sweep can be cut into pieces short enough not to hold up a poller
// sharing the CPU: a full block of a default table takes ~15 µs, an empty
// one ~1 ns.
func (t *Table) AgeBlocks(now uint32, from, n int) int {
	removed := 0
	t.eachInBlocks(from, n, func(i uint32) bool {
		if c, ok := t.idle(i, now); ok && t.remove(i, c) {
			removed++
		}
		return true
	})
	t.aged.Add(uint64(removed))
	return removed
}

// eachInBlocks calls fn with every slot index of the blocks [from, from+n)
// (clamped to Blocks) that hold a forward entry, in order, until fn
// returns false.
func (t *Table) eachInBlocks(from, n int, fn func(i uint32) bool) {
	from = max(from, 0)
	end := min(from+max(n, 0), len(t.fwdIn))
	for b := from; b < end; b++ {
		if t.fwdIn[b].Load() == 0 {
			continue
		}
		for i := b * blockSlots; i < min((b+1)*blockSlots, len(t.slots)); i++ {
			if !fn(uint32(i)) {
				return
			}
		}
	}
}

// idle reports whether slot i holds a live forward entry whose flow has
// been idle past its timeout, and the control word it was read under.
func (t *Table) idle(i, now uint32) (uint32, bool) {
	s := &t.slots[i]
	c := s.ctl.Load()
	if c&stateMask != stateLive {
		return 0, false
	}
	meta, j, last := s.meta.Load(), uint32(s.a0.Load()>>32), s.last.Load()
	if meta&metaFwd == 0 || int(j) >= len(t.slots) || int32(now-last) <= int32(t.minTimeout) {
		return 0, false // the forward entry alone keeps its flow: skip the partner's cache miss
	}
	p := &t.slots[j]
	meta |= p.meta.Load()
	ok := t.expired(meta, last, now) && t.expired(meta, p.last.Load(), now)
	return c, ok && s.ctl.Load() == c
}

// expired reports whether an entry last seen at last is idle past the
// timeout that meta's closed bit selects.
func (t *Table) expired(meta, last, now uint32) bool {
	timeout := t.cfg.IdleTimeout
	if meta&metaClosed != 0 {
		timeout = t.cfg.ClosedTimeout
	}
	return int32(now-last) > int32(timeout)
}

// remove deletes slot i's flow if slot i still has control word c.
func (t *Table) remove(i, c uint32) bool {
	s := &t.slots[i]
	meta, a0 := s.meta.Load(), s.a0.Load()
	j := uint32(a0 >> 32)
	if s.ctl.Load() != c || int(j) >= len(t.slots) {
		return false
	}
	p := &t.slots[j]
	hi, hj := i-meta&distMask, j-p.meta.Load()&distMask
	if hi >= uint32(t.n) || hj >= uint32(t.n) {
		return false // j was reused meanwhile: i is gone too
	}
	t.lock2(hi, hj)
	ok := s.ctl.CompareAndSwap(c, c&^stateMask|stateBusy)
	if ok {
		t.removeLocked(i, c, j, hi, hj)
	}
	t.unlock2(hi, hj)
	return ok
}

// removeLocked frees busy slot i (control word c) and its partner j, with
// both homes locked.
func (t *Table) removeLocked(i, c, j, hi, hj uint32) {
	s, p := &t.slots[i], &t.slots[j]
	pc := p.ctl.Load()
	p.ctl.Store(pc&^stateMask | stateBusy)
	fwd, fi := s, i
	if s.meta.Load()&metaFwd == 0 {
		fwd, fi = p, j
	}
	t.freePort(fwd)
	t.fwdIn[fi/blockSlots].Add(-1)
	p.ctl.Store(pc&^stateMask | stateFree)
	s.ctl.Store(c&^stateMask | stateFree)
	t.shrinkDist(hi)
	if hj != hi {
		t.shrinkDist(hj)
	}
	t.live.Add(-1)
}

// freePort returns a forward NATSrc entry's port to its SNAT pool.
func (t *Table) freePort(s *slot) {
	a := unpackAction(s.a0.Load(), s.a1.Load())
	if a.Kind != NATSrc {
		return
	}
	for _, n := range t.cfg.SNAT {
		if n != nil && n.IP == a.IP {
			n.Free(uint8(s.a0.Load()), a.Port)
			return
		}
	}
}

// shrinkDist recomputes h's max distance after a removal; the caller holds
// h's lock, so the live entries homed at h cannot change.
func (t *Table) shrinkDist(h uint32) {
	w := &t.slots[h].home
	v := w.Load()
	d := uint32(0)
	for k := h + 1; k <= h+v&distMask; k++ {
		s := &t.slots[k]
		if s.ctl.Load()&stateMask == stateLive && s.meta.Load()&distMask == k-h {
			d = k - h
		}
	}
	w.Store(v&^distMask | d)
}

// Sweeper ages a table a piece at a time: each Step sweeps the next
// 1/pieces of its blocks, so pieces Steps make one whole Age. xvrd steps 64
// times a second: every flow is still looked at once a second, and no step
// holds the CPU for more than a sixty-fourth of a full sweep (~0.3 ms at
// the default size full, ~20 ns empty) where one Age would hold it ~15 ms,
// far past what a fill ring absorbs when the sweeper shares a poller's CPU.
type Sweeper struct {
	t            *Table
	pieces, next int
}

// NewSweeper returns a sweeper over t in pieces (at least 1) steps.
func (t *Table) NewSweeper(pieces int) *Sweeper {
	return &Sweeper{t: t, pieces: max(pieces, 1)}
}

// Step ages the next piece at tick now and returns how many flows it removed.
func (s *Sweeper) Step(now uint32) int {
	per := (s.t.Blocks() + s.pieces - 1) / s.pieces
	n := s.t.AgeBlocks(now, s.next, per)
	if s.next += per; s.next >= s.t.Blocks() {
		s.next = 0
	}
	return n
}
