package route

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// ref is the brute-force reference: a map of routes and a linear LPM.
type ref map[netip.Prefix]NextHop

func (r ref) lookup(dst [4]byte) (NextHop, bool) {
	a := netip.AddrFrom4(dst)
	for bits := 32; bits >= 0; bits-- {
		if nh, ok := r[netip.PrefixFrom(a, bits).Masked()]; ok {
			return nh, true
		}
	}
	return 0, false
}

func (r ref) apply(c Change) {
	p := c.Prefix.Masked()
	if c.Delete {
		delete(r, p)
		return
	}
	r[p] = c.NextHop
}

func (r ref) clone() ref {
	c := make(ref, len(r))
	for p, nh := range r {
		c[p] = nh
	}
	return c
}

type route struct {
	p  netip.Prefix
	nh NextHop
}

func (r ref) sorted() []route {
	out := make([]route, 0, len(r))
	for p, nh := range r {
		out = append(out, route{p, nh})
	}
	slices.SortFunc(out, func(a, b route) int {
		return cmp.Or(a.p.Addr().Compare(b.p.Addr()), cmp.Compare(a.p.Bits(), b.p.Bits()))
	})
	return out
}

// probes returns, for every route, its first and last address and the ones
// just outside it, plus n random addresses.
func (r ref) probes(rng *rand.Rand, n int) [][4]byte {
	out := make([][4]byte, 0, 4*len(r)+n)
	for p := range r {
		first := u32(p.Addr().As4())
		last := first | ^uint32(0)>>p.Bits()
		if p.Bits() == 0 {
			last = ^uint32(0)
		}
		out = append(out, b4(first), b4(last), b4(first-1), b4(last+1))
	}
	for range n {
		out = append(out, b4(rng.Uint32()))
	}
	return out
}

func u32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

func b4(v uint32) [4]byte { return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// checkView compares v with r: Len, All (sorted) and Lookup of every probe.
func checkView(t testing.TB, v *View, r ref, probes [][4]byte) {
	t.Helper()
	if v.Len() != len(r) {
		t.Fatalf("Len = %d, want %d", v.Len(), len(r))
	}
	want := r.sorted()
	i := 0
	for p, nh := range v.All() {
		if i >= len(want) || want[i] != (route{p, nh}) {
			t.Fatalf("All()[%d] = %s→%d, want %v", i, p, nh, want[min(i, len(want)-1)])
		}
		i++
	}
	if i != len(want) {
		t.Fatalf("All() yielded %d routes, want %d", i, len(want))
	}
	for _, a := range probes {
		gnh, gok := v.Lookup(a)
		wnh, wok := r.lookup(a)
		if gnh != wnh || gok != wok {
			t.Fatalf("Lookup(%v) = %d,%v, want %d,%v", netip.AddrFrom4(a), gnh, gok, wnh, wok)
		}
	}
}

// overlapping returns a random IPv4 prefix from a small address space so
// that prefixes nest often; /0 and /32 are frequent.
func overlapping(rng *rand.Rand) netip.Prefix {
	octets := [...]byte{0, 1, 10, 128, 255}
	var a [4]byte
	for i := range a {
		if rng.IntN(4) == 0 {
			a[i] = byte(rng.Uint32())
		} else {
			a[i] = octets[rng.IntN(len(octets))]
		}
	}
	bits := rng.IntN(35)
	switch bits {
	case 33:
		bits = 0
	case 34:
		bits = 32
	}
	return netip.PrefixFrom(netip.AddrFrom4(a), bits) // host bits left set on purpose
}

// mixed returns n distinct prefixes shaped like a large VN/FIB table:
// 50% /32 host routes, 30% /24, 20% uniformly /8../31.
func mixed(n int, seed uint64) []netip.Prefix {
	rng := rand.New(rand.NewPCG(seed, 1))
	seen := make(map[netip.Prefix]struct{}, n)
	out := make([]netip.Prefix, 0, n)
	for len(out) < n {
		bits := 8 + rng.IntN(24)
		switch x := rng.IntN(10); {
		case x < 5:
			bits = 32
		case x < 8:
			bits = 24
		}
		p := netip.PrefixFrom(netip.AddrFrom4(b4(rng.Uint32())), bits).Masked()
		if _, dup := seen[p]; !dup {
			seen[p] = struct{}{}
			out = append(out, p)
		}
	}
	return out
}
