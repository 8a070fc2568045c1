package route

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentBatches checks that readers never see a half-applied batch.
// Probe i has a /32 route and a covering /24 route. Batch g (g = 1, 2, ...)
// either inserts every /32 with next hop g and deletes every /24 (g even), or
// deletes every /32 and inserts every /24 with next hop g (g odd). A reader
// that takes one Snapshot must therefore get the same next hop for every
// probe, from a /32 when it is even and from a /24 when it is odd, and the
// generation must never go backwards. Lookups via Table.Lookup must be
// monotonic too. The filler routes move the table across the threshold
// between the copy-and-edit and the path-copying Apply paths.
func TestConcurrentBatches(t *testing.T) {
	for _, filler := range []int{0, 30000} {
		t.Run(fmt.Sprintf("filler=%d", filler), func(t *testing.T) { concurrentBatches(t, filler) })
	}
}

const nProbes = 64

func probeAddr(i int) [4]byte { return [4]byte{10, byte(i), 7, 9} }

func batchFor(g NextHop) []Change {
	batch := make([]Change, 0, 2*nProbes)
	for i := range nProbes {
		host := netip.PrefixFrom(netip.AddrFrom4(probeAddr(i)), 32)
		net := netip.PrefixFrom(netip.AddrFrom4(probeAddr(i)), 24).Masked()
		batch = append(batch,
			Change{Prefix: host, NextHop: g, Delete: g%2 == 1},
			Change{Prefix: net, NextHop: g, Delete: g%2 == 0})
	}
	return batch
}

func concurrentBatches(t *testing.T, filler int) {
	var s Tables
	tbl := s.Ensure(1)
	loadFiller(t, tbl, filler)
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 2 {
		wg.Go(func() { errs <- snapshotReader(tbl, &done) })
	}
	wg.Go(func() { errs <- lookupReader(&s, &done) })
	gens := writeBatches(t, tbl, 300, 3*time.Second)
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d batches published", gens)
}

func loadFiller(t *testing.T, tbl *Table, n int) {
	batch := make([]Change, 0, n)
	for i, p := range mixed(n, 5) {
		a := p.Addr().As4()
		a[0] = 100 // keep filler out of 10.0.0.0/8
		batch = append(batch, Change{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), max(p.Bits(), 8)), NextHop: NextHop(i)})
	}
	if err := tbl.Apply(batch); err != nil {
		t.Fatal(err)
	}
}

// writeBatches publishes generations 1..n, bounded by n and by d.
func writeBatches(t *testing.T, tbl *Table, n int, d time.Duration) int {
	deadline := time.Now().Add(d)
	g := 1
	for ; g <= n && time.Now().Before(deadline); g++ {
		if err := tbl.Apply(batchFor(NextHop(g))); err != nil {
			t.Fatal(err)
		}
	}
	return g - 1
}

func snapshotReader(tbl *Table, done *atomic.Bool) error {
	last := NextHop(0)
	for !done.Load() {
		v := tbl.Snapshot()
		first, ok := v.Lookup(probeAddr(0))
		if ok && first < last {
			return fmt.Errorf("generation went back from %d to %d", last, first)
		}
		for i := 1; i < nProbes; i++ {
			nh, ok2 := v.Lookup(probeAddr(i))
			if ok2 != ok || nh != first {
				return fmt.Errorf("half-applied batch: probe 0 → %d,%v, probe %d → %d,%v", first, ok, i, nh, ok2)
			}
		}
		if err := checkShape(v, first); ok && err != nil {
			return err
		}
		last = first
	}
	return nil
}

// checkShape verifies that generation g came from a /32 (even) or /24 (odd).
func checkShape(v *View, g NextHop) error {
	a := probeAddr(0)
	a[3]++ // same /24, other host
	nh, ok := v.Lookup(a)
	if g%2 == 1 && (!ok || nh != g) || g%2 == 0 && ok {
		return fmt.Errorf("generation %d: neighbour lookup %d,%v", g, nh, ok)
	}
	return nil
}

func lookupReader(s *Tables, done *atomic.Bool) error {
	last := NextHop(0)
	for !done.Load() {
		nh, _ := s.Get(1).Lookup(probeAddr(nProbes - 1))
		if nh < last {
			return fmt.Errorf("Table.Lookup went back from %d to %d", last, nh)
		}
		last = nh
	}
	return nil
}

// TestConcurrentTables races Get against Ensure and Remove.
func TestConcurrentTables(t *testing.T) {
	var s Tables
	var done atomic.Bool
	var wg sync.WaitGroup
	var seen atomic.Int64
	wg.Go(func() {
		for !done.Load() {
			for vrf := uint32(0); vrf < 600; vrf += 7 {
				if tbl := s.Get(vrf); tbl != nil {
					tbl.Lookup([4]byte{198, 18, 0, 1})
					seen.Add(1)
				}
			}
		}
	})
	for round := range 50 {
		for vrf := uint32(0); vrf < 600; vrf++ {
			if round%2 == 0 {
				s.Ensure(vrf)
			} else {
				s.Remove(vrf)
			}
		}
	}
	done.Store(true)
	wg.Wait()
	t.Logf("reader saw %d tables", seen.Load())
}
