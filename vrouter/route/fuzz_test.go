package route

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// opLen is the size of one fuzz operation: 4 address bytes, a length byte
// (>= 33 makes an IPv6 or invalid prefix), a flags byte and a next-hop byte.
const opLen = 7

// maxOps bounds one input: every op is checked against the brute-force
// reference at every probe, cubic in the ops, and a long input stalled the
// fuzzer for seconds.
const maxOps = 128

const (
	flagDelete = 1 << iota // remove instead of insert
	flagDirect             // Insert/Delete now instead of queueing for Apply
	flagFlush              // Apply the queued batch after this op
)

// FuzzTable applies a decoded sequence of changes, one by one or in batches,
// and compares every published version with the brute-force reference.
func FuzzTable(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 8, flagFlush, 1, 10, 1, 2, 3, 32, flagDirect, 2, 0, 0, 0, 0, 0, flagFlush, 3})
	f.Add([]byte{10, 0, 0, 0, 8, 0, 1, 10, 0, 0, 0, 8, flagDelete | flagFlush, 0, 1, 1, 1, 1, 40, flagDirect, 5})
	f.Add([]byte{255, 255, 255, 255, 32, flagDirect, 9, 255, 255, 255, 0, 24, flagFlush, 8, 0, 0, 0, 0, 200, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		data = data[:min(len(data), maxOps*opLen)]
		var tbl Table
		r := ref{}
		var queued []Change
		for i := 0; i+opLen <= len(data); i += opLen {
			op := data[i : i+opLen]
			c := Change{Prefix: fuzzPrefix(op), NextHop: NextHop(op[6]), Delete: op[5]&flagDelete != 0}
			fuzzOp(t, &tbl, r, &queued, c, op[5])
			checkView(t, tbl.Snapshot(), r, fuzzProbes(r, data))
		}
		flush(t, &tbl, r, queued)
		checkView(t, tbl.Snapshot(), r, fuzzProbes(r, data))
	})
}

func fuzzPrefix(op []byte) netip.Prefix {
	a := netip.AddrFrom4([4]byte(op[:4]))
	switch bits := int(op[4]); {
	case bits <= 32:
		return netip.PrefixFrom(a, bits)
	case bits < 128:
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 1, 13, 0xb8, op[0]}), 32)
	default:
		return netip.PrefixFrom(a, bits)
	}
}

func fuzzOp(t *testing.T, tbl *Table, r ref, queued *[]Change, c Change, flags byte) {
	valid := c.Prefix.IsValid() && c.Prefix.Addr().Is4()
	if flags&flagDirect != 0 {
		directOp(t, tbl, r, c, valid)
		return
	}
	*queued = append(*queued, c)
	if flags&flagFlush == 0 {
		return
	}
	flush(t, tbl, r, *queued)
	*queued = (*queued)[:0]
}

// flush applies the queued batch; r changes only if every change is valid.
func flush(t *testing.T, tbl *Table, r ref, batch []Change) {
	allValid := true
	for _, c := range batch {
		allValid = allValid && c.Prefix.IsValid() && c.Prefix.Addr().Is4()
	}
	err := tbl.Apply(batch)
	if (err == nil) != allValid {
		t.Fatalf("Apply(%v) = %v, want error %v", batch, err, !allValid)
	}
	if err != nil {
		return
	}
	for _, c := range batch {
		r.apply(c)
	}
}

func directOp(t *testing.T, tbl *Table, r ref, c Change, valid bool) {
	var err error
	if c.Delete {
		_, had := r[c.Prefix.Masked()]
		var ok bool
		ok, err = tbl.Delete(c.Prefix)
		if err == nil && ok != had {
			t.Fatalf("Delete(%s) = %v, want %v", c.Prefix, ok, had)
		}
	} else {
		err = tbl.Insert(c.Prefix, c.NextHop)
	}
	if (err == nil) != valid {
		t.Fatalf("op on %s: err %v, want error %v", c.Prefix, err, !valid)
	}
	if valid {
		r.apply(c)
	}
}

// fuzzProbes are the reference's route boundaries plus addresses from data.
func fuzzProbes(r ref, data []byte) [][4]byte {
	rng := rand.New(rand.NewPCG(uint64(len(data)), 0))
	out := r.probes(rng, 8)
	for i := 0; i+4 <= len(data) && i < 64; i += 3 {
		out = append(out, [4]byte(data[i:i+4]))
	}
	return out
}
