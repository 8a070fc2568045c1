package flowtable

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The reference model: a map from key to entry, with the same rules.
type mentry struct {
	key    Key
	act    Action
	pkts   uint64
	bytes  uint64
	last   uint32
	closed bool
	fwd    bool
	peer   *mentry
}

type model struct {
	byKey map[Key]*mentry
	flows int
	nat   int // flows holding an SNAT port
}

const (
	opInsert = iota
	opLookup
	opAccount
	opClose
	opDelete
	opTick
	opAge
	nOps
)

var (
	uniIPs  = [3][4]byte{{198, 18, 0, 1}, {198, 18, 0, 2}, {198, 19, 0, 1}}
	nodeIP  = [4]byte{198, 18, 255, 1}
	uniKeys = universe()
)

// universe is every key over 3 addresses, 2 ports and 2 protocols: closed
// under Reverse, so reverse keys collide with forward keys of other flows.
func universe() []Key {
	var ks []Key
	for i := range 72 {
		ks = append(ks, Key{
			Src: uniIPs[i%3], Dst: uniIPs[i/3%3],
			SrcPort: uint16(1 + i/9%2), DstPort: uint16(1 + i/18%2),
			Proto: [2]uint8{6, 17}[i/36],
		})
	}
	return ks
}

// harness drives a Table and the model with the same operations and checks
// that they agree after each one.
type harness struct {
	t    testing.TB
	tbl  *Table
	snat *SNAT
	m    model
	now  uint32
}

const (
	refCap     = 6
	refIdle    = 20
	refClosing = 5
)

func newHarness(t testing.TB) *harness {
	snat := NewSNAT(nodeIP)
	tbl, err := New(Config{Capacity: refCap, IdleTimeout: refIdle, ClosedTimeout: refClosing, SNAT: []*SNAT{snat}})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, tbl: tbl, snat: snat, m: model{byKey: map[Key]*mentry{}}, now: 1}
}

// step applies op (kind, a, b, c) to both and checks them.
func (h *harness) step(op [4]byte) {
	k := uniKeys[int(op[1])%len(uniKeys)]
	switch op[0] % nOps {
	case opInsert:
		h.insert(k, op[2], op[3])
	case opLookup:
		h.checkKey(k)
	case opAccount:
		h.account(k, int(op[2]))
	case opClose:
		h.close(k)
	case opDelete:
		h.delete(k)
	case opTick:
		h.now += uint32(op[2] % 16)
	case opAge:
		h.age()
	}
	h.checkAll()
}

// flowFor builds the flow the insert op describes: b picks the reverse key
// (the swapped key, another universe key, or SNAT), c the next hop.
func (h *harness) flowFor(k Key, b, c uint8) (fa Action, rev Key, ra Action, nat bool) {
	fa, ra = Action{Kind: Forward, NextHop: uint32(c)}, Action{Kind: Forward, NextHop: uint32(c) + 1}
	if c%5 == 0 {
		fa.Kind = Drop
	}
	switch b % 4 {
	case 0, 1:
		return fa, k.Reverse(), ra, false
	case 2:
		return fa, uniKeys[int(c)%len(uniKeys)], ra, false
	}
	port, ok := h.snat.Alloc(k.Proto)
	if !ok {
		h.t.Fatalf("snat pool exhausted")
	}
	fa = Action{Kind: NATSrc, NextHop: uint32(c), IP: nodeIP, Port: port}
	rev = Key{Src: k.Dst, Dst: nodeIP, SrcPort: k.DstPort, DstPort: port, Proto: k.Proto, VRF: 7}
	ra = Action{Kind: NATDst, NextHop: uint32(c) + 1, IP: k.Src, Port: k.SrcPort}
	return fa, rev, ra, true
}

func (h *harness) insert(k Key, b, c uint8) {
	fa, rev, ra, nat := h.flowFor(k, b, c)
	r, err := h.tbl.Insert(k, fa, rev, ra, h.now)
	want := h.m.insertErr(k, rev)
	if !errors.Is(err, want) && !(err == nil && want == nil) {
		h.t.Fatalf("insert %v/%v: err %v, model %v", k, rev, err, want)
	}
	if err != nil {
		h.checkExists(k, r, err)
		if nat {
			h.snat.Free(k.Proto, fa.Port)
		}
		return
	}
	h.m.add(k, fa, rev, ra, h.now, nat)
}

func (h *harness) checkExists(k Key, r Ref, err error) {
	if err != ErrExists {
		return
	}
	lr, _, ok := h.tbl.Lookup(&k)
	if !ok || lr != r {
		h.t.Fatalf("ErrExists ref %x, lookup %x %v", r, lr, ok)
	}
}

func (m *model) insertErr(fwd, rev Key) error {
	switch {
	case fwd == rev:
		return ErrInvalid
	case m.byKey[fwd] != nil:
		return ErrExists
	case m.byKey[rev] != nil:
		return ErrConflict
	case m.flows == refCap:
		return ErrFull
	}
	return nil
}

