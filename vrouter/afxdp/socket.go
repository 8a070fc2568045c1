package afxdp

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SocketOptions configure Open. The bind mode (Copy, ZeroCopy,
// DisableNeedWakeup) is set by the first socket of a Umem; later sockets
// must pass the same values.
type SocketOptions struct {
	Queue    int  // device queue to bind to
	Copy     bool // force copy mode (XDP_COPY); veth needs it
	ZeroCopy bool // force zero-copy mode (XDP_ZEROCOPY)
	// DisableNeedWakeup turns XDP_USE_NEED_WAKEUP off: the kernel is then
	// kicked on every Transmit. Leave it false unless a driver misbehaves.
	DisableNeedWakeup bool
	// FillTarget is how many frames Fill keeps lent in this socket's fill
	// ring; default half the fill ring, at most its size.
	FillTarget int
}

// kickRetries bounds the sendto calls of one Transmit: in copy mode the
// kernel sends at most 32 frames per call and answers EAGAIN for the rest.
const kickRetries = 8

// A closed socket's queue stays taken until the kernel's deferred release
// runs, so bind retries EBUSY for up to bindRetries*bindRetryWait.
const (
	bindRetries   = 50
	bindRetryWait = 10 * time.Millisecond
)

// Socket is one AF_XDP socket bound to (ifindex, queue), with its own four
// rings over its Umem's frames. Like its Umem it belongs to one goroutine.
type Socket struct {
	umem       *Umem
	fd         int
	slot       int
	tag        uint16
	ifindex    int
	queue      int
	zeroCopy   bool
	needWakeup bool
	unbound    bool // refused as a shared bind's owner: the kernel unbound it for good
	fillTarget uint32
	fq, cq     addrRing
	rx, tx     descRing
	ctr        counters
}

// counters are this socket's own statistics, kept beside the kernel's.
type counters struct {
	received, transmitted, completed, filled uint64
	kickTransient, kickErrors, wakeups       uint64
}

// Stats are the kernel's XDP_STATISTICS plus this package's counters.
type Stats struct {
	RxDropped            uint64 // frames dropped for reasons other than a full ring
	RxInvalidDescs       uint64
	TxInvalidDescs       uint64
	RxRingFull           uint64
	RxFillRingEmptyDescs uint64
	TxRingEmptyDescs     uint64
	Received             uint64 // descriptors taken from the RX ring
	Transmitted          uint64 // descriptors put on the TX ring
	Completed            uint64 // descriptors taken from the completion ring
	Filled               uint64 // frames put on the fill ring
	KickTransient        uint64 // sendto answered EAGAIN/EBUSY/ENOBUFS/ENETDOWN
	KickErrors           uint64 // sendto/recvfrom failed otherwise
	Wakeups              uint64 // sendto/recvfrom calls made
}

// Open creates an AF_XDP socket on (ifindex, opts.Queue) over u. The first
// socket registers the UMEM; later ones share it (XDP_SHARED_UMEM) with
// their own fill and completion rings, through any open socket the kernel
// still has bound. When none is (their devices went away), the new socket
// registers the memory afresh, and later sockets share through it. The
// socket lives in the network namespace of the calling thread.
func (u *Umem) Open(ifindex int, opts SocketOptions) (*Socket, error) {
	if err := u.checkOpen(ifindex, opts); err != nil {
		return nil, err
	}
	slot, err := u.slot()
	if err != nil {
		return nil, err
	}
	s := &Socket{umem: u, fd: -1, slot: slot, tag: tagSocket + uint16(slot), ifindex: ifindex, queue: opts.Queue}
	if err := s.setup(opts); err != nil {
		return nil, errors.Join(err, s.teardown())
	}
	if !u.hasSockets() {
		u.mode = opts
	}
	if u.reg == nil {
		u.reg = s
	}
	u.socks[slot] = s
	return s, nil
}

// checkOpen validates Open's arguments against the Umem's state.
func (u *Umem) checkOpen(ifindex int, opts SocketOptions) error {
	switch {
	case u.mem == nil:
		return ErrClosed
	case ifindex <= 0:
		return fmt.Errorf("afxdp: bad ifindex %d", ifindex)
	case opts.Queue < 0:
		return fmt.Errorf("afxdp: bad queue %d", opts.Queue)
	case opts.Copy && opts.ZeroCopy:
		return fmt.Errorf("afxdp: copy and zero-copy are exclusive")
	case opts.FillTarget < 0:
		return fmt.Errorf("afxdp: bad fill target %d", opts.FillTarget)
	}
	for _, o := range u.socks {
		if o != nil && o.ifindex == ifindex && o.queue == opts.Queue {
			return fmt.Errorf("afxdp: ifindex %d queue %d already open on this umem", ifindex, opts.Queue)
		}
	}
	if u.hasSockets() && !sameMode(u.mode, opts) {
		return fmt.Errorf("afxdp: bind mode differs from the umem's first socket")
	}
	return nil
}

func sameMode(a, b SocketOptions) bool {
	return a.Copy == b.Copy && a.ZeroCopy == b.ZeroCopy && a.DisableNeedWakeup == b.DisableNeedWakeup
}

// setup creates, configures, maps and binds the socket. Every socket gets
// its own fill and completion rings: it is the only one of its Umem on its
// (device, queue), and the kernel wants one pair per (device, queue), set on
// the new socket before it binds with XDP_SHARED_UMEM (xp_assign_dev_shared
// refuses the bind otherwise).
func (s *Socket) setup(opts SocketOptions) error {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket af_xdp: %w", err)
	}
	s.fd = fd
	if err := s.setRingSizes(); err != nil {
		return err
	}
	if err := s.mapRings(); err != nil {
		return err
	}
	switch err := s.bindShared(); {
	case err == nil:
		return s.finish(opts)
	case !errors.Is(err, errNoShare):
		return err
	}
	// A failed shared bind leaves the socket unbound with no UMEM of its
	// own (the kernel checks the named socket before it changes anything),
	// so it may still register one.
	if err := s.umem.register(fd); err != nil {
		return err
	}
	if err := s.bind(bindFlags(opts), 0); err != nil {
		return err
	}
	return s.finish(opts)
}

