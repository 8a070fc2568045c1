package xdptest

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/vrouter/afxdp"
)

// Socket is a fake afxdp.Socket. The methods afxdp.Socket has are the
// caller's (the poller's) side; Inject and Sent are the kernel's side,
// which the test plays.
type Socket struct {
	u              *Umem
	tag            uint16
	slot           int
	ifindex, queue int
	efd            int  // readable while rx holds frames
	signalled      bool // efd's counter is non-zero
	efdBuf         [8]byte

	fillTarget int
	fill, comp fifo[uint64]
	rx, tx     fifo[afxdp.Desc]
	txCap      int
	txErr      error
	stats      afxdp.Stats
	closed     bool
}

// newSocket makes socket slot of u. Callers hold u.mu.
func newSocket(u *Umem, slot, ifindex int, opts afxdp.SocketOptions) (*Socket, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating eventfd: %w", err)
	}
	s := &Socket{u: u, tag: tagSocket + uint16(slot), slot: slot, ifindex: ifindex, queue: opts.Queue,
		efd: efd, fillTarget: RingSize / 2, txCap: RingSize,
		fill: newFifo[uint64](RingSize), comp: newFifo[uint64](len(u.owner)),
		rx: newFifo[afxdp.Desc](RingSize), tx: newFifo[afxdp.Desc](RingSize)}
	if opts.FillTarget > 0 {
		s.fillTarget = min(opts.FillTarget, RingSize)
	}
	return s, nil
}

// FD returns the socket's eventfd (readable while frames wait in the RX
// queue), or -1 once closed.
func (s *Socket) FD() int {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	if s.closed {
		return -1
	}
	return s.efd
}

// SetTxCapacity sets how many frames the TX queue holds before Transmit
// takes fewer than it is given (default RingSize, clamped to 0..RingSize).
// Frames leave the TX queue when the test calls Sent or DiscardSent.
func (s *Socket) SetTxCapacity(n int) {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	s.txCap = max(0, min(n, RingSize))
}

// SetTransmitError makes every later Transmit return err after queueing
// the frames as usual, as afxdp does when its sendto kick fails (nil: stop).
func (s *Socket) SetTransmitError(err error) {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	s.txErr = err
}

// Inject is the kernel receiving frame: it takes a chunk from the fill
// queue, copies frame in at Headroom and queues an RX descriptor. It returns
// false, counting the reason in Stats, when the frame does not fit the
// chunk (RxDropped), the RX queue is full (RxRingFull) or the fill queue is
// empty (RxFillRingEmptyDescs), or the socket is closed.
func (s *Socket) Inject(frame []byte) bool {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	switch {
	case s.closed:
		return false
	case len(frame) > s.u.frameSize-Headroom:
		s.stats.RxDropped++
		return false
	case s.rx.full():
		s.stats.RxRingFull++
		return false
	}
	addr, ok := s.fill.pop()
	if !ok {
		s.stats.RxFillRingEmptyDescs++
		return false
	}
	d := afxdp.Desc{Addr: addr + Headroom, Len: uint32(len(frame))}
	copy(s.u.mem[d.Addr:], frame)
	s.rx.push(d)
	s.signal()
	return true
}

// Sent drains the TX queue, returning a copy of every transmitted frame in
// order, and moves their chunks to the completion queue.
func (s *Socket) Sent() [][]byte {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	var out [][]byte
	s.drainTx(func(f []byte) { out = append(out, append([]byte(nil), f...)) })
	return out
}

// DiscardSent is Sent without the copies (it does not allocate), for
// benchmarks; it returns how many frames it drained.
func (s *Socket) DiscardSent() int {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	return s.drainTx(nil)
}

// drainTx empties the TX queue into the completion queue. Callers hold u.mu.
func (s *Socket) drainTx(fn func([]byte)) int {
	n := 0
	for d, ok := s.tx.pop(); ok; d, ok = s.tx.pop() {
		if fn != nil {
			fn(s.u.mem[d.Addr : d.Addr+uint64(d.Len)])
		}
		s.comp.push(d.Addr &^ uint64(s.u.frameSize-1))
		n++
	}
	return n
}

// signal makes the eventfd readable. Callers hold u.mu.
func (s *Socket) signal() {
	if s.signalled {
		return
	}
	s.efdBuf = [8]byte{1}
	if _, err := unix.Write(s.efd, s.efdBuf[:]); err != nil {
		s.u.fail("signalling eventfd: %v", err)
		return
	}
	s.signalled = true
}

