package flowtable

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// DefaultCapacity is the default number of flows (forward+reverse pairs).
	// TF's default vr_flow_entries is 512K entries, i.e. 256K pairs.
	DefaultCapacity = 512 << 10
	// MaxCapacity bounds Config.Capacity (slot indexes are 32 bits).
	MaxCapacity = 1 << 28
	// DefaultIdleTimeout is the default idle time, in ticks, before a flow is
	// aged out (TF's default is 180 s).
	DefaultIdleTimeout = 180
	// DefaultClosedTimeout is the default idle time, in ticks, of a flow that
	// saw a TCP FIN or RST (Close).
	DefaultClosedTimeout = 10

	// window is how far from its home slot an entry may be stored.
	window = 128
	// slotsPerEntry sets the load factor at full capacity (1/2).
	slotsPerEntry = 2
)

// Errors returned by Insert.
var (
	// ErrFull: the table holds Capacity flows, or (rarely) the 128 slots from
	// a key's home slot are all taken. The flow is not created.
	ErrFull = errors.New("flow table full")
	// ErrExists: the forward key is already an entry (another poller won the
	// race); the returned Ref is that entry.
	ErrExists = errors.New("flow exists")
	// ErrConflict: the reverse key is already an entry of another flow.
	ErrConflict = errors.New("reverse key taken by another flow")
	// ErrInvalid: an action has an unknown Kind, or the two keys are equal.
	ErrInvalid = errors.New("invalid flow")
)

// Config sizes a Table. The zero value gives TF's defaults.
type Config struct {
	// Capacity is the maximum number of flows (pairs of entries); 0 means
	// DefaultCapacity. Memory is 256 bytes per flow of capacity.
	Capacity int
	// IdleTimeout is how many ticks a flow may be idle (no Account in either
	// direction) before Age removes it; 0 means DefaultIdleTimeout.
	IdleTimeout uint32
	// ClosedTimeout replaces IdleTimeout for flows marked with Close; 0 means
	// min(DefaultClosedTimeout, IdleTimeout).
	ClosedTimeout uint32
	// SNAT are the port pools that NATSrc forward actions allocate from;
	// a removed flow's port goes back to the pool whose IP matches.
	SNAT []*SNAT
	// Prefault makes every page of the table resident in New (as a kernel
	// vRouter's preallocated table is): the process's RSS does not creep up
	// as flows land on new pages, and no packet pays a page fault.
	Prefault bool
}