// errNoShare: no open socket of the Umem can lend it to a new socket.
var errNoShare = errors.New("afxdp: no bound socket shares the umem")

// bindShared binds s with XDP_SHARED_UMEM through a socket of its Umem the
// kernel still has bound: the registration first, then every other open
// socket. A socket the kernel refuses as the owner (staleOwner) is marked
// unbound and the next one is tried; any other error is the new socket's
// and is returned. It returns errNoShare when no socket was left to try.
func (s *Socket) bindShared() error {
	u := s.umem
	for i := -1; i < len(u.socks); i++ {
		o := u.reg
		if i >= 0 {
			if o = u.socks[i]; o == u.reg {
				continue
			}
		}
		if o == nil || o == s || o.fd < 0 || o.unbound {
			continue
		}
		err := s.bind(unix.XDP_SHARED_UMEM, o.fd)
		if err == nil {
			u.reg = o
			return nil
		}
		if !staleOwner(err) {
			return err
		}
		o.unbound = true
	}
	u.reg = nil
	return errNoShare
}

// staleOwner reports bind errors that blame the socket named in
// sxdp_shared_umem_fd rather than the new one (net/xdp/xsk.c xsk_bind):
// EBADF when it is not bound (the kernel unbinds every socket of a device
// on NETDEV_UNREGISTER), ENOTSOCK when the fd is no open socket,
// ENOPROTOOPT when it is not an AF_XDP one.
func staleOwner(err error) bool {
	return errors.Is(err, unix.EBADF) || errors.Is(err, unix.ENOTSOCK) || errors.Is(err, unix.ENOPROTOOPT)
}

