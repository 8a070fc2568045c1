package route

import (
	"iter"
	"sync"
	"sync/atomic"
)

// MaxVRFs bounds VRF ids: Get returns nil and Ensure returns nil for
// vrf >= MaxVRFs. It matches the largest VRF count a TF vRouter supports.
const MaxVRFs = 1 << 16

const (
	chunkBits = 8
	chunkLen  = 1 << chunkBits
)

// chunk holds the tables of chunkLen consecutive VRF ids.
type chunk [chunkLen]atomic.Pointer[Table]

// Tables is the set of all VNs' tables, indexed by VRF id (dense small ints
// allocated by the agent). Readers never lock: Get is three atomic loads in a
// fixed two-level directory. An unused VRF id costs 8 bytes once its chunk of
// 256 ids exists; an ensured but empty VRF adds one small Table. Chunks are
// never freed (at most 512 KiB for MaxVRFs). The zero value is ready to use;
// a Tables must not be copied.
type Tables struct {
	mu  sync.Mutex // serializes Ensure and Remove
	dir [MaxVRFs / chunkLen]atomic.Pointer[chunk]
}

// Get returns vrf's table, or nil if the VRF has none. Lock-free. A nil
// *Table reads as empty.
func (s *Tables) Get(vrf uint32) *Table {
	if s == nil || vrf >= MaxVRFs {
		return nil
	}
	c := s.dir[vrf>>chunkBits].Load()
	if c == nil {
		return nil
	}
	return c[vrf&(chunkLen-1)].Load()
}

// Ensure returns vrf's table, creating an empty one on first use (writer
// side). It returns nil if vrf >= MaxVRFs; a nil *Table refuses writes with
// ErrNoTable.
func (s *Tables) Ensure(vrf uint32) *Table {
	if t := s.Get(vrf); t != nil || s == nil || vrf >= MaxVRFs {
		return t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := s.slot(vrf)
	if t := slot.Load(); t != nil {
		return t
	}
	t := new(Table)
	slot.Store(t)
	return t
}

// Remove drops vrf's table. Readers that already hold it may finish with it;
// see the package comment for the lifecycle.
func (s *Tables) Remove(vrf uint32) {
	if s.Get(vrf) == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slot(vrf).Store(nil)
}

// All yields every VRF that has a table, in increasing VRF order.
func (s *Tables) All() iter.Seq2[uint32, *Table] {
	return func(yield func(uint32, *Table) bool) {
		for ci := 0; s != nil && ci < len(s.dir); ci++ {
			if c := s.dir[ci].Load(); c != nil && !yieldChunk(c, uint32(ci)<<chunkBits, yield) {
				return
			}
		}
	}
}

// yieldChunk yields the tables of c, whose first VRF id is base.
func yieldChunk(c *chunk, base uint32, yield func(uint32, *Table) bool) bool {
	for i := range c {
		if t := c[i].Load(); t != nil && !yield(base+uint32(i), t) {
			return false
		}
	}
	return true
}

// slot returns vrf's slot, creating its chunk. Caller holds s.mu; vrf < MaxVRFs.
func (s *Tables) slot(vrf uint32) *atomic.Pointer[Table] {
	d := &s.dir[vrf>>chunkBits]
	c := d.Load()
	if c == nil {
		c = new(chunk)
		d.Store(c)
	}
	return &c[vrf&(chunkLen-1)]
}
