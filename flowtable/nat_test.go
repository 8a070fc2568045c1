package flowtable

import (
	"sync"
	"testing"
)

func TestPortPool(t *testing.T) {
	p, err := NewPortPool(100, 229) // 130 ports: a partial last word
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint16]bool{}
	for range 130 {
		port, ok := p.Alloc()
		if !ok || port < 100 || port > 229 || seen[port] {
			t.Fatalf("alloc: %d %v (dup %v)", port, ok, seen[port])
		}
		seen[port] = true
	}
	if _, ok := p.Alloc(); ok {
		t.Fatal("alloc from an exhausted pool")
	}
	if !p.Free(150) || p.Free(150) || p.Free(99) || p.Free(230) {
		t.Fatal("free: double free or out of range accepted")
	}
	if port, ok := p.Alloc(); !ok || port != 150 {
		t.Fatalf("realloc got %d %v, want the only free port 150", port, ok)
	}
	if p.InUse() != 130 {
		t.Fatalf("in use %d", p.InUse())
	}
	for _, r := range [][2]uint16{{0, 5}, {10, 9}} {
		if _, err := NewPortPool(r[0], r[1]); err == nil {
			t.Errorf("range %v accepted", r)
		}
	}
}

func TestSNATRanges(t *testing.T) {
	s := NewSNAT(nodeIP)
	cases := []struct {
		proto  uint8
		lo, hi uint16
	}{{6, 56000, 57023}, {17, 57024, 58047}, {1, 57024, 58047}}
	for _, c := range cases {
		n := 0
		for {
			port, ok := s.Alloc(c.proto)
			if !ok {
				break
			}
			if port < c.lo || port > c.hi {
				t.Fatalf("proto %d: port %d outside %d-%d", c.proto, port, c.lo, c.hi)
			}
			n++
		}
		if n != int(c.hi-c.lo)+1 {
			t.Fatalf("proto %d: %d ports", c.proto, n)
		}
	}
	if _, ok := s.Alloc(47); ok || s.Free(47, 1) {
		t.Fatal("GRE got a port")
	}
}

// TestPortPoolConcurrent allocates and frees from several goroutines: no
// port is held twice.
func TestPortPoolConcurrent(t *testing.T) {
	p, _ := NewPortPool(TCPPortMin, TCPPortMax)
	var owner [TCPPortMax + 1]int32
	var mu sync.Mutex // guards owner; only the test's bookkeeping
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for range 20000 {
				port, ok := p.Alloc()
				if !ok {
					continue
				}
				mu.Lock()
				if owner[port] != 0 {
					t.Errorf("port %d held twice", port)
				}
				owner[port] = int32(g + 1)
				mu.Unlock()
				mu.Lock()
				owner[port] = 0
				mu.Unlock()
				if !p.Free(port) {
					t.Errorf("free %d failed", port)
				}
			}
		})
	}
	wg.Wait()
	if p.InUse() != 0 {
		t.Fatalf("in use %d", p.InUse())
	}
}