// bindFlags are the flags of a socket that binds with its own UMEM
// registration; sharing sockets inherit them (the kernel forbids other
// flags with XDP_SHARED_UMEM).
func bindFlags(opts SocketOptions) uint16 {
	var f uint16
	switch {
	case opts.Copy:
		f = unix.XDP_COPY
	case opts.ZeroCopy:
		f = unix.XDP_ZEROCOPY
	}
	if !opts.DisableNeedWakeup {
		f |= unix.XDP_USE_NEED_WAKEUP
	}
	return f
}

// setRingSizes creates the four rings in the kernel.
func (s *Socket) setRingSizes() error {
	c := &s.umem.cfg
	for _, r := range []struct{ opt, n int }{
		{unix.XDP_UMEM_FILL_RING, c.FillSize},
		{unix.XDP_UMEM_COMPLETION_RING, c.CompletionSize},
		{unix.XDP_RX_RING, c.RxSize},
		{unix.XDP_TX_RING, c.TxSize},
	} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, r.opt, r.n); err != nil {
			return fmt.Errorf("setsockopt ring %d size %d: %w", r.opt, r.n, err)
		}
	}
	return nil
}

// mapRings mmaps the four rings at the offsets the kernel reports.
func (s *Socket) mapRings() error {
	var off unix.XDPMmapOffsets
	if err := getsockopt(s.fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), uint32(unsafe.Sizeof(off))); err != nil {
		return fmt.Errorf("getsockopt xdp_mmap_offsets: %w", err)
	}
	c := &s.umem.cfg
	if err := mapAddrRing(&s.fq, s.fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, uint32(c.FillSize)); err != nil {
		return err
	}
	if err := mapAddrRing(&s.cq, s.fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, uint32(c.CompletionSize)); err != nil {
		return err
	}
	if err := mapDescRing(&s.rx, s.fd, unix.XDP_PGOFF_RX_RING, off.Rx, uint32(c.RxSize)); err != nil {
		return err
	}
	return mapDescRing(&s.tx, s.fd, unix.XDP_PGOFF_TX_RING, off.Tx, uint32(c.TxSize))
}

// bind binds to (ifindex, queue) with flags; shareFD names the socket whose
// UMEM s shares when flags has XDP_SHARED_UMEM.
func (s *Socket) bind(flags uint16, shareFD int) error {
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(s.ifindex), QueueID: uint32(s.queue)}
	if flags&unix.XDP_SHARED_UMEM != 0 {
		sa.SharedUmemFD = uint32(shareFD)
	}
	err := unix.Bind(s.fd, sa)
	for i := 0; err == unix.EBUSY && i < bindRetries; i++ {
		time.Sleep(bindRetryWait)
		err = unix.Bind(s.fd, sa)
	}
	if err != nil {
		return fmt.Errorf("bind af_xdp ifindex %d queue %d: %w", s.ifindex, s.queue, err)
	}
	return nil
}

// finish reads the bound mode and primes the ring caches.
func (s *Socket) finish(opts SocketOptions) error {
	var xo struct{ flags uint32 }
	if err := getsockopt(s.fd, unix.XDP_OPTIONS, unsafe.Pointer(&xo), uint32(unsafe.Sizeof(xo))); err != nil {
		return fmt.Errorf("getsockopt xdp_options: %w", err)
	}
	s.zeroCopy = xo.flags&unix.XDP_OPTIONS_ZEROCOPY != 0
	s.needWakeup = !opts.DisableNeedWakeup
	s.fillTarget = uint32(s.umem.cfg.FillSize / 2)
	if opts.FillTarget > 0 {
		s.fillTarget = uint32(min(opts.FillTarget, s.umem.cfg.FillSize))
	}
	s.fq.initProducer()
	s.tx.initProducer()
	s.rx.initConsumer()
	s.cq.initConsumer()
	return s.raiseTxBudget()
}

