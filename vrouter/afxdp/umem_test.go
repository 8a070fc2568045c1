package afxdp

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// These tests need no root: the Umem free list and the ring index logic
// are exercised against plain memory.

func TestUmemAllocFree(t *testing.T) {
	u, err := NewUmem(UmemConfig{NumFrames: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	seen := map[uint64]bool{}
	for range 8 {
		a, ok := u.Alloc()
		if !ok || a%2048 != 0 || a >= 8*2048 || seen[a] {
			t.Fatalf("alloc gave %d, %v", a, ok)
		}
		seen[a] = true
	}
	if _, ok := u.Alloc(); ok || u.FreeFrames() != 0 {
		t.Fatal("alloc beyond NumFrames")
	}
	u.Free(2048 + 300)
	u.Free(2048)       // double free: ignored
	u.Free(1 << 40)    // outside the region: ignored
	u.owner[2] = 5     // lent to a socket: not the caller's
	u.Free(2*2048 + 1) // ignored
	if u.FreeFrames() != 1 || u.BadFrees() != 3 {
		t.Fatalf("free %d, bad frees %d", u.FreeFrames(), u.BadFrees())
	}
	if a, _ := u.Alloc(); a != 2048 {
		t.Fatalf("realloc gave %d, want 2048", a)
	}
}

func TestUmemAllocFreeAllocs(t *testing.T) {
	u, err := NewUmem(UmemConfig{NumFrames: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if n := testing.AllocsPerRun(100, func() {
		a, _ := u.Alloc()
		u.Free(a)
	}); n != 0 {
		t.Fatalf("Alloc/Free allocate %.1f times", n)
	}
}

// fakeRing lays out a ring the way the kernel does, in Go memory.
func fakeRing(entries uint32) (*descRing, []byte) {
	off := unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}
	mem := make([]byte, 192+int(entries)*int(unsafe.Sizeof(Desc{})))
	r := &descRing{}
	r.descs = unsafe.Slice((*Desc)(r.bind(mem, off, entries)), entries)
	return r, mem
}

// TestRingWrap runs a producer view and a consumer view of one ring
// through several wraps of the 32-bit indices.
func TestRingWrap(t *testing.T) {
	prod, mem := fakeRing(8)
	cons := &descRing{ring: prod.ring, descs: prod.descs}
	*prod.prod, *prod.cons = 1<<32-5, 1<<32-5 // start near the index wrap
	prod.initProducer()
	cons.initConsumer()
	next, want := uint64(0), uint64(0)
	for round := range 50 {
		n := prod.free(uint32(round%7 + 1))
		for i := range n {
			prod.descs[(prod.cachedProd+i)&prod.mask] = Desc{Addr: next}
			next++
		}
		prod.submit(n)
		if prod.free(9) > 8 {
			t.Fatal("more free entries than the ring has")
		}
		m := cons.avail(uint32(round%5 + 1))
		for i := range m {
			if d := cons.descs[(cons.cachedCons+i)&cons.mask]; d.Addr != want {
				t.Fatalf("round %d: got desc %d, want %d", round, d.Addr, want)
			}
			want++
		}
		cons.release(m)
	}
	_ = mem
	if want == 0 || next-want > 8 {
		t.Fatalf("produced %d, consumed %d", next, want)
	}
}
