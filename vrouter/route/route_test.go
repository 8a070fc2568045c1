package route

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestEmptyAndNil(t *testing.T) {
	var tbl Table
	if _, ok := tbl.Lookup([4]byte{1, 2, 3, 4}); ok {
		t.Fatal("empty table matched")
	}
	if tbl.Snapshot() == nil || tbl.Len() != 0 {
		t.Fatal("empty table: nil snapshot or non-zero Len")
	}
	var nilT *Table
	if _, ok := nilT.Lookup([4]byte{}); ok || nilT.Len() != 0 {
		t.Fatal("nil table is not empty")
	}
	if err := nilT.Insert(netip.MustParsePrefix("0.0.0.0/0"), 1); !errors.Is(err, ErrNoTable) {
		t.Fatalf("Insert on nil table: %v, want ErrNoTable", err)
	}
	for range nilT.All() {
		t.Fatal("nil table yielded a route")
	}
}

func TestInvalidPrefixes(t *testing.T) {
	var tbl Table
	bad := []struct {
		p    netip.Prefix
		want error
	}{
		{netip.Prefix{}, ErrInvalidPrefix},
		{netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 33), ErrInvalidPrefix},
		{netip.MustParsePrefix("2001:db8::/32"), ErrNotIPv4},
		{netip.MustParsePrefix("::ffff:10.0.0.0/104"), ErrNotIPv4},
	}
	for _, c := range bad {
		if err := tbl.Insert(c.p, 1); !errors.Is(err, c.want) {
			t.Errorf("Insert(%v) = %v, want %v", c.p, err, c.want)
		}
		if _, err := tbl.Delete(c.p); !errors.Is(err, c.want) {
			t.Errorf("Delete(%v) = %v, want %v", c.p, err, c.want)
		}
	}
	good := Change{Prefix: netip.MustParsePrefix("10.0.0.0/8"), NextHop: 7}
	err := tbl.Apply([]Change{good, {Prefix: bad[2].p}})
	if !errors.Is(err, ErrNotIPv4) {
		t.Fatalf("Apply with an IPv6 change = %v, want ErrNotIPv4", err)
	}
	if tbl.Len() != 0 {
		t.Fatal("a rejected batch was partly applied")
	}
}

func TestBasics(t *testing.T) {
	var tbl Table
	mustInsert(t, &tbl, "0.0.0.0/0", 1)
	mustInsert(t, &tbl, "10.1.2.3/8", 2) // host bits are cleared
	mustInsert(t, &tbl, "10.1.2.3/32", 3)
	mustInsert(t, &tbl, "10.1.2.3/32", 4) // replaces
	cases := map[[4]byte]NextHop{{10, 1, 2, 3}: 4, {10, 1, 2, 4}: 2, {11, 0, 0, 0}: 1}
	for a, want := range cases {
		if got, ok := tbl.Lookup(a); !ok || got != want {
			t.Errorf("Lookup(%v) = %d,%v, want %d", a, got, ok, want)
		}
	}
	if tbl.Len() != 3 {
		t.Fatalf("Len = %d, want 3", tbl.Len())
	}
	old := tbl.Snapshot()
	if ok, err := tbl.Delete(netip.MustParsePrefix("10.0.0.0/8")); !ok || err != nil {
		t.Fatalf("Delete existing = %v, %v", ok, err)
	}
	if ok, err := tbl.Delete(netip.MustParsePrefix("10.0.0.0/8")); ok || err != nil {
		t.Fatalf("Delete absent = %v, %v", ok, err)
	}
	if nh, _ := tbl.Lookup([4]byte{10, 1, 2, 4}); nh != 1 {
		t.Fatalf("after delete: next hop %d, want 1", nh)
	}
	if nh, _ := old.Lookup([4]byte{10, 1, 2, 4}); nh != 2 {
		t.Fatalf("old snapshot changed: next hop %d, want 2", nh)
	}
	err := tbl.Apply([]Change{
		{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Delete: true},
		{Prefix: netip.MustParsePrefix("10.1.2.3/32"), Delete: true},
		{Prefix: netip.MustParsePrefix("10.9.9.9/32"), Delete: true}, // absent
	})
	if err != nil || tbl.Len() != 0 || tbl.Snapshot() != emptyView {
		t.Fatalf("emptied table: err %v, Len %d, shared empty view %v", err, tbl.Len(), tbl.Snapshot() == emptyView)
	}
}

func mustInsert(t *testing.T, tbl *Table, p string, nh NextHop) {
	t.Helper()
	if err := tbl.Insert(netip.MustParsePrefix(p), nh); err != nil {
		t.Fatal(err)
	}
}

