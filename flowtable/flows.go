package flowtable

// EntryInfo is a copy of one entry, for introspection.
type EntryInfo struct {
	Index    uint32 // slot index (TF's flow index)
	Key      Key
	Action   Action
	Packets  uint64
	Bytes    uint64
	LastSeen uint32 // tick of the last packet (or of the flow's creation)
	Closed   bool   // Close was called (TCP FIN or RST seen)
}

// FlowInfo is a copy of one flow: its forward and reverse entries.
type FlowInfo struct {
	Ref      Ref // the forward entry
	Fwd, Rev EntryInfo
}

// Flows calls fn with a copy of every flow, in slot order, until fn returns
// false. It takes no lock and does not block pollers. Each entry's key and
// action are consistent; a flow inserted or removed during the walk may be
// seen or not; counters are read live.
func (t *Table) Flows(fn func(FlowInfo) bool) {
	t.eachInBlocks(0, t.Blocks(), func(i uint32) bool {
		f, ok := t.flowAt(i)
		return !ok || fn(f)
	})
}

// flowAt copies the flow whose forward entry is slot i, if any.
func (t *Table) flowAt(i uint32) (FlowInfo, bool) {
	fwd, c, ok := t.entryAt(i)
	if !ok || fwd.Action.Kind == 0 {
		return FlowInfo{}, false
	}
	j := uint32(t.slots[i].a0.Load() >> 32)
	if t.slots[i].meta.Load()&metaFwd == 0 || int(j) >= len(t.slots) {
		return FlowInfo{}, false
	}
	rev, _, ok := t.entryAt(j)
	if !ok || t.slots[i].ctl.Load() != c {
		return FlowInfo{}, false
	}
	return FlowInfo{Ref: makeRef(i, c), Fwd: fwd, Rev: rev}, true
}

// entryAt copies live slot i under its control word.
func (t *Table) entryAt(i uint32) (EntryInfo, uint32, bool) {
	s := &t.slots[i]
	c := s.ctl.Load()
	if c&stateMask != stateLive {
		return EntryInfo{}, 0, false
	}
	p := packed{k0: s.k0.Load(), k1: s.k1.Load()}
	a0, a1 := s.a0.Load(), s.a1.Load()
	p.proto = uint8(a0)
	e := EntryInfo{
		Index: i, Key: p.key(), Action: unpackAction(a0, a1),
		Packets: s.pkts.Load(), Bytes: s.byts.Load(), LastSeen: s.last.Load(),
		Closed: s.meta.Load()&metaClosed != 0,
	}
	if s.ctl.Load() != c {
		return EntryInfo{}, 0, false
	}
	return e, c, true
}
