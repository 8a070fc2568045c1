package flowtable

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrent runs pollers that insert an overlapping set of stable flows
// (each poller in its own order) plus their own short-lived flows, readers
// that look up stable flows already created, and a sweeper that ages the
// short-lived ones. Checks: exactly one winner per stable key, every loser
// gets the winner's Ref, a created flow is never missed by a lookup, no
// key appears twice, and stale Refs are refused.
func TestConcurrent(t *testing.T) {
	const (
		pollers = 4
		stable  = 3000
		now     = 1000 // stable flows are inserted and accounted at now
	)
	tbl := newTable(t, Config{Capacity: stable + pollers*512, IdleTimeout: 100})
	var (
		created [stable]atomic.Bool
		winners [stable]atomic.Int32
		refs    [stable]atomic.Uint64
		done    atomic.Bool
		wg      sync.WaitGroup
		errs    = make(chan error, 2*pollers+1)
	)
	for p := range pollers {
		wg.Go(func() {
			errs <- insertStable(tbl, p, stable, now, &created, &winners, &refs)
		})
		wg.Go(func() { errs <- churn(tbl, p, &done) })
	}
	var readerErr error
	var rwg sync.WaitGroup
	rwg.Go(func() { readerErr = lookupCreated(tbl, &created, &refs, &done) })
	rwg.Go(func() { sweep(tbl, now, &done) })
	wg.Wait()
	done.Store(true)
	rwg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if readerErr != nil {
		t.Fatal(readerErr)
	}
	checkFinal(t, tbl, stable, now, &winners, &refs)
}

// insertStable inserts every stable flow: even pollers in one shared order
// (so they race on the same key at the same time), odd ones in their own.
func insertStable(tbl *Table, p, n int, now uint32, created *[3000]atomic.Bool, winners *[3000]atomic.Int32, refs *[3000]atomic.Uint64) error {
	for _, i := range rand.New(rand.NewPCG(uint64(p%2*p), 1)).Perm(n) {
		k := tcpKey(uint32(i))
		r, err := tbl.Insert(k, fwdTo(uint32(i)), k.Reverse(), fwdTo(uint32(i)+1), now)
		switch err {
		case nil:
			winners[i].Add(1)
			if !refs[i].CompareAndSwap(0, uint64(r)) {
				return fmt.Errorf("flow %d: second winner", i)
			}
			created[i].Store(true)
		case ErrExists:
			if !tbl.Account(r, 1, now) {
				return fmt.Errorf("flow %d: ErrExists with a stale ref", i)
			}
		default:
			return fmt.Errorf("flow %d: %w", i, err)
		}
	}
	return nil
}

// churn inserts, accounts and deletes short-lived flows of poller p at tick
// 0, so the sweeper ages those it does not delete itself.
func churn(tbl *Table, p int, done *atomic.Bool) error {
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < 200000 && !done.Load() && time.Now().Before(deadline); i++ {
		k := tcpKey(uint32(1<<20 + p<<16 + i%512))
		r, err := tbl.Insert(k, fwdTo(7), k.Reverse(), fwdTo(8), 0)
		if err == ErrFull || err == ErrExists {
			continue
		}
		if err != nil {
			return fmt.Errorf("churn flow: %w", err)
		}
		if i%3 == 0 && tbl.Delete(r) && (tbl.Delete(r) || tbl.Account(r, 1, 0)) {
			return fmt.Errorf("churn flow: ref alive after delete")
		}
	}
	return nil
}

// lookupCreated checks that stable flows, once created, are always found
// in both directions with their winner's Ref.
func lookupCreated(tbl *Table, created *[3000]atomic.Bool, refs *[3000]atomic.Uint64, done *atomic.Bool) error {
	for n := 0; !done.Load(); n++ {
		i := n % len(created)
		if !created[i].Load() {
			continue
		}
		k := tcpKey(uint32(i))
		r, a, ok := tbl.Lookup(&k)
		if !ok || uint64(r) != refs[i].Load() || a.NextHop != uint32(i) {
			return fmt.Errorf("flow %d lost: %v %x %+v", i, ok, r, a)
		}
		rk := k.Reverse()
		if _, a, ok := tbl.Lookup(&rk); !ok || a.NextHop != uint32(i)+1 {
			return fmt.Errorf("reverse of flow %d lost", i)
		}
	}
	return nil
}

func sweep(tbl *Table, now uint32, done *atomic.Bool) {
	for !done.Load() {
		tbl.Age(now)
		time.Sleep(time.Millisecond)
	}
}

func checkFinal(t *testing.T, tbl *Table, n int, now uint32, winners *[3000]atomic.Int32, refs *[3000]atomic.Uint64) {
	tbl.Age(now)
	for i := range n {
		if w := winners[i].Load(); w != 1 {
			t.Fatalf("flow %d: %d winners", i, w)
		}
		k := tcpKey(uint32(i))
		if r, _, ok := tbl.Lookup(&k); !ok || uint64(r) != refs[i].Load() {
			t.Fatalf("flow %d lost at the end", i)
		}
	}
	seen := map[Key]bool{}
	tbl.Flows(func(f FlowInfo) bool {
		for _, k := range []Key{f.Fwd.Key, f.Rev.Key} {
			if seen[k] {
				t.Errorf("key %v twice", k)
			}
			seen[k] = true
		}
		return true
	})
	if s := tbl.Stats(); s.Flows != n || len(seen) != 2*n {
		t.Fatalf("%d flows in stats, %d keys walked, want %d flows: %+v", s.Flows, len(seen), n, s)
	}
}