func (m *model) add(fwd Key, fa Action, rev Key, ra Action, now uint32, nat bool) {
	f := &mentry{key: fwd, act: fa, last: now, fwd: true}
	r := &mentry{key: rev, act: ra, last: now, peer: f}
	f.peer = r
	m.byKey[fwd], m.byKey[rev] = f, r
	m.flows++
	if nat {
		m.nat++
	}
}

func (m *model) remove(e *mentry) {
	delete(m.byKey, e.key)
	delete(m.byKey, e.peer.key)
	m.flows--
	if e.act.Kind == NATSrc || e.peer.act.Kind == NATSrc {
		m.nat--
	}
}

func (h *harness) account(k Key, n int) {
	r, _, ok := h.tbl.Lookup(&k)
	if ok != (h.m.byKey[k] != nil) {
		h.t.Fatalf("lookup %v: %v, model %v", k, ok, !ok)
	}
	if !ok {
		return
	}
	if !h.tbl.Account(r, n, h.now) {
		h.t.Fatalf("account %v: fresh ref stale", k)
	}
	e := h.m.byKey[k]
	e.pkts, e.bytes, e.last = e.pkts+1, e.bytes+uint64(n), h.now
}

func (h *harness) close(k Key) {
	r, _, ok := h.tbl.Lookup(&k)
	if ok && !h.tbl.Close(r) {
		h.t.Fatalf("close %v: fresh ref stale", k)
	}
	if e := h.m.byKey[k]; e != nil {
		e.closed = true
	}
}

func (h *harness) delete(k Key) {
	r, _, ok := h.tbl.Lookup(&k)
	if ok && !h.tbl.Delete(r) {
		h.t.Fatalf("delete %v: fresh ref stale", k)
	}
	if ok && h.tbl.Delete(r) {
		h.t.Fatalf("delete %v twice", k)
	}
	if e := h.m.byKey[k]; e != nil {
		h.m.remove(e)
	}
}

func (h *harness) age() {
	want := 0
	for _, e := range h.m.byKey {
		if e.fwd && modelIdle(e, h.now) {
			h.m.remove(e)
			want++
		}
	}
	if got := h.tbl.Age(h.now); got != want {
		h.t.Fatalf("age at %d removed %d, model %d", h.now, got, want)
	}
}

func modelIdle(e *mentry, now uint32) bool {
	timeout := int32(refIdle)
	if e.closed || e.peer.closed {
		timeout = refClosing
	}
	return min(int32(now-e.last), int32(now-e.peer.last)) > timeout
}

func (h *harness) checkKey(k Key) {
	r, a, ok := h.tbl.Lookup(&k)
	e := h.m.byKey[k]
	if ok != (e != nil) || ok && a != e.act {
		h.t.Fatalf("lookup %v: %v %+v, model %+v", k, ok, a, e)
	}
	if ok {
		if ga, gok := h.tbl.Get(r); !gok || ga != a {
			h.t.Fatalf("get %x: %v %+v", r, gok, ga)
		}
	}
}

func (h *harness) checkAll() {
	for _, k := range uniKeys {
		h.checkKey(k)
	}
	seen, perBlock := 0, make([]int32, h.tbl.Blocks())
	h.tbl.Flows(func(f FlowInfo) bool {
		seen++
		perBlock[f.Fwd.Index/blockSlots]++
		h.checkFlow(f)
		return true
	})
	for b, n := range perBlock {
		if got := h.tbl.fwdIn[b].Load(); got != n {
			h.t.Fatalf("block %d: counts %d forward entries, holds %d", b, got, n)
		}
	}
	s := h.tbl.Stats()
	if seen != h.m.flows || s.Flows != h.m.flows {
		h.t.Fatalf("flows: walk %d, stats %d, model %d", seen, s.Flows, h.m.flows)
	}
	if used := h.snat.TCP.InUse() + h.snat.UDP.InUse(); used != h.m.nat {
		h.t.Fatalf("snat ports in use %d, model nat flows %d", used, h.m.nat)
	}
}

func (h *harness) checkFlow(f FlowInfo) {
	e := h.m.byKey[f.Fwd.Key]
	if e == nil || !e.fwd || e.peer.key != f.Rev.Key {
		h.t.Fatalf("flow %+v not in model", f)
	}
	checkEntry(h.t, f.Fwd, e)
	checkEntry(h.t, f.Rev, e.peer)
}

func checkEntry(t testing.TB, got EntryInfo, e *mentry) {
	want := EntryInfo{Index: got.Index, Key: e.key, Action: e.act, Packets: e.pkts, Bytes: e.bytes, LastSeen: e.last, Closed: e.closed}
	if got != want {
		t.Fatalf("entry %+v, model %+v", got, want)
	}
}

// TestAgainstReference runs random operation sequences on a small table and
// the model.
func TestAgainstReference(t *testing.T) {
	runs := 120
	if testing.Short() {
		runs = 30
	}
	for seed := range runs {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 3))
			h := newHarness(t)
			for range 400 {
				h.step([4]byte{byte(rng.IntN(nOps + 3)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			}
		})
	}
}