// TestAgainstReference drives a table through random inserts, deletes and
// batches (both the in-place and the path-copying Apply paths) and compares
// every version with the brute-force reference. Each old snapshot must still
// match the reference it was taken with after the next write.
func TestAgainstReference(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		rng := rand.New(rand.NewPCG(seed, 99))
		var tbl Table
		r := ref{}
		var live []netip.Prefix
		for step := range 400 {
			oldView, oldRef := tbl.Snapshot(), r.clone()
			randomWrite(t, rng, &tbl, r, &live, step)
			if step%20 == 0 || step > 390 {
				probes := r.probes(rng, 200)
				checkView(t, tbl.Snapshot(), r, probes)
				checkView(t, oldView, oldRef, oldRef.probes(rng, 50))
			}
		}
	}
}

// randomWrite performs one random write on tbl and mirrors it in r. Early
// steps use big batches so the table grows past the path-copying threshold.
func randomWrite(t *testing.T, rng *rand.Rand, tbl *Table, r ref, live *[]netip.Prefix, step int) {
	t.Helper()
	change := func() Change {
		if len(*live) > 0 && rng.IntN(3) == 0 {
			return Change{Prefix: (*live)[rng.IntN(len(*live))], Delete: true}
		}
		p := overlapping(rng)
		*live = append(*live, p)
		return Change{Prefix: p, NextHop: rng.Uint32N(1000)}
	}
	switch op := rng.IntN(3); {
	case op == 0 || step < 10:
		n := 1 + rng.IntN(8)
		if step < 10 {
			n = 300
		}
		batch := make([]Change, n)
		for i := range batch {
			batch[i] = change()
			r.apply(batch[i])
		}
		if err := tbl.Apply(batch); err != nil {
			t.Fatal(err)
		}
	default:
		c := change()
		wantOK := false
		if _, ok := r[c.Prefix.Masked()]; ok && c.Delete {
			wantOK = true
		}
		r.apply(c)
		if c.Delete {
			ok, err := tbl.Delete(c.Prefix)
			if err != nil || ok != wantOK {
				t.Fatalf("Delete(%s) = %v,%v, want %v", c.Prefix, ok, err, wantOK)
			}
		} else if err := tbl.Insert(c.Prefix, c.NextHop); err != nil {
			t.Fatal(err)
		}
	}
}

func TestZeroAllocLookup(t *testing.T) {
	var s Tables
	tbl := s.Ensure(5)
	batch := make([]Change, 0, 10000)
	for i, p := range mixed(10000, 7) {
		batch = append(batch, Change{Prefix: p, NextHop: NextHop(i)})
	}
	if err := tbl.Apply(batch); err != nil {
		t.Fatal(err)
	}
	dsts := [][4]byte{{10, 0, 0, 1}, b4(u32(batch[17].Prefix.Addr().As4())), {255, 255, 255, 255}}
	var sink NextHop
	fns := map[string]func(){
		"Table.Lookup": func() {
			for _, d := range dsts {
				nh, _ := tbl.Lookup(d)
				sink += nh
			}
		},
		"Tables.Get+Snapshot+View.Lookup": func() {
			v := s.Get(5).Snapshot()
			for _, d := range dsts {
				nh, _ := v.Lookup(d)
				sink += nh
			}
		},
		"missing VRF": func() {
			nh, _ := s.Get(6).Lookup(dsts[0])
			sink += nh
		},
	}
	for name, fn := range fns {
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
	_ = sink
}

func TestTables(t *testing.T) {
	var s Tables
	if s.Get(3) != nil || s.Get(MaxVRFs+1) != nil {
		t.Fatal("Get of an unknown VRF is not nil")
	}
	a := s.Ensure(3)
	if a == nil || s.Ensure(3) != a || s.Get(3) != a {
		t.Fatal("Ensure is not idempotent")
	}
	if s.Ensure(MaxVRFs) != nil {
		t.Fatal("Ensure beyond MaxVRFs returned a table")
	}
	mustInsert(t, a, "198.18.0.0/15", 9)
	s.Ensure(MaxVRFs - 1)
	var vrfs []uint32
	for vrf := range s.All() {
		vrfs = append(vrfs, vrf)
	}
	if len(vrfs) != 2 || vrfs[0] != 3 || vrfs[1] != MaxVRFs-1 {
		t.Fatalf("All() = %v, want [3 %d]", vrfs, MaxVRFs-1)
	}
	s.Remove(3)
	s.Remove(4) // absent: no-op
	if s.Get(3) != nil {
		t.Fatal("removed VRF still present")
	}
	if nh, ok := a.Lookup([4]byte{198, 18, 1, 1}); !ok || nh != 9 {
		t.Fatal("a removed table stopped working for a reader that holds it")
	}
	if b := s.Ensure(3); b == a || b.Len() != 0 {
		t.Fatal("Ensure after Remove did not create a fresh table")
	}
}
