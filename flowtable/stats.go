package flowtable

import "sync/atomic"

const stripes = 32

// stripe holds counters bumped in flow setup, spread over cache lines by
// home slot so that pollers do not share one line.
type stripe struct {
	inserts, full, exists, conflicts atomic.Uint64
	_                                [32]byte
}

func (t *Table) stripe(h uint32) *stripe { return &t.ctr[h%stripes] }

// Stats are the table's counters, read live.
type Stats struct {
	Flows     int    // flows (pairs) in the table now
	Capacity  int    // configured maximum
	Inserts   uint64 // flows created
	Full      uint64 // inserts refused with ErrFull (count them as drops)
	Exists    uint64 // inserts that found the forward key (lost races)
	Conflicts uint64 // inserts refused with ErrConflict
	Aged      uint64 // flows removed by Age
	Deleted   uint64 // flows removed by Delete
}

// Stats returns the counters. Each is read atomically; together they are
// not one snapshot.
func (t *Table) Stats() Stats {
	s := Stats{
		Flows: int(t.live.Load()), Capacity: t.cfg.Capacity,
		Aged: t.aged.Load(), Deleted: t.dels.Load(),
	}
	for i := range t.ctr {
		c := &t.ctr[i]
		s.Inserts += c.inserts.Load()
		s.Full += c.full.Load()
		s.Exists += c.exists.Load()
		s.Conflicts += c.conflicts.Load()
	}
	return s
}

// Len is the number of flows in the table now: one atomic load, cheap
// enough for the data path to skip lookups while the table is empty.
func (t *Table) Len() int { return int(t.live.Load()) }