func (c *Config) setDefaults() error {
	if c.Capacity == 0 {
		c.Capacity = DefaultCapacity
	}
	if c.Capacity < 0 || c.Capacity > MaxCapacity {
		return fmt.Errorf("capacity %d out of range 1..%d", c.Capacity, MaxCapacity)
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ClosedTimeout == 0 {
		c.ClosedTimeout = min(DefaultClosedTimeout, c.IdleTimeout)
	}
	if c.IdleTimeout > 1<<30 || c.ClosedTimeout > 1<<30 {
		return errors.New("timeout over 2^30 ticks")
	}
	return nil
}

// Ref names one entry during one lifetime of its slot: the slot index and
// the slot's control word (generation and state) when it was found.
type Ref uint64

// Index is the entry's slot index, as shown by Flows.
func (r Ref) Index() uint32 { return uint32(r) }

func (r Ref) ctl() uint32 { return uint32(r >> 32) }

func makeRef(i, ctl uint32) Ref { return Ref(uint64(ctl)<<32 | uint64(i)) }

// Slot states in the low bits of slot.ctl; the generation is above them.
const (
	stateFree = 0
	stateBusy = 1 // being written or removed: readers skip it
	stateLive = 2
	stateMask = 3
	genShift  = 2
)

// Bits of slot.home (the home-slot word: lock and probe distance).
const (
	homeLock = 1 << 31
	distMask = 0xff
)

// Bits of slot.meta.
const (
	metaFwd    = 1 << 8
	metaClosed = 1 << 9
)

// slot is one entry, one cache line. Every field is atomic: readers copy a
// live slot's fields between two loads of ctl and discard the copy if ctl
// changed. Fields other than pkts, byts, last and meta's closed bit change
// only while ctl says busy.
type slot struct {
	ctl  atomic.Uint32 // generation<<2 | state
	home atomic.Uint32 // for keys whose home is this slot: lock bit | max distance
	k0   atomic.Uint64 // src<<32 | dst
	k1   atomic.Uint64 // vrf<<32 | sport<<16 | dport
	a0   atomic.Uint64 // partner<<32 | port<<16 | kind<<8 | proto
	a1   atomic.Uint64 // next hop<<32 | nat ip
	pkts atomic.Uint64
	byts atomic.Uint64
	last atomic.Uint32 // tick of the last Account (or Insert)
	meta atomic.Uint32 // distance from home | metaFwd | metaClosed
}

// Table is the flow table. Create it with New; it must not be copied.
// Lookup, Get, Insert, Account, Close, Delete, Age, Flows and Stats are safe
// for concurrent use.
type Table struct {
	cfg   Config
	slots []slot
	n     uint64 // number of home slots; len(slots) = n + window
	seed  [3]uint64
	// minTimeout lets Age skip a flow by its forward entry alone.
	minTimeout uint32
	// fwdIn counts the live forward entries of each block of blockSlots
	// slots, so that a sweep skips empty blocks without touching them.
	fwdIn []atomic.Int32
	live  atomic.Int64
	aged  atomic.Uint64
	dels  atomic.Uint64
	ctr   [stripes]stripe
}

// New returns an empty table for cfg (defaults filled in).
func New(cfg Config) (*Table, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("flow table config: %w", err)
	}
	n := uint64(cfg.Capacity) * 2 * slotsPerEntry
	slots, err := mapSlots(int(n+window), cfg.Prefault)
	if err != nil {
		return nil, err
	}
	t := &Table{cfg: cfg, n: n, slots: slots, fwdIn: make([]atomic.Int32, (len(slots)+blockSlots-1)/blockSlots)}
	runtime.AddCleanup(t, unmapSlots, slots)
	t.minTimeout = min(cfg.IdleTimeout, cfg.ClosedTimeout)
	for i := range t.seed {
		t.seed[i] = rand.Uint64()
	}
	return t, nil
}

// mapSlots allocates n zeroed slots outside the Go heap, in an anonymous
// mapping (MAP_POPULATE: resident at once). The table is large (128 MiB at
// the default capacity) and holds no pointers: on the heap it would set the
// garbage collector's pace (a heap goal of twice the live heap lets
// garbage grow by as much again before a cycle), here it costs the
// collector nothing. Slots start page-aligned, so on cache-line boundaries.
// The mapping is released when the Table is unreachable.
func mapSlots(n int, populate bool) ([]slot, error) {
	size := n * int(unsafe.Sizeof(slot{}))
	flags := unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	if populate {
		flags |= unix.MAP_POPULATE
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		return nil, fmt.Errorf("mapping %d bytes of flow table: %w", size, err)
	}
	return unsafe.Slice((*slot)(unsafe.Pointer(&mem[0])), n), nil
}

// unmapFailures counts munmap errors of unmapSlots (a cleanup has no one
// to return them to); see UnmapFailures.
var unmapFailures atomic.Uint64

// UnmapFailures is how many released tables' memory could not be unmapped
// (only a bug can cause it: the range is the table's own and whole).
func UnmapFailures() uint64 { return unmapFailures.Load() }

// unmapSlots releases what mapSlots mapped, once the Table is gone.
func unmapSlots(slots []slot) {
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&slots[0])), len(slots)*int(unsafe.Sizeof(slot{})))
	if err := unix.Munmap(mem); err != nil {
		unmapFailures.Add(1)
	}
}

// Capacity is the configured maximum number of flows.
func (t *Table) Capacity() int { return t.cfg.Capacity }

