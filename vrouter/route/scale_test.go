package route

import (
	"runtime"
	"testing"
	"time"
)

// heapInUse returns HeapAlloc after two full collections.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func millionBatch() []Change {
	ps := mixed(1<<20, 42)
	batch := make([]Change, len(ps))
	for i, p := range ps {
		batch[i] = Change{Prefix: p, NextHop: NextHop(i)}
	}
	return batch
}

// TestScaleOneMillion loads 1,048,576 mixed prefixes into one VN with one
// Apply and reports the heap it takes. Run with -v for the numbers.
func TestScaleOneMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 1M routes; skipped under -short")
	}
	batch := millionBatch()
	var s Tables
	h0 := heapInUse()
	start := time.Now()
	tbl := s.Ensure(1)
	if err := tbl.Apply(batch); err != nil {
		t.Fatal(err)
	}
	load := time.Since(start)
	bytes := heapInUse() - h0
	perRoute := float64(bytes) / float64(len(batch))
	t.Logf("1M routes: Apply %v, heap %d B = %.1f B/route", load, bytes, perRoute)
	if tbl.Len() != len(batch) {
		t.Fatalf("Len = %d, want %d", tbl.Len(), len(batch))
	}
	if perRoute > 120 {
		t.Errorf("%.1f B/route, want <= 120", perRoute)
	}
	checkHostRoutes(t, tbl, batch)
	start = time.Now()
	if err := tbl.Insert(batch[0].Prefix, 12345); err != nil {
		t.Fatal(err)
	}
	t.Logf("one persistent Insert at 1M routes: %v", time.Since(start))
	runtime.KeepAlive(batch)
}

// checkHostRoutes looks up every 97th /32 route: a /32 is always the
// longest match for its own address.
func checkHostRoutes(t *testing.T, tbl *Table, batch []Change) {
	v := tbl.Snapshot()
	for i := 0; i < len(batch); i += 97 {
		c := batch[i]
		if c.Prefix.Bits() != 32 {
			continue
		}
		if nh, ok := v.Lookup(c.Prefix.Addr().As4()); !ok || nh != c.NextHop {
			t.Fatalf("Lookup(%s) = %d,%v, want %d", c.Prefix, nh, ok, c.NextHop)
		}
	}
}

// TestScaleManyVNs creates 4096 VNs, first empty, then with 16 routes each,
// and reports the memory per VN: it must grow with routes, not with VNs.
func TestScaleManyVNs(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 4096 VNs; skipped under -short")
	}
	const nVN, perVN = 4096, 16
	ps := mixed(nVN*perVN, 9)
	var s Tables
	h0 := heapInUse()
	for vrf := range uint32(nVN) {
		s.Ensure(vrf)
	}
	empty := float64(heapInUse()-h0) / nVN
	for vrf := range uint32(nVN) {
		batch := make([]Change, perVN)
		for i := range batch {
			batch[i] = Change{Prefix: ps[int(vrf)*perVN+i], NextHop: vrf}
		}
		if err := s.Get(vrf).Apply(batch); err != nil {
			t.Fatal(err)
		}
	}
	small := float64(heapInUse()-h0) / nVN
	t.Logf("%d VNs: %.0f B per empty VN, %.0f B per VN with %d routes (%.0f B/route)",
		nVN, empty, small, perVN, small/perVN)
	if empty > 256 {
		t.Errorf("%.0f B per empty VN, want <= 256", empty)
	}
	if nh, ok := s.Get(4000).Lookup(ps[4000*perVN].Addr().As4()); !ok || nh != 4000 {
		t.Fatalf("VN 4000 lookup = %d,%v", nh, ok)
	}
	runtime.KeepAlive(&s)
}