// raiseTxBudget lets one copy-mode sendto send a whole TX ring's worth of
// frames instead of the kernel's default 32 (XDP_MAX_TX_SKB_BUDGET, Linux
// 6.17+). Kernels without the option keep their default: not an error.
func (s *Socket) raiseTxBudget() error {
	err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, min(s.umem.cfg.TxSize, 256))
	if err != nil && err != unix.ENOPROTOOPT {
		return fmt.Errorf("setsockopt xdp_max_tx_skb_budget: %w", err)
	}
	return nil
}

// FD returns the socket's file descriptor, for the XSKMAP and poll(2).
func (s *Socket) FD() int { return s.fd }

// ZeroCopy reports whether the kernel bound the socket in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// Receive moves up to len(descs) received descriptors from the RX ring into
// descs and returns how many. Their frames now belong to the caller.
func (s *Socket) Receive(descs []Desc) int {
	if s.fd < 0 {
		return 0
	}
	n := s.rx.avail(uint32(min(len(descs), int(s.rx.size))))
	c := s.rx.cachedCons
	for i := range n {
		d := s.rx.descs[(c+i)&s.rx.mask]
		descs[i] = d
		s.umem.lend(d.Addr, tagUser)
	}
	s.rx.release(n)
	s.ctr.received += uint64(n)
	return int(n)
}

// Transmit puts up to len(descs) descriptors on the TX ring and returns how
// many it took; those frames now belong to the kernel until Complete. It
// kicks the kernel with sendto only when the TX ring asks for a wakeup (or
// always with DisableNeedWakeup). Transient kick errors are counted, not
// returned; the frames stay queued and go out on a later kick.
func (s *Socket) Transmit(descs []Desc) (int, error) {
	if s.fd < 0 {
		return 0, ErrClosed
	}
	n := s.tx.free(uint32(min(len(descs), int(s.tx.size))))
	p := s.tx.cachedProd
	for i := range n {
		d := descs[i]
		s.tx.descs[(p+i)&s.tx.mask] = d
		s.umem.lend(d.Addr, s.tag)
	}
	s.tx.submit(n)
	s.ctr.transmitted += uint64(n)
	return int(n), s.kick()
}

// kick wakes the kernel's TX path when needed. In copy mode the kernel sends
// a bounded batch per call and answers EAGAIN when frames remain (or the
// completion ring is full), so EAGAIN is retried a few times, draining
// completions in between; other transient errors are only counted.
func (s *Socket) kick() error {
	for range kickRetries {
		if s.tx.outstanding() == 0 || (s.needWakeup && !s.tx.needWakeup()) {
			return nil
		}
		s.ctr.wakeups++
		err := kickTx(s.fd)
		if err != unix.EAGAIN {
			return s.kickResult(err)
		}
		s.ctr.kickTransient++
		s.Complete()
	}
	return nil
}

// kickResult counts a finished kick and returns only non-transient errors.
func (s *Socket) kickResult(err error) error {
	switch {
	case err == nil:
		return nil
	case transient(err):
		s.ctr.kickTransient++
		return nil
	}
	s.ctr.kickErrors++
	return fmt.Errorf("sendto af_xdp: %w", err)
}

// Complete drains the completion ring, returning the transmitted frames to
// the Umem free list, and returns how many it drained.
func (s *Socket) Complete() int {
	if s.fd < 0 {
		return 0
	}
	n := s.cq.avail(s.cq.size)
	c := s.cq.cachedCons
	for i := range n {
		s.umem.release(s.cq.addrs[(c+i)&s.cq.mask], s.tag)
	}
	s.cq.release(n)
	s.ctr.completed += uint64(n)
	return int(n)
}

