package xdptest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/xvr-project/xvr/vrouter/afxdp"
)

// RingSize is the size of each fake ring, afxdp's default.
const RingSize = 2048

// Headroom is where Inject puts a frame's first byte inside its chunk: the
// kernel's XDP_PACKET_HEADROOM.
const Headroom = 256

// maxErrs bounds how many ownership errors a Umem keeps.
const maxErrs = 32

// Owner tags: free, the caller's, or socket slot tag-tagSocket's.
const (
	tagFree   uint16 = 0
	tagUser   uint16 = 1
	tagSocket uint16 = 2
)

// Umem is a fake afxdp.Umem: frames in a plain byte slice, a free list and
// a per-frame owner tag that every hand-over is checked against.
type Umem struct {
	mu        sync.Mutex
	mem       []byte
	frameSize int
	free      []uint64
	owner     []uint16
	socks     []*Socket // by slot; nil once closed
	openErr   error
	closed    bool
	errs      []error
	dropped   int // errors past maxErrs
}

// NewUmem makes a fake UMEM of frames chunks of frameSize bytes. It panics
// when frames < 1 or frameSize is not a power of two of at least 512: that
// is a mistake in the test, not something a packet can cause.
func NewUmem(frames, frameSize int) *Umem {
	if frames < 1 || frameSize < 512 || frameSize&(frameSize-1) != 0 {
		panic(fmt.Sprintf("xdptest: bad umem geometry %d x %d", frames, frameSize))
	}
	u := &Umem{
		mem:       make([]byte, frames*frameSize),
		frameSize: frameSize,
		free:      make([]uint64, frames),
		owner:     make([]uint16, frames),
	}
	for i := range u.free {
		u.free[i] = uint64((frames - 1 - i) * frameSize) // low addresses first
	}
	return u
}

// Mem returns the frame memory, or nil once the Umem is closed.
func (u *Umem) Mem() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	return u.mem
}

// FrameSize returns the chunk size.
func (u *Umem) FrameSize() int { return u.frameSize }

// Frames returns how many frames the Umem has in all.
func (u *Umem) Frames() int { return len(u.owner) }

// FreeFrames returns how many frames are on the free list.
func (u *Umem) FreeFrames() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.free)
}

// Free gives back a frame the caller owns (any address inside its chunk).
// Freeing a frame the caller does not own is recorded in Err and ignored.
func (u *Umem) Free(addr uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.release(addr, tagUser, "free")
}

// Alloc takes a free frame for the caller and returns its chunk address.
func (u *Umem) Alloc() (uint64, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.take(tagUser)
}

// SetOpenError makes every later Open fail with err (nil: succeed again).
func (u *Umem) SetOpenError(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.openErr = err
}

// Err returns every ownership violation seen so far, or nil.
func (u *Umem) Err() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	errs := u.errs
	if u.dropped > 0 {
		errs = append(errs[:len(errs):len(errs)], fmt.Errorf("xdptest: and %d more", u.dropped))
	}
	return errors.Join(errs...)
}

// Close closes every open socket and records in Err any frame the caller
// still owns (a leak). Close is idempotent.
func (u *Umem) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	var errs []error
	for _, s := range u.socks {
		if s != nil {
			errs = append(errs, s.closeLocked())
		}
	}
	if n := u.count(tagUser); n > 0 {
		u.fail("close: %d frames still owned by the caller", n)
	}
	u.closed = true
	return errors.Join(errs...)
}

// Socket returns the open socket on (ifindex, queue), or nil.
func (u *Umem) Socket(ifindex, queue int) *Socket {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.socks {
		if s != nil && s.ifindex == ifindex && s.queue == queue {
			return s
		}
	}
	return nil
}

// fail records an ownership violation. Callers hold mu.
func (u *Umem) fail(format string, args ...any) {
	if len(u.errs) == maxErrs {
		u.dropped++
		return
	}
	u.errs = append(u.errs, fmt.Errorf("xdptest: "+format, args...))
}

