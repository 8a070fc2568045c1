package route

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/gaissmai/bart"
)

type fixture struct {
	batch []Change
	tbl   *Table
	dsts  [][4]byte // addresses inside random routes of tbl
}

// million is built once per test binary: 1M mixed routes in one Table.
var millionOnce = sync.OnceValues(func() (*fixture, error) {
	f := &fixture{batch: millionBatch(), tbl: new(Table)}
	if err := f.tbl.Apply(f.batch); err != nil {
		return nil, err
	}
	f.dsts = make([][4]byte, 1<<16)
	for i := range f.dsts {
		c := f.batch[(i*7919)%len(f.batch)]
		host := uint32(i*2654435761) & (^uint32(0) >> c.Prefix.Bits())
		f.dsts[i] = b4(u32(c.Prefix.Addr().As4()) | host)
	}
	return f, nil
})

func million(b *testing.B) *fixture {
	f, err := millionOnce()
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func reportRate(b *testing.B, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// BenchmarkLookup1M looks up addresses inside random routes of a 1M-route
// table (a cache-cold worst case: 64Ki destinations spread over ~60 MB).
func BenchmarkLookup1M(b *testing.B) {
	f := million(b)
	b.Run("Table", func(b *testing.B) {
		b.ReportAllocs()
		var sink NextHop
		for i := range b.N {
			nh, _ := f.tbl.Lookup(f.dsts[i&(len(f.dsts)-1)])
			sink += nh
		}
		reportRate(b, "lookups/s")
		_ = sink
	})
	b.Run("View", func(b *testing.B) {
		b.ReportAllocs()
		v := f.tbl.Snapshot()
		var sink NextHop
		for i := range b.N {
			nh, _ := v.Lookup(f.dsts[i&(len(f.dsts)-1)])
			sink += nh
		}
		reportRate(b, "lookups/s")
		_ = sink
	})
	b.Run("View-hot64", func(b *testing.B) {
		b.ReportAllocs()
		v := f.tbl.Snapshot()
		var sink NextHop
		for i := range b.N {
			nh, _ := v.Lookup(f.dsts[i&63])
			sink += nh
		}
		reportRate(b, "lookups/s")
		_ = sink
	})
}

// BenchmarkInsertPersist1M replaces the next hop of existing routes of a
// 1M-route table, one published version per Insert.
func BenchmarkInsertPersist1M(b *testing.B) {
	f := million(b)
	tbl := new(Table)
	if err := tbl.Apply(f.batch); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c := f.batch[(i*7919)%len(f.batch)]
		if err := tbl.Insert(c.Prefix, c.NextHop+1); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "inserts/s")
}

// BenchmarkApplyBatch100At1M publishes batches of 100 new /32 routes
// (path-copying Apply) into a 1M-route table.
func BenchmarkApplyBatch100At1M(b *testing.B) {
	f := million(b)
	tbl := new(Table)
	if err := tbl.Apply(f.batch); err != nil {
		b.Fatal(err)
	}
	batch := make([]Change, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for j := range batch {
			a := b4(uint32(i*len(batch) + j))
			a[0] = 198 // 198.x: may or may not collide with the fixture; both are fine
			batch[j] = Change{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), NextHop: 1}
		}
		if err := tbl.Apply(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "routes/s")
}

// BenchmarkApply1M bulk-loads 1M routes into an empty table, one publish.
func BenchmarkApply1M(b *testing.B) {
	f := million(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := new(Table).Apply(f.batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(f.batch))/b.Elapsed().Seconds(), "routes/s")
}

// lpm is what BenchmarkFlavours compares: the two bart flavours with values.
type lpm interface {
	Insert(netip.Prefix, NextHop)
	Lookup(netip.Addr) (NextHop, bool)
}

// BenchmarkFlavours compares bart.Table (used) with bart.Fast (the
// alternative, more memory per node) at 1M routes: cold lookup ns/op and the
// heap each takes (B/route). It backs docs/decisions/0002-route-tables.md.
func BenchmarkFlavours(b *testing.B) {
	f := million(b)
	for _, c := range []struct {
		name string
		make func() lpm
	}{
		{"bart.Table", func() lpm { return new(bart.Table[NextHop]) }},
		{"bart.Fast", func() lpm { return new(bart.Fast[NextHop]) }},
	} {
		h0 := heapInUse()
		t := c.make()
		for _, ch := range f.batch {
			t.Insert(ch.Prefix, ch.NextHop)
		}
		perRoute := float64(heapInUse()-h0) / float64(len(f.batch))
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink NextHop
			for i := range b.N {
				nh, _ := t.Lookup(netip.AddrFrom4(f.dsts[i&(len(f.dsts)-1)]))
				sink += nh
			}
			b.ReportMetric(perRoute, "B/route")
			_ = sink
		})
	}
}
