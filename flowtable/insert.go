package flowtable

import "runtime"

// Insert creates a flow: the forward entry (key fwd, action fa) and the
// reverse entry (key rev, action ra), linked, last seen at now. It returns
// the forward entry's Ref. Errors: ErrExists (fwd is already an entry: the
// Ref returned is that entry, use it), ErrConflict, ErrFull (count it as a
// drop), ErrInvalid. Safe for many pollers at once; no allocation.
func (t *Table) Insert(fwd Key, fa Action, rev Key, ra Action, now uint32) (Ref, error) {
	pf, pr := pack(&fwd), pack(&rev)
	if !fa.valid() || !ra.valid() || pf == pr {
		return 0, ErrInvalid
	}
	hf, hr := t.homeOf(&pf), t.homeOf(&pr)
	t.lock2(hf, hr)
	r, err := t.insertLocked(&pf, &fa, hf, &pr, &ra, hr, now)
	t.unlock2(hf, hr)
	return r, err
}

// insertLocked runs with the home slots of both keys locked, so no other
// writer adds or removes an entry homed there.
func (t *Table) insertLocked(pf *packed, fa *Action, hf uint32, pr *packed, ra *Action, hr, now uint32) (Ref, error) {
	st := t.stripe(hf)
	if i, c, _, _, ok := t.find(pf, hf); ok {
		st.exists.Add(1)
		return makeRef(i, c), ErrExists
	}
	if _, _, _, _, ok := t.find(pr, hr); ok {
		st.conflicts.Add(1)
		return 0, ErrConflict
	}
	if t.live.Add(1) > int64(t.cfg.Capacity) {
		return t.refuse(st, 0, 0)
	}
	i, ci, ok := t.claim(hf)
	if !ok {
		return t.refuse(st, 0, 0)
	}
	j, cj, ok := t.claim(hr)
	if !ok {
		return t.refuse(st, i, ci)
	}
	t.fill(i, pf, fa, j, i-hf, metaFwd, now)
	t.fill(j, pr, ra, i, j-hr, 0, now)
	t.raiseDist(hf, i-hf)
	t.raiseDist(hr, j-hr)
	t.slots[j].ctl.Store(cj&^stateMask | stateLive)
	c := ci&^stateMask | stateLive
	t.slots[i].ctl.Store(c)
	t.fwdIn[i/blockSlots].Add(1)
	st.inserts.Add(1)
	return makeRef(i, c), nil
}

// refuse undoes the reservation (and a claimed slot i, if ci != 0).
func (t *Table) refuse(st *stripe, i, ci uint32) (Ref, error) {
	if ci != 0 {
		t.slots[i].ctl.Store(ci&^stateMask | stateFree)
	}
	t.live.Add(-1)
	st.full.Add(1)
	return 0, ErrFull
}

// claim takes the first free slot in h's window and marks it busy with the
// next generation (never 0, so a Ref is never 0).
func (t *Table) claim(h uint32) (uint32, uint32, bool) {
	for i := h; i < h+window; i++ {
		s := &t.slots[i]
		c := s.ctl.Load()
		if c&stateMask != stateFree {
			continue
		}
		g := c>>genShift + 1
		if g == 1<<(32-genShift) {
			g = 1
		}
		if nc := g<<genShift | stateBusy; s.ctl.CompareAndSwap(c, nc) {
			return i, nc, true
		}
	}
	return 0, 0, false
}

// fill writes a busy slot's fields.
func (t *Table) fill(i uint32, p *packed, a *Action, partner, dist, flags, now uint32) {
	s := &t.slots[i]
	a0, a1 := packAction(a, partner, p.proto)
	s.k0.Store(p.k0)
	s.k1.Store(p.k1)
	s.a0.Store(a0)
	s.a1.Store(a1)
	s.pkts.Store(0)
	s.byts.Store(0)
	s.last.Store(now)
	s.meta.Store(dist | flags)
}

// raiseDist records that an entry homed at h lies d slots from it. The
// caller holds h's lock, so a plain store keeps the lock bit.
func (t *Table) raiseDist(h, d uint32) {
	w := &t.slots[h].home
	if v := w.Load(); v&distMask < d {
		w.Store(v&^distMask | d)
	}
}

// lock2 locks the home slots a and b in index order (once if equal).
func (t *Table) lock2(a, b uint32) {
	if a > b {
		a, b = b, a
	}
	t.lock(a)
	if b != a {
		t.lock(b)
	}
}

func (t *Table) unlock2(a, b uint32) {
	t.slots[a].home.And(^uint32(homeLock))
	if b != a {
		t.slots[b].home.And(^uint32(homeLock))
	}
}

// lock spins on h's lock bit. Holders are writers touching two slots, so the
// wait is short unless the holder's thread is descheduled: then yield.
func (t *Table) lock(h uint32) {
	w := &t.slots[h].home
	for spin := 0; ; spin++ {
		v := w.Load()
		if v&homeLock == 0 && w.CompareAndSwap(v, v|homeLock) {
			return
		}
		if spin&63 == 63 {
			runtime.Gosched()
		}
	}
}
