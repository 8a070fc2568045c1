package afxdp

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Desc is one RX/TX ring descriptor; its layout is struct xdp_desc.
type Desc struct {
	Addr    uint64 // offset into Umem.Mem of the first byte
	Len     uint32 // frame length in bytes
	Options uint32 // XDP_PKT_CONTD etc.; zero for single-buffer frames
}

// ring holds the indices of one AF_XDP ring. prod, cons and flags point
// into memory shared with the kernel and are only touched with sync/atomic.
// The cached indices follow libxdp: a producer caches the kernel's consumer
// (plus size) and a consumer caches the kernel's producer, and each reloads
// the shared index only when its cached view runs out.
type ring struct {
	prod, cons, flags *uint32
	size, mask        uint32
	cachedProd        uint32
	cachedCons        uint32
	mem               []byte // the mmap'd region
}

// initProducer primes the cache of a ring we produce to (fill, TX).
func (r *ring) initProducer() {
	r.cachedProd = atomic.LoadUint32(r.prod)
	r.cachedCons = atomic.LoadUint32(r.cons) + r.size
}

// initConsumer primes the cache of a ring we consume from (RX, completion).
func (r *ring) initConsumer() {
	r.cachedCons = atomic.LoadUint32(r.cons)
	r.cachedProd = atomic.LoadUint32(r.prod)
}

// free returns how many of n entries the producer may write now.
func (r *ring) free(n uint32) uint32 {
	if f := r.cachedCons - r.cachedProd; f >= n {
		return n
	}
	r.cachedCons = atomic.LoadUint32(r.cons) + r.size
	return min(r.cachedCons-r.cachedProd, n)
}

// submit publishes n written entries to the kernel.
func (r *ring) submit(n uint32) {
	r.cachedProd += n
	atomic.StoreUint32(r.prod, r.cachedProd)
}

// avail returns how many of n entries the consumer may read now.
func (r *ring) avail(n uint32) uint32 {
	e := r.cachedProd - r.cachedCons
	if e == 0 {
		r.cachedProd = atomic.LoadUint32(r.prod)
		e = r.cachedProd - r.cachedCons
	}
	return min(e, n)
}

// release hands n read entries back to the kernel.
func (r *ring) release(n uint32) {
	r.cachedCons += n
	atomic.StoreUint32(r.cons, r.cachedCons)
}

// outstanding returns how many produced entries the kernel has not consumed.
func (r *ring) outstanding() uint32 {
	return r.cachedProd - atomic.LoadUint32(r.cons)
}

// needWakeup reports the kernel's XDP_RING_NEED_WAKEUP flag.
func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// at returns a pointer into the ring memory at byte offset off.
func (r *ring) at(off uint64) unsafe.Pointer {
	return unsafe.Pointer(&r.mem[off])
}

// bind points the ring at its mmap'd memory using the kernel's offsets and
// returns a pointer to the first descriptor.
func (r *ring) bind(mem []byte, off unix.XDPRingOffset, entries uint32) unsafe.Pointer {
	r.mem = mem
	r.prod = (*uint32)(r.at(off.Producer))
	r.cons = (*uint32)(r.at(off.Consumer))
	r.flags = (*uint32)(r.at(off.Flags))
	r.size, r.mask = entries, entries-1
	return r.at(off.Desc)
}

// addrRing is a fill or completion ring: its entries are UMEM addresses.
type addrRing struct {
	ring
	addrs []uint64
}

// descRing is an RX or TX ring: its entries are descriptors.
type descRing struct {
	ring
	descs []Desc
}

// mapRing mmaps one ring of fd at page offset pgoff.
func mapRing(fd int, pgoff int64, off unix.XDPRingOffset, entries, elem uint32) ([]byte, error) {
	n := int(off.Desc) + int(entries)*int(elem)
	mem, err := unix.Mmap(fd, pgoff, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap ring at %#x: %w", pgoff, err)
	}
	return mem, nil
}

// mapAddrRing mmaps and binds a fill or completion ring.
func mapAddrRing(r *addrRing, fd int, pgoff int64, off unix.XDPRingOffset, entries uint32) error {
	mem, err := mapRing(fd, pgoff, off, entries, 8)
	if err != nil {
		return err
	}
	r.addrs = unsafe.Slice((*uint64)(r.bind(mem, off, entries)), entries)
	return nil
}

// mapDescRing mmaps and binds an RX or TX ring.
func mapDescRing(r *descRing, fd int, pgoff int64, off unix.XDPRingOffset, entries uint32) error {
	mem, err := mapRing(fd, pgoff, off, entries, uint32(unsafe.Sizeof(Desc{})))
	if err != nil {
		return err
	}
	r.descs = unsafe.Slice((*Desc)(r.bind(mem, off, entries)), entries)
	return nil
}

// unmap releases the ring memory; safe on a ring never mapped.
func (r *ring) unmap() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem, r.prod, r.cons, r.flags = nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("munmap ring: %w", err)
	}
	return nil
}
