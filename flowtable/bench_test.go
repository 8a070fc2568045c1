package flowtable

import (
	"math/rand/v2"
	"sync"
	"testing"
)

func reportRate(b *testing.B, n int, unit string) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit)
}

// flowKey is benchmark flow i's forward key (distinct for all i < 2^32).
func flowKey(i uint32) Key {
	k := tcpKey(i * 2654435761)
	k.VRF = i & 7
	return k
}

type lookupFixture struct {
	tbl  *Table
	keys []Key // every flow's forward or reverse key, shuffled
}

// million is built once per test binary: 1M flows (2M entries) in a table
// sized for exactly 1M flows (256 MiB).
var million = sync.OnceValues(func() (*lookupFixture, error) {
	const n = 1 << 20
	tbl, err := New(Config{Capacity: n})
	if err != nil {
		return nil, err
	}
	f := &lookupFixture{tbl: tbl, keys: make([]Key, n)}
	for i := range uint32(n) {
		k := flowKey(i)
		if _, err := tbl.Insert(k, fwdTo(i), k.Reverse(), fwdTo(i), 0); err != nil {
			return nil, err
		}
		f.keys[i] = k
		if i%2 == 1 {
			f.keys[i] = k.Reverse()
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { f.keys[i], f.keys[j] = f.keys[j], f.keys[i] })
	return f, nil
})

// BenchmarkLookup1M looks up keys of a full 1M-flow table: random keys over
// all flows (cache-cold), 64 hot keys, absent keys, and cold keys from two
// goroutines.
func BenchmarkLookup1M(b *testing.B) {
	f, err := million()
	if err != nil {
		b.Fatal(err)
	}
	mask := len(f.keys) - 1
	b.Run("cold", func(b *testing.B) { benchLookup(b, f.tbl, f.keys, mask) })
	b.Run("hot64", func(b *testing.B) { benchLookup(b, f.tbl, f.keys, 63) })
	miss := make([]Key, 1<<16)
	for i := range miss {
		miss[i] = flowKey(uint32(1<<24 + i))
	}
	b.Run("miss", func(b *testing.B) { benchLookup(b, f.tbl, miss, len(miss)-1) })
	b.Run("cold-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := rand.IntN(len(f.keys)); pb.Next(); i++ {
				if _, _, ok := f.tbl.Lookup(&f.keys[i&mask]); !ok {
					b.Error("miss")
					return
				}
			}
		})
		reportRate(b, b.N, "lookups/s")
	})
}

func benchLookup(b *testing.B, tbl *Table, keys []Key, mask int) {
	b.ReportAllocs()
	hits := 0
	for i := range b.N {
		if _, _, ok := tbl.Lookup(&keys[i&mask]); ok {
			hits++
		}
	}
	reportRate(b, b.N, "lookups/s")
	_ = hits
}

// BenchmarkAccount counts packets on one flow's entry (a poller's per-packet
// cost after a hit).
func BenchmarkAccount(b *testing.B) {
	tbl := newTable(b, Config{Capacity: 1024})
	r := mustInsert(b, tbl, tcpKey(1), 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tbl.Account(r, 64, uint32(i>>20))
	}
	reportRate(b, b.N, "pkts/s")
}

// BenchmarkFlowSetup inserts new flows (forward+reverse pair) into a
// default-size table (512K flows) kept between 50% and 100% full: half is
// long-lived flows, the other half is inserted in the timed loop and
// deleted with the timer stopped. One goroutine, then two.
func BenchmarkFlowSetup(b *testing.B) {
	b.Run("1goroutine", func(b *testing.B) { benchSetup(b, 1) })
	b.Run("2goroutines", func(b *testing.B) { benchSetup(b, 2) })
}

func benchSetup(b *testing.B, workers int) {
	tbl := newTable(b, Config{})
	half := tbl.Capacity() / 2
	for i := range uint32(half) {
		k := flowKey(1<<31 | i)
		if _, err := tbl.Insert(k, fwdTo(1), k.Reverse(), fwdTo(2), 0); err != nil {
			b.Fatal(err)
		}
	}
	refs := make([][]Ref, workers)
	for w := range refs {
		refs[w] = make([]Ref, 0, half/workers)
	}
	b.ReportAllocs()
	b.ResetTimer()
	next := uint32(0)
	for done := 0; done < b.N; {
		round := min(b.N-done, half/workers*workers)
		setupRound(b, tbl, refs, next, round/workers)
		next += uint32(round)
		done += round
		b.StopTimer()
		deleteAll(b, tbl, refs)
		b.StartTimer()
	}
	reportRate(b, b.N, "flows/s")
	b.ReportMetric(float64(tbl.Stats().Full), "refused")
}

// setupRound runs workers goroutines, each inserting n new flows.
func setupRound(b *testing.B, tbl *Table, refs [][]Ref, base uint32, n int) {
	var wg sync.WaitGroup
	for w := range refs {
		wg.Go(func() {
			start, mine := base+uint32(w*n), refs[w] // local: no false sharing
			defer func() { refs[w] = mine }()
			for i := range uint32(n) {
				k := flowKey(start + i)
				r, err := tbl.Insert(k, fwdTo(i), k.Reverse(), fwdTo(i), 1)
				if err == nil {
					mine = append(mine, r)
				} else if err != ErrFull { // ErrFull: a full probe window, counted in Stats
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func deleteAll(b *testing.B, tbl *Table, refs [][]Ref) {
	for w := range refs {
		for _, r := range refs[w] {
			if !tbl.Delete(r) {
				b.Fatal("delete failed")
			}
		}
		refs[w] = refs[w][:0]
	}
}

// BenchmarkAge sweeps a default-size table holding 256K flows, none idle.
func BenchmarkAge(b *testing.B) {
	tbl := newTable(b, Config{})
	for i := range uint32(tbl.Capacity() / 2) {
		k := flowKey(i)
		if _, err := tbl.Insert(k, fwdTo(1), k.Reverse(), fwdTo(2), 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if tbl.Age(1) != 0 {
			b.Fatal("aged live flows")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/sweep")
}

// BenchmarkSNAT allocates and frees one port (two goroutines contend).
func BenchmarkSNAT(b *testing.B) {
	s := NewSNAT(nodeIP)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if p, ok := s.Alloc(6); ok {
				s.Free(6, p)
			}
		}
	})
	reportRate(b, b.N, "ports/s")
}
