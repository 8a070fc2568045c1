package flowtable

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	tbl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// tcpKey is flow i's forward key: distinct for distinct i < 2^32.
func tcpKey(i uint32) Key {
	return Key{
		VRF: 3, Src: [4]byte{198, 18, byte(i >> 24), byte(i >> 16)}, Dst: [4]byte{198, 19, 0, 1},
		SrcPort: uint16(i), DstPort: 80, Proto: 6,
	}
}

func fwdTo(nh uint32) Action { return Action{Kind: Forward, NextHop: nh} }

func mustInsert(t testing.TB, tbl *Table, k Key, now uint32) Ref {
	t.Helper()
	r, err := tbl.Insert(k, fwdTo(1), k.Reverse(), fwdTo(2), now)
	if err != nil {
		t.Fatalf("insert %v: %v", k, err)
	}
	return r
}

func TestInsertLookupBothDirections(t *testing.T) {
	tbl := newTable(t, Config{Capacity: 64})
	k := tcpKey(1)
	r := mustInsert(t, tbl, k, 10)
	got, a, ok := tbl.Lookup(&k)
	if !ok || got != r || a != fwdTo(1) {
		t.Fatalf("forward lookup: %x %+v %v, want %x", got, a, ok, r)
	}
	rk := k.Reverse()
	rr, ra, ok := tbl.Lookup(&rk)
	if !ok || ra != fwdTo(2) || rr == r {
		t.Fatalf("reverse lookup: %x %+v %v", rr, ra, ok)
	}
	other := tcpKey(2)
	if _, _, ok := tbl.Lookup(&other); ok {
		t.Fatal("lookup of an absent key hit")
	}
	if a, ok := tbl.Get(rr); !ok || a != fwdTo(2) {
		t.Fatalf("get reverse: %+v %v", a, ok)
	}
}