// index returns the frame index of addr, recording an error when it is
// outside the Umem.
func (u *Umem) index(addr uint64, op string) (int, bool) {
	i := addr / uint64(u.frameSize)
	if i >= uint64(len(u.owner)) {
		u.fail("%s: address %#x outside the umem", op, addr)
		return 0, false
	}
	return int(i), true
}

// retag moves the frame at addr from owner from to owner to, recording an
// error (and leaving it alone) when from is not its owner.
func (u *Umem) retag(addr uint64, from, to uint16, op string) bool {
	i, ok := u.index(addr, op)
	if !ok {
		return false
	}
	if got := u.owner[i]; got != from {
		u.fail("%s: frame %d (addr %#x) is %s, want %s", op, i, addr, tagName(got), tagName(from))
		return false
	}
	u.owner[i] = to
	return true
}

// release puts the frame at addr on the free list if from owns it.
func (u *Umem) release(addr uint64, from uint16, op string) {
	if u.retag(addr, from, tagFree, op) {
		u.free = append(u.free, addr&^uint64(u.frameSize-1))
	}
}

// take lends a free frame to tag and returns its chunk address.
func (u *Umem) take(tag uint16) (uint64, bool) {
	n := len(u.free)
	if n == 0 {
		return 0, false
	}
	addr := u.free[n-1]
	u.free = u.free[:n-1]
	u.owner[addr/uint64(u.frameSize)] = tag
	return addr, true
}

// reclaim frees every frame tagged tag and returns how many.
func (u *Umem) reclaim(tag uint16) int {
	n := 0
	for i, t := range u.owner {
		if t == tag {
			u.owner[i] = tagFree
			u.free = append(u.free, uint64(i*u.frameSize))
			n++
		}
	}
	return n
}

// count returns how many frames tag owns.
func (u *Umem) count(tag uint16) int {
	n := 0
	for _, t := range u.owner {
		if t == tag {
			n++
		}
	}
	return n
}

func tagName(t uint16) string {
	switch t {
	case tagFree:
		return "free"
	case tagUser:
		return "the caller's"
	}
	return fmt.Sprintf("socket %d's", t-tagSocket)
}

// slot returns a free socket slot. Callers hold mu.
func (u *Umem) slot() (int, error) {
	for i, s := range u.socks {
		if s == nil {
			return i, nil
		}
	}
	if len(u.socks) >= 1<<16-int(tagSocket) {
		return 0, fmt.Errorf("xdptest: too many sockets on one umem")
	}
	u.socks = append(u.socks, nil)
	return len(u.socks) - 1, nil
}

// Open makes a fake socket on (ifindex, opts.Queue), checking its
// arguments as afxdp does. opts.FillTarget is honoured; the bind mode is
// ignored.
func (u *Umem) Open(ifindex int, opts afxdp.SocketOptions) (*Socket, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.checkOpen(ifindex, opts); err != nil {
		return nil, err
	}
	slot, err := u.slot()
	if err != nil {
		return nil, err
	}
	s, err := newSocket(u, slot, ifindex, opts)
	if err != nil {
		return nil, err
	}
	u.socks[slot] = s
	return s, nil
}

// checkOpen validates Open's arguments. Callers hold mu.
func (u *Umem) checkOpen(ifindex int, opts afxdp.SocketOptions) error {
	switch {
	case u.closed:
		return afxdp.ErrClosed
	case u.openErr != nil:
		return u.openErr
	case ifindex <= 0:
		return fmt.Errorf("xdptest: bad ifindex %d", ifindex)
	case opts.Queue < 0:
		return fmt.Errorf("xdptest: bad queue %d", opts.Queue)
	case opts.FillTarget < 0:
		return fmt.Errorf("xdptest: bad fill target %d", opts.FillTarget)
	}
	for _, o := range u.socks {
		if o != nil && o.ifindex == ifindex && o.queue == opts.Queue {
			return fmt.Errorf("xdptest: ifindex %d queue %d already open on this umem", ifindex, opts.Queue)
		}
	}
	return nil
}