// SetFillTarget changes how many frames Fill keeps lent in this socket's
// fill ring (clamped to 1..the fill ring's size). Frames already lent stay
// lent until received. Owners of many sockets on one UMEM use it to share
// the UMEM's frames between them.
func (s *Socket) SetFillTarget(n int) {
	s.fillTarget = uint32(max(1, min(n, s.umem.cfg.FillSize)))
}

// Fill tops this socket's fill ring up to its target from the Umem free
// list, wakes the kernel if the fill ring asks for it, and returns how many
// frames it added.
func (s *Socket) Fill() int {
	if s.fd < 0 {
		return 0
	}
	u := s.umem
	want := s.fillTarget - min(s.fq.outstanding(), s.fillTarget)
	n := s.fq.free(min(want, uint32(len(u.free))))
	p := s.fq.cachedProd
	for i := range n {
		addr, _ := u.Alloc()
		s.fq.addrs[(p+i)&s.fq.mask] = addr
		u.owner[addr>>u.shift] = s.tag
	}
	s.fq.submit(n)
	s.ctr.filled += uint64(n)
	if s.NeedsWakeup() {
		s.wake()
	}
	return int(n)
}

// wake asks the kernel to look at the fill ring again.
func (s *Socket) wake() {
	s.ctr.wakeups++
	if err := wakeRx(s.fd); err != nil && !transient(err) {
		s.ctr.kickErrors++
	}
}

// NeedsWakeup reports whether the kernel asked, through the fill ring's
// need_wakeup flag, to be woken (poll(2) with POLLIN, or Fill) before it
// receives more. Always false with DisableNeedWakeup.
func (s *Socket) NeedsWakeup() bool {
	return s.fd >= 0 && s.needWakeup && s.fq.needWakeup()
}

// TxPending returns how many TX descriptors the kernel has not consumed.
func (s *Socket) TxPending() int {
	if s.fd < 0 {
		return 0
	}
	return int(s.tx.outstanding())
}

// Stats reads the kernel's XDP_STATISTICS and adds this socket's counters.
func (s *Socket) Stats() (Stats, error) {
	if s.fd < 0 {
		return Stats{}, ErrClosed
	}
	var ks unix.XDPStatistics
	if err := getsockopt(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&ks), uint32(unsafe.Sizeof(ks))); err != nil {
		return Stats{}, fmt.Errorf("getsockopt xdp_statistics: %w", err)
	}
	c := &s.ctr
	return Stats{
		RxDropped: ks.Rx_dropped, RxInvalidDescs: ks.Rx_invalid_descs, TxInvalidDescs: ks.Tx_invalid_descs,
		RxRingFull: ks.Rx_ring_full, RxFillRingEmptyDescs: ks.Rx_fill_ring_empty_descs,
		TxRingEmptyDescs: ks.Tx_ring_empty_descs,
		Received:         c.received, Transmitted: c.transmitted, Completed: c.completed, Filled: c.filled,
		KickTransient: c.kickTransient, KickErrors: c.kickErrors, Wakeups: c.wakeups,
	}, nil
}

// Close unbinds the socket and returns to the Umem free list every frame it
// had lent to the kernel (fill, RX, TX and completion rings). Frames the
// caller received stay the caller's. Close is idempotent.
func (s *Socket) Close() error {
	if s.fd < 0 {
		return nil
	}
	s.umem.forget(s)
	err := s.teardown()
	s.umem.reclaim(s.tag)
	return err
}

// teardown unmaps the rings, then closes the fd: a mapping holds a
// reference to the socket, so the kernel releases it only after both.
func (s *Socket) teardown() error {
	errs := []error{s.fq.unmap(), s.cq.unmap(), s.rx.unmap(), s.tx.unmap()}
	s.fq.addrs, s.cq.addrs, s.rx.descs, s.tx.descs = nil, nil, nil, nil
	if s.fd >= 0 {
		if err := unix.Close(s.fd); err != nil {
			errs = append(errs, fmt.Errorf("close af_xdp: %w", err))
		}
		s.fd = -1
	}
	return errors.Join(errs...)
}