func TestInsertErrors(t *testing.T) {
	tbl := newTable(t, Config{Capacity: 64})
	k := tcpKey(1)
	r := mustInsert(t, tbl, k, 1)
	if got, err := tbl.Insert(k, fwdTo(9), tcpKey(7), fwdTo(9), 1); err != ErrExists || got != r {
		t.Fatalf("same forward key: %x %v, want %x ErrExists", got, err, r)
	}
	if _, err := tbl.Insert(k.Reverse(), fwdTo(9), k, fwdTo(9), 1); err != ErrExists {
		t.Fatalf("forward key = existing reverse key: %v, want ErrExists", err)
	}
	if _, err := tbl.Insert(tcpKey(5), fwdTo(9), k.Reverse(), fwdTo(9), 1); err != ErrConflict {
		t.Fatalf("taken reverse key: %v, want ErrConflict", err)
	}
	if _, err := tbl.Insert(tcpKey(5), Action{}, tcpKey(6), fwdTo(1), 1); err != ErrInvalid {
		t.Fatalf("zero action: %v", err)
	}
	if _, err := tbl.Insert(tcpKey(5), fwdTo(1), tcpKey(5), fwdTo(1), 1); err != ErrInvalid {
		t.Fatalf("equal keys: %v", err)
	}
	if s := tbl.Stats(); s.Flows != 1 || s.Inserts != 1 || s.Exists != 2 || s.Conflicts != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConfig(t *testing.T) {
	tbl := newTable(t, Config{Capacity: 1})
	if tbl.Capacity() != 1 || tbl.cfg.IdleTimeout != DefaultIdleTimeout || tbl.cfg.ClosedTimeout != DefaultClosedTimeout {
		t.Fatalf("defaults: %+v", tbl.cfg)
	}
	for _, c := range []Config{{Capacity: -1}, {Capacity: MaxCapacity + 1}, {Capacity: 1, IdleTimeout: 1 << 31}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if c := newTable(t, Config{Capacity: 1, IdleTimeout: 3}).cfg; c.ClosedTimeout != 3 {
		t.Errorf("closed timeout %d, want min(10, idle 3)", c.ClosedTimeout)
	}
}

// snatFlow is a pod's flow to an outside host, source-NATed to the node IP.
func snatFlow(t testing.TB, s *SNAT, i uint32) (fwd Key, fa Action, rev Key, ra Action) {
	port, ok := s.Alloc(6)
	if !ok {
		t.Fatal("no snat port")
	}
	fwd = Key{VRF: 2, Src: [4]byte{198, 18, 1, byte(i)}, Dst: [4]byte{198, 19, 9, 9}, SrcPort: 40000, DstPort: 443, Proto: 6}
	fa = Action{Kind: NATSrc, NextHop: 11, IP: s.IP, Port: port}
	rev = Key{VRF: 0, Src: fwd.Dst, Dst: s.IP, SrcPort: 443, DstPort: port, Proto: 6}
	ra = Action{Kind: NATDst, NextHop: 12, IP: fwd.Src, Port: fwd.SrcPort}
	return fwd, fa, rev, ra
}

func TestNATEntries(t *testing.T) {
	s := NewSNAT(nodeIP)
	tbl := newTable(t, Config{Capacity: 16, IdleTimeout: 10, SNAT: []*SNAT{s}})
	fwd, fa, rev, ra := snatFlow(t, s, 1)
	if _, err := tbl.Insert(fwd, fa, rev, ra, 1); err != nil {
		t.Fatal(err)
	}
	if fa.Port < TCPPortMin || fa.Port > TCPPortMax {
		t.Fatalf("port %d outside TF's TCP pool", fa.Port)
	}
	if _, a, ok := tbl.Lookup(&fwd); !ok || a != fa {
		t.Fatalf("forward: %+v, want source rewrite %+v", a, fa)
	}
	if _, a, ok := tbl.Lookup(&rev); !ok || a != ra {
		t.Fatalf("reverse: %+v, want destination rewrite %+v", a, ra)
	}
	if s.TCP.InUse() != 1 {
		t.Fatalf("ports in use %d", s.TCP.InUse())
	}
	if n := tbl.Age(100); n != 1 || s.TCP.InUse() != 0 {
		t.Fatalf("aged %d, ports in use %d after aging", n, s.TCP.InUse())
	}
}

func TestAccountAndFlows(t *testing.T) {
	tbl := newTable(t, Config{Capacity: 16})
	k := tcpKey(3)
	r := mustInsert(t, tbl, k, 5)
	rk := k.Reverse()
	rr, _, _ := tbl.Lookup(&rk)
	for i := range 3 {
		tbl.Account(r, 100, uint32(6+i))
	}
	tbl.Account(rr, 60, 7)
	tbl.Close(rr)
	var got []FlowInfo
	tbl.Flows(func(f FlowInfo) bool { got = append(got, f); return true })
	if len(got) != 1 {
		t.Fatalf("%d flows", len(got))
	}
	f := got[0]
	if f.Ref != r || f.Fwd.Index != r.Index() || f.Rev.Index != rr.Index() || f.Fwd.Key != k || f.Rev.Key != rk {
		t.Fatalf("flow identity %+v", f)
	}
	if f.Fwd.Packets != 3 || f.Fwd.Bytes != 300 || f.Fwd.LastSeen != 8 || f.Fwd.Closed {
		t.Fatalf("forward stats %+v", f.Fwd)
	}
	if f.Rev.Packets != 1 || f.Rev.Bytes != 60 || f.Rev.LastSeen != 7 || !f.Rev.Closed {
		t.Fatalf("reverse stats %+v", f.Rev)
	}
}

func TestFlowsStops(t *testing.T) {
	tbl := newTable(t, Config{Capacity: 16})
	for i := range 5 {
		mustInsert(t, tbl, tcpKey(uint32(i)), 1)
	}
	n := 0
	tbl.Flows(func(FlowInfo) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("walk went on after false: %d calls", n)
	}
}

func TestAging(t *testing.T) {
	tbl := newTable(t, Config{Capacity: 16, IdleTimeout: 10, ClosedTimeout: 2})
	idle, busyRev, closed := tcpKey(1), tcpKey(2), tcpKey(3)
	mustInsert(t, tbl, idle, 0)
	mustInsert(t, tbl, busyRev, 0)
	rc := mustInsert(t, tbl, closed, 0)
	rk := busyRev.Reverse()
	rr, _, _ := tbl.Lookup(&rk)
	tbl.Account(rr, 1, 8) // reverse direction alone keeps the flow
	tbl.Account(rc, 1, 8)
	tbl.Close(rc)
	if n := tbl.Age(10); n != 0 {
		t.Fatalf("aged %d at the timeout, want 0", n)
	}
	if n := tbl.Age(11); n != 2 {
		t.Fatalf("aged %d at 11, want the idle and the closed flow", n)
	}
	for _, k := range []Key{idle, idle.Reverse(), closed, closed.Reverse()} {
		if _, _, ok := tbl.Lookup(&k); ok {
			t.Fatalf("%v survived aging", k)
		}
	}
	if _, _, ok := tbl.Lookup(&rk); !ok {
		t.Fatal("active flow aged")
	}
	if s := tbl.Stats(); s.Flows != 1 || s.Aged != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestAgeBlocks sweeps a table in pieces: together they age what one Age
// would, a piece ages only its own blocks, and out-of-range pieces are
// clamped.
func TestAgeBlocks(t *testing.T) {
	tbl := newTable(t, Config{Capacity: 4096, IdleTimeout: 10})
	const flows = 2000
	for i := range uint32(flows) {
		mustInsert(t, tbl, tcpKey(i), 0)
	}
	if tbl.Blocks() < 8 {
		t.Fatalf("%d blocks: too few to sweep in pieces", tbl.Blocks())
	}
	if n := tbl.AgeBlocks(11, -5, 0) + tbl.AgeBlocks(11, tbl.Blocks(), 9) + tbl.AgeBlocks(11, 3, -1); n != 0 {
		t.Fatalf("empty or out-of-range pieces aged %d", n)
	}
	first := tbl.AgeBlocks(11, 0, 1)
	tbl.Flows(func(f FlowInfo) bool {
		if f.Fwd.Index < blockSlots {
			t.Fatalf("flow at slot %d survived the sweep of block 0", f.Fwd.Index)
		}
		return true
	})
	rest := 0
	for b := 1; b < tbl.Blocks(); b += 3 {
		rest += tbl.AgeBlocks(11, b, 3)
	}
	if first == 0 || first+rest != flows || tbl.Len() != 0 {
		t.Fatalf("pieces aged %d+%d of %d, %d left", first, rest, flows, tbl.Len())
	}
}

// TestSweeper checks that pieces steps of a sweeper age the whole table,
// and that it starts over after.
func TestSweeper(t *testing.T) {
	tbl := newTable(t, Config{Capacity: 4096, IdleTimeout: 10})
	for i := range uint32(1000) {
		mustInsert(t, tbl, tcpKey(i), 0)
	}
	sw := tbl.NewSweeper(5)
	aged := sw.Step(11)
	if aged == 0 || tbl.Len() == 0 {
		t.Fatalf("1 of 5 steps aged %d, left %d: want part of the table", aged, tbl.Len())
	}
	for range 4 {
		aged += sw.Step(11)
	}
	if aged != 1000 || tbl.Len() != 0 {
		t.Fatalf("5 steps aged %d, left %d", aged, tbl.Len())
	}
	mustInsert(t, tbl, tcpKey(1), 20)
	for range 5 {
		aged += sw.Step(31)
	}
	if tbl.Len() != 0 {
		t.Fatal("the second round of steps missed a flow")
	}
}

// TestAgingWraps checks tick comparisons across the uint32 wrap and that a
// poller's tick ahead of the sweeper's does not age a flow.
func TestAgingWraps(t *testing.T) {
	tbl := newTable(t, Config{Capacity: 4, IdleTimeout: 10})
	mustInsert(t, tbl, tcpKey(1), ^uint32(0)-2)
	mustInsert(t, tbl, tcpKey(2), 100)
	if n := tbl.Age(5); n != 0 {
		t.Fatalf("aged %d across the wrap (8 ticks idle) or ahead of now", n)
	}
	if n := tbl.Age(9); n != 1 {
		t.Fatalf("aged %d at 12 ticks idle across the wrap", n)
	}
}

func TestStaleRef(t *testing.T) {
	tbl := newTable(t, Config{Capacity: 4, IdleTimeout: 1})
	k := tcpKey(9)
	old := mustInsert(t, tbl, k, 0)
	if tbl.Age(5) != 1 {
		t.Fatal("not aged")
	}
	if tbl.Account(old, 1, 5) || tbl.Close(old) || tbl.Delete(old) {
		t.Fatal("stale ref accepted after aging")
	}
	if _, ok := tbl.Get(old); ok {
		t.Fatal("get of a stale ref")
	}
	fresh := mustInsert(t, tbl, k, 5)
	if fresh == old {
		t.Fatal("reinsert returned the stale ref")
	}
	if tbl.Account(old, 1, 5) || !tbl.Account(fresh, 1, 5) {
		t.Fatal("old ref accepted or new ref refused after reuse")
	}
	if tbl.Account(Ref(1<<60|uint64(len(tbl.slots))), 1, 5) || tbl.Delete(0) {
		t.Fatal("out-of-range or zero ref accepted")
	}
}

func TestFullTable(t *testing.T) {
	const capacity = 8
	tbl := newTable(t, Config{Capacity: capacity, IdleTimeout: 10})
	refs := make([]Ref, capacity)
	for i := range refs {
		refs[i] = mustInsert(t, tbl, tcpKey(uint32(i)), 0)
	}
	for i := range 3 {
		k := tcpKey(uint32(100 + i))
		if _, err := tbl.Insert(k, fwdTo(1), k.Reverse(), fwdTo(2), 0); !errors.Is(err, ErrFull) {
			t.Fatalf("insert into a full table: %v", err)
		}
	}
	for i, r := range refs {
		k := tcpKey(uint32(i))
		if got, _, ok := tbl.Lookup(&k); !ok || got != r || !tbl.Account(r, 1, 5) {
			t.Fatalf("existing flow %d broken when full", i)
		}
	}
	if s := tbl.Stats(); s.Full != 3 || s.Flows != capacity {
		t.Fatalf("stats %+v", s)
	}
}

// TestSlotsReused fills and ages a small table many times: without slot
// reclaim it would run out of slots.
func TestSlotsReused(t *testing.T) {
	const capacity = 8
	tbl := newTable(t, Config{Capacity: capacity, IdleTimeout: 1})
	now := uint32(0)
	for round := range 2000 {
		for i := range capacity {
			mustInsert(t, tbl, tcpKey(uint32(round*capacity+i)), now)
		}
		now += 5
		if n := tbl.Age(now); n != capacity {
			t.Fatalf("round %d: aged %d", round, n)
		}
	}
	for i := range tbl.slots {
		if d := tbl.slots[i].home.Load(); d != 0 {
			t.Fatalf("home word %d left at %#x in an empty table", i, d)
		}
	}
}

// TestFillToCapacity fills a bigger table with random keys: the bounded
// probe window must not refuse flows before Capacity.
func TestFillToCapacity(t *testing.T) {
	capacity := 1 << 16
	if testing.Short() {
		capacity = 1 << 12
	}
	tbl := newTable(t, Config{Capacity: capacity})
	maxDist := uint32(0)
	for i := range capacity {
		k := tcpKey(uint32(i) * 2654435761)
		mustInsert(t, tbl, k, 0)
	}
	for i := range tbl.slots {
		maxDist = max(maxDist, tbl.slots[i].home.Load()&distMask)
	}
	t.Logf("%d flows, longest probe %d of %d", capacity, maxDist, window)
}

// rssKB is this process's resident set (VmRSS of /proc/self/status).
func rssKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestPrefault: a prefaulted table is resident when New returns; a plain
// one is not (its pages come as flows land on them).
func TestPrefault(t *testing.T) {
	const capacity = 64 << 10 // 16 MiB of slots
	size := capacity * 256 / 1024
	for _, pre := range []bool{false, true} {
		before := rssKB(t)
		tbl, err := New(Config{Capacity: capacity, Prefault: pre})
		if err != nil {
			t.Fatal(err)
		}
		grew := rssKB(t) - before
		t.Logf("prefault=%v: RSS grew %d KiB for a %d KiB table", pre, grew, size)
		if pre && grew < size*9/10 {
			t.Errorf("prefaulted table: RSS grew %d KiB, want about %d", grew, size)
		}
		if !pre && grew > size/2 {
			t.Errorf("plain table: RSS grew %d KiB of %d at New; the test cannot tell prefaulting apart", grew, size)
		}
		runtime.KeepAlive(tbl)
	}
	// Unreachable tables give their mappings back.
	before := rssKB(t)
	for range 8 {
		if _, err := New(Config{Capacity: capacity, Prefault: true}); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
	}
	runtime.GC()
	time.Sleep(50 * time.Millisecond) // cleanups run on their own goroutine
	if grew := rssKB(t) - before; grew > 3*size {
		t.Errorf("8 dropped prefaulted tables of %d KiB: RSS grew %d KiB; their mappings are not released", size, grew)
	}
	if n := UnmapFailures(); n != 0 {
		t.Errorf("%d munmap failures", n)
	}
}
