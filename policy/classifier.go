package policy

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
)

// event changes one rule's coverage count at a point of a partitioned
// space (an address or a port; uint64 so the end of the space, 1<<32 or
// 1<<16, is representable).
type event struct {
	at    uint64
	rule  int32
	delta int32
}

// build compiles rules (validated) into k.
func (k *classifier) build(rules []Rule) error {
	n := len(rules)
	if n > MaxRules {
		return fmt.Errorf("%w: %d rules, at most %d per direction", ErrInvalid, n, MaxRules)
	}
	pool := newRowPool((n + 63) / 64)
	allPeers := make([]int32, n) // base coverage counts of the address space
	allPorts := make([]int32, n) // and of every protocol's port space
	var addrEv []event
	var portEv [3][]event
	for i := range rules {
		r := &rules[i]
		if r.AllPeers {
			allPeers[i] = 1
		} else {
			for _, p := range r.Peers {
				ev, err := peerEvents(p, int32(i))
				if err != nil {
					return fmt.Errorf("%w: %w", ErrInvalid, err)
				}
				addrEv = append(addrEv, ev...)
			}
		}
		if r.AllPorts {
			allPorts[i] = 1
			continue
		}
		for _, p := range r.Ports {
			proto, lo, hi, err := p.parse()
			if err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			t := protoIndex(proto)
			portEv[t] = append(portEv[t],
				event{at: uint64(lo), rule: int32(i), delta: 1},
				event{at: uint64(hi) + 1, rule: int32(i), delta: -1})
		}
	}
	starts, rows := pool.partition(allPeers, addrEv, 1<<32)
	k.addr = make([]uint32, len(starts))
	for i, s := range starts {
		k.addr[i] = uint32(s)
	}
	k.addrRow = rows
	for t := range k.port {
		starts, rows := pool.partition(allPorts, portEv[t], 1<<16)
		k.port[t].start = make([]uint16, len(starts))
		for i, s := range starts {
			k.port[t].start[i] = uint16(s)
		}
		k.port[t].row = rows
	}
	_, rows = pool.partition(allPorts, nil, 1)
	k.otherRow = rows[0]
	k.words = pool.words
	k.rows = slices.Clip(pool.rows)
	return nil
}

// protoIndex is the ports table of a Port's protocol number.
func protoIndex(proto uint8) int {
	switch proto {
	case ProtoUDP:
		return 1
	case ProtoSCTP:
		return 2
	}
	return 0
}

// peerEvents are the coverage events of one peer of rule r: its CIDR
// minus its excepts, as disjoint ranges.
func peerEvents(p Peer, r int32) ([]event, error) {
	c, ex, err := p.parse()
	if err != nil {
		return nil, err
	}
	lo, end := span(c)
	slices.SortFunc(ex, func(a, b netip.Prefix) int {
		al, _ := span(a)
		bl, _ := span(b)
		return cmp.Compare(al, bl)
	})
	var ev []event
	at := lo // start of the part not yet excepted
	for _, e := range ex {
		elo, eend := span(e)
		if elo > at {
			ev = append(ev, event{at, r, 1}, event{elo, r, -1})
		}
		at = max(at, eend)
	}
	if at < end {
		ev = append(ev, event{at, r, 1}, event{end, r, -1})
	}
	return ev, nil
}

// span is the first address of p and the one after its last.
func span(p netip.Prefix) (lo, end uint64) {
	a := p.Addr().As4()
	lo = uint64(binary.BigEndian.Uint32(a[:]))
	return lo, lo + 1<<(32-p.Bits())
}

// rowPool interns the rows of one classifier.
type rowPool struct {
	words int
	rows  []uint64
	ids   map[uint64]uint32 // row hash (+ probes on collision) → offset in rows
}

func newRowPool(words int) *rowPool {
	return &rowPool{words: max(words, 1), ids: make(map[uint64]uint32)}
}

// intern returns the offset of row in p.rows, adding it if new.
func (p *rowPool) intern(row []uint64) uint32 {
	h := uint64(14695981039346656037)
	for _, w := range row {
		h = (h ^ w) * 1099511628211
		h ^= h >> 29
	}
	for ; ; h++ {
		off, ok := p.ids[h]
		if !ok {
			off = uint32(len(p.rows))
			p.rows = append(p.rows, row...)
			p.ids[h] = off
			return off
		}
		if slices.Equal(p.rows[off:int(off)+p.words], row) {
			return off
		}
	}
}

// partition sweeps a space [0, end) with per-rule base counts and
// coverage events, returning the starts of the intervals (adjacent ones
// with equal rows merged; the first starts at 0) and their rows.
func (p *rowPool) partition(base []int32, ev []event, end uint64) ([]uint64, []uint32) {
	cnt := slices.Clone(base)
	cur := make([]uint64, p.words)
	for r, c := range cnt {
		if c != 0 {
			cur[r/64] |= 1 << (r % 64)
		}
	}
	slices.SortFunc(ev, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	var starts []uint64
	var rows []uint32
	at := uint64(0)
	for i := 0; ; {
		for ; i < len(ev) && ev[i].at == at; i++ {
			r := ev[i].rule
			was := cnt[r] != 0
			cnt[r] += ev[i].delta
			if was != (cnt[r] != 0) {
				cur[r/64] ^= 1 << (r % 64)
			}
		}
		if at >= end {
			break
		}
		off := p.intern(cur)
		if len(rows) == 0 || rows[len(rows)-1] != off {
			starts = append(starts, at)
			rows = append(rows, off)
		}
		if i == len(ev) {
			break
		}
		at = ev[i].at
	}
	return slices.Clip(starts), slices.Clip(rows)
}

// footprint is the memory the classifiers hold, in bytes (the Set not
// counted).
func (c *Compiled) footprint() int {
	n := 0
	for i := range c.cls {
		k := &c.cls[i]
		n += 8*len(k.rows) + 4*len(k.addr) + 4*len(k.addrRow)
		for _, t := range k.port {
			n += 2*len(t.start) + 4*len(t.row)
		}
	}
	return n
}