// homeOf returns p's home slot: a seeded hash, so that nobody outside can
// aim many flows at one home and exhaust its window.
func (t *Table) homeOf(p *packed) uint32 {
	hi, lo := bits.Mul64(p.k0^t.seed[0], p.k1^t.seed[1])
	hi, lo = bits.Mul64(hi^lo^uint64(p.proto), t.seed[2]|1)
	h := (hi ^ lo) >> 32
	return uint32(h * t.n >> 32)
}

// Lookup returns the live entry for k: its Ref and action. Lock-free, no
// allocation. It may miss an entry being inserted or removed concurrently.
func (t *Table) Lookup(k *Key) (Ref, Action, bool) {
	p := pack(k)
	i, c, a0, a1, ok := t.find(&p, t.homeOf(&p))
	if !ok {
		return 0, Action{}, false
	}
	return makeRef(i, c), unpackAction(a0, a1), true
}

// find scans p's home window up to the home's max distance.
func (t *Table) find(p *packed, h uint32) (i, ctl uint32, a0, a1 uint64, ok bool) {
	d := t.slots[h].home.Load() & distMask
	for i = h; i <= h+d; i++ {
		if ctl, a0, a1, ok = t.match(i, p); ok {
			return i, ctl, a0, a1, true
		}
	}
	return 0, 0, 0, 0, false
}

// match reports whether slot i is live with key p, and returns its control
// word and action words read under it.
func (t *Table) match(i uint32, p *packed) (uint32, uint64, uint64, bool) {
	s := &t.slots[i]
	c := s.ctl.Load()
	if c&stateMask != stateLive || s.k0.Load() != p.k0 || s.k1.Load() != p.k1 {
		return 0, 0, 0, false
	}
	a0, a1 := s.a0.Load(), s.a1.Load()
	if uint8(a0) != p.proto || s.ctl.Load() != c {
		return 0, 0, 0, false
	}
	return c, a0, a1, true
}

func unpackAction(a0, a1 uint64) Action {
	return Action{Kind: Kind(a0 >> 8), Port: uint16(a0 >> 16), NextHop: uint32(a1 >> 32), IP: ip4(uint32(a1))}
}

func packAction(a *Action, partner uint32, proto uint8) (a0, a1 uint64) {
	a0 = uint64(partner)<<32 | uint64(a.Port)<<16 | uint64(a.Kind)<<8 | uint64(proto)
	return a0, uint64(a.NextHop)<<32 | uint64(be32(a.IP))
}

// slotOf returns the slot r names if r is still current.
func (t *Table) slotOf(r Ref) *slot {
	if uint64(r.Index()) >= uint64(len(t.slots)) {
		return nil
	}
	s := &t.slots[r.Index()]
	if s.ctl.Load() != r.ctl() || r.ctl()&stateMask != stateLive {
		return nil
	}
	return s
}

// Get returns the action of the entry r names; false if r is stale.
func (t *Table) Get(r Ref) (Action, bool) {
	s := t.slotOf(r)
	if s == nil {
		return Action{}, false
	}
	a0, a1 := s.a0.Load(), s.a1.Load()
	if s.ctl.Load() != r.ctl() {
		return Action{}, false
	}
	return unpackAction(a0, a1), true
}

// Account counts one packet of n bytes on r's entry at tick now; false if r
// is stale (look the key up again). Lock-free, no allocation.
func (t *Table) Account(r Ref, n int, now uint32) bool {
	s := t.slotOf(r)
	if s == nil {
		return false
	}
	s.pkts.Add(1)
	s.byts.Add(uint64(n))
	if s.last.Load() != now {
		s.last.Store(now)
	}
	return true
}

// Close marks r's flow as closing (a TCP FIN or RST was seen): Age then
// applies ClosedTimeout to it. False if r is stale.
func (t *Table) Close(r Ref) bool {
	s := t.slotOf(r)
	if s == nil {
		return false
	}
	s.meta.Or(metaClosed)
	return true
}