// unsignal makes the eventfd unreadable. Callers hold u.mu.
func (s *Socket) unsignal() {
	if !s.signalled {
		return
	}
	if _, err := unix.Read(s.efd, s.efdBuf[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		s.u.fail("reading eventfd: %v", err)
	}
	s.signalled = false
}

// Receive moves up to len(descs) received descriptors into descs and
// returns how many; their frames now belong to the caller.
func (s *Socket) Receive(descs []afxdp.Desc) int {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	if s.closed {
		return 0
	}
	n := 0
	for ; n < len(descs); n++ {
		d, ok := s.rx.pop()
		if !ok {
			break
		}
		s.u.retag(d.Addr, s.tag, tagUser, "receive")
		descs[n] = d
	}
	if s.rx.len() == 0 {
		s.unsignal()
	}
	s.stats.Received += uint64(n)
	return n
}

// Transmit queues up to len(descs) frames, as many as the TX capacity
// allows, and returns how many it took and the SetTransmitError error.
// A descriptor for a frame the caller does not own, or running past its
// chunk, is taken but not queued, counted in TxInvalidDescs and recorded in
// Err, as the kernel consumes an invalid descriptor.
func (s *Socket) Transmit(descs []afxdp.Desc) (int, error) {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	if s.closed {
		return 0, afxdp.ErrClosed
	}
	n := 0
	for _, d := range descs {
		if s.tx.len() >= s.txCap {
			break
		}
		n++
		if !s.valid(d) || !s.u.retag(d.Addr, tagUser, s.tag, "transmit") {
			s.stats.TxInvalidDescs++
			continue
		}
		s.tx.push(d)
	}
	s.stats.Transmitted += uint64(n)
	return n, s.txErr
}

// TxPending is how many transmitted frames the test has not taken yet
// (Sent, DiscardSent or Complete).
func (s *Socket) TxPending() int {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	return s.tx.len()
}

// valid checks that d lies inside one chunk and holds a frame. Callers hold u.mu.
func (s *Socket) valid(d afxdp.Desc) bool {
	fs := uint64(s.u.frameSize)
	if d.Len == 0 || d.Addr/fs != (d.Addr+uint64(d.Len)-1)/fs {
		s.u.fail("transmit: descriptor %#x+%d crosses its chunk or is empty", d.Addr, d.Len)
		return false
	}
	return true
}

// Complete returns the frames the test drained with Sent to the free list
// and returns how many.
func (s *Socket) Complete() int {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	n := 0
	for addr, ok := s.comp.pop(); ok; addr, ok = s.comp.pop() {
		s.u.release(addr, s.tag, "complete")
		n++
	}
	s.stats.Completed += uint64(n)
	return n
}

// Fill tops the fill queue up to the fill target from the free list and
// returns how many frames it lent.
func (s *Socket) Fill() int {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	if s.closed {
		return 0
	}
	n := 0
	for s.fill.len() < s.fillTarget {
		addr, ok := s.u.take(s.tag)
		if !ok {
			break
		}
		s.fill.push(addr)
		n++
	}
	s.stats.Filled += uint64(n)
	return n
}

// SetFillTarget sets how many frames Fill keeps lent (clamped to 1..RingSize).
func (s *Socket) SetFillTarget(n int) {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	s.fillTarget = max(1, min(n, RingSize))
}

// FillTarget returns how many frames Fill keeps lent.
func (s *Socket) FillTarget() int {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	return s.fillTarget
}

// Lent returns how many frames the socket holds (fill, RX, TX and
// completion queues together).
func (s *Socket) Lent() int {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	return s.fill.len() + s.rx.len() + s.tx.len() + s.comp.len()
}

// Fillable is how many chunks the fill queue holds: how many frames Inject
// can take before it counts RxFillRingEmptyDescs.
func (s *Socket) Fillable() int {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	return s.fill.len()
}

// Stats returns the socket's counters; the kernel's are those Inject and
// Transmit count.
func (s *Socket) Stats() (afxdp.Stats, error) {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	if s.closed {
		return afxdp.Stats{}, afxdp.ErrClosed
	}
	return s.stats, nil
}

// Close returns every frame the socket holds to the free list and closes
// its eventfd. Close is idempotent.
func (s *Socket) Close() error {
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	return s.closeLocked()
}

// closeLocked is Close with u.mu held.
func (s *Socket) closeLocked() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.u.socks[s.slot] = nil
	s.u.reclaim(s.tag)
	s.fill.reset()
	s.comp.reset()
	s.rx.reset()
	s.tx.reset()
	if err := unix.Close(s.efd); err != nil {
		return fmt.Errorf("closing eventfd: %w", err)
	}
	return nil
}
