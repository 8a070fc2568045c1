package flowtable

import "testing"

// TestZeroAllocs proves the packet- and setup-path calls allocate nothing.
func TestZeroAllocs(t *testing.T) {
	s := NewSNAT(nodeIP)
	tbl := newTable(t, Config{Capacity: 1 << 12, SNAT: []*SNAT{s}})
	k := tcpKey(1)
	r := mustInsert(t, tbl, k, 1)
	miss := tcpKey(2)
	next := uint32(100)
	cases := map[string]func(){
		"Lookup hit":  func() { tbl.Lookup(&k) },
		"Lookup miss": func() { tbl.Lookup(&miss) },
		"Get":         func() { tbl.Get(r) },
		"Account":     func() { tbl.Account(r, 64, 2) },
		"Close":       func() { tbl.Close(r) },
		"Insert": func() {
			next++
			nk := tcpKey(next)
			tbl.Insert(nk, fwdTo(1), nk.Reverse(), fwdTo(2), 1)
		},
		"Insert exists": func() { tbl.Insert(k, fwdTo(1), k.Reverse(), fwdTo(2), 1) },
		"SNAT alloc+free": func() {
			if p, ok := s.Alloc(17); ok {
				s.Free(17, p)
			}
		},
	}
	for name, fn := range cases {
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s: %v allocs per call", name, n)
		}
	}
}
