package dataplane

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/vrouter/afxdp"
)

// BatchSize is how many frames a poller takes from one socket at a time.
const BatchSize = 64

// DefaultFillTarget is how many frames each socket keeps lent to the kernel
// for reception unless Poller.FillTarget says otherwise. Frames in a fill
// ring stay lent until the kernel fills them, so a poller never promises its
// sockets more than half its UMEM (the rest is for frames in flight): it
// serves at most frames/(2*FillTarget) sockets and refuses more with
// ErrPollerFull. 512 keeps TCP bursts from finding the ring empty on a busy
// 2-core node (256 did not: see docs/benchmarks.md).
const DefaultFillTarget = 512

// ErrPollerFull is returned by AddPort when the UMEM cannot back another
// socket's fill ring.
var ErrPollerFull = errors.New("poller full")

// VifStats are one vif's live counters. A poller is the only writer of the
// stats it was given; anyone may read them.
type VifStats struct {
	RXPackets, RXBytes atomic.Uint64
	TXPackets, TXBytes atomic.Uint64
	Drops              atomic.Uint64
}

// DropStats counts drops by reason.
type DropStats [NumReasons]atomic.Uint64

// Binder is the seam to the XDP program: it steers a device queue's frames
// into a socket. vrouter/xdpprog implements it.
type Binder interface {
	Register(ifindex, queue, fd int) error
	Unregister(ifindex, queue int) error
}

// Socket is the part of an AF_XDP socket a poller drives; afxdp.Socket
// documents each method. *afxdp.Socket implements it, and so does the fake
// *xdptest.Socket. A poller calls it per batch, never per packet.
type Socket interface {
	FD() int // for poll(2): readable while frames wait to be received
	Receive(descs []afxdp.Desc) int
	Transmit(descs []afxdp.Desc) (int, error)
	Complete() int
	Fill() int
	SetFillTarget(n int)
	Stats() (afxdp.Stats, error)
	Close() error
}

// Umem is the part of a UMEM a poller drives, S being the type of socket
// its Open returns: *afxdp.Umem is a Umem[*afxdp.Socket] and the fake
// *xdptest.Umem a Umem[*xdptest.Socket]. Free is the only method a poller
// calls per packet (for a dropped frame).
type Umem[S Socket] interface {
	Mem() []byte
	FrameSize() int
	Free(addr uint64)
	FreeFrames() int
	Open(ifindex int, opts afxdp.SocketOptions) (S, error)
	Close() error
}

var _ Umem[*afxdp.Socket] = (*afxdp.Umem)(nil)

// frameStore is a Umem with its socket type erased, as a poller keeps it.
type frameStore interface {
	Mem() []byte
	FrameSize() int
	Free(addr uint64)
	FreeFrames() int
	Close() error
}

// openFunc opens a socket on a poller's UMEM.
type openFunc func(ifindex int, opts afxdp.SocketOptions) (Socket, error)

// ErrStopped is returned by Do once the poller's Run has returned.
var ErrStopped = errors.New("poller stopped")

// port is a poller's socket on one vif.
type port struct {
	vif     uint32
	ifindex int
	queue   int
	sock    Socket
	stats   *VifStats
	txq     []afxdp.Desc
	pending bool // txq has frames and the port is on the dirty list
}

// Poller runs the pipeline over the sockets of one UMEM on one OS thread.
type Poller struct {
	cur   *Current
	umem  frameStore
	open  openFunc
	bind  Binder
	drops *DropStats

	// TxErrors counts transmit calls that failed outright (not a full ring).
	TxErrors  atomic.Uint64
	lastTxErr atomic.Pointer[error]

	ports []*port // active ports in poll order
	byVif []*port // indexed by vif id
	dirty []*port
	fds   []unix.PollFd

	closed afxdp.Stats // kernel counters of sockets already closed
	frames int         // frames in the UMEM

	cmds    chan func()
	started atomic.Bool
	stopped chan struct{} // closed when Run has returned
	wakeMu  sync.Mutex    // orders Do's kicks before Run closes wake
	wake    int           // eventfd that interrupts poll(2) when a command is queued; -1 once closed

	pipe     Pipeline
	rx       [BatchSize]afxdp.Desc
	verdicts [BatchSize]Verdict

	// SpinRounds is how many empty rounds a poller busy-polls before it
	// sleeps in poll(2).
	SpinRounds int
	// FillTarget is how many frames each socket keeps in its fill ring
	// (DefaultFillTarget); change it only before the first AddPort.
	FillTarget int
}

// NewPoller makes a poller over a new AF_XDP UMEM.
func NewPoller(cur *Current, cfg afxdp.UmemConfig, bind Binder) (*Poller, error) {
	u, err := afxdp.NewUmem(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating umem: %w", err)
	}
	p, err := NewPollerWith(cur, u, bind)
	if err != nil {
		return nil, errors.Join(err, u.Close())
	}
	return p, nil
}

// NewPollerWith makes a poller over u, a fresh UMEM with no socket open
// (tests pass an *xdptest.Umem). The poller owns u from then on: Run closes
// it, with every socket, when it returns. On error the caller keeps u.
func NewPollerWith[S Socket](cur *Current, u Umem[S], bind Binder) (*Poller, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating eventfd: %w", err)
	}
	p := &Poller{cur: cur, umem: u, open: opener(u), bind: bind, drops: new(DropStats),
		cmds: make(chan func(), 16), stopped: make(chan struct{}), wake: efd, SpinRounds: 4096, FillTarget: DefaultFillTarget}
	p.pipe.FrameSize = uint64(u.FrameSize())
	p.frames = u.FreeFrames()
	p.rebuildFDs()
	return p, nil
}

// opener erases the socket type of u's Open.
func opener[S Socket](u Umem[S]) openFunc {
	return func(ifindex int, opts afxdp.SocketOptions) (Socket, error) {
		s, err := u.Open(ifindex, opts)
		if err != nil {
			return nil, err // not s: a nil *afxdp.Socket is a non-nil Socket
		}
		return s, nil
	}
}

// Do runs fn on the poller's goroutine between batches and returns its error,
// or ErrStopped when Run has returned without running fn. It must not be
// called from the poller's goroutine itself.
func (p *Poller) Do(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	select {
	case p.cmds <- func() { done <- fn() }:
	case <-p.stopped:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := p.kick(); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-p.stopped:
		select { // fn may have run just before Run returned
		case err := <-done:
			return err
		default:
			return ErrStopped
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DropStats returns the poller's drop counters.
func (p *Poller) DropStats() *DropStats { return p.drops }

// LastTxError returns the last error a transmit returned, or nil.
func (p *Poller) LastTxError() error {
	if e := p.lastTxErr.Load(); e != nil {
		return *e
	}
	return nil
}

// kick interrupts the poller's poll(2). It holds wakeMu so that it never
// writes to the eventfd's number after Run closed it (and the number may
// have been reused).
func (p *Poller) kick() error {
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	if p.wake < 0 {
		return ErrStopped
	}
	one := [8]byte{1, 0, 0, 0, 0, 0, 0, 0}
	_, err := unix.Write(p.wake, one[:])
	if err != nil && !errors.Is(err, unix.EAGAIN) { // EAGAIN: already signalled
		return fmt.Errorf("waking poller: %w", err)
	}
	return nil
}

// AddPort opens a socket on (ifindex, queue) for vif and steers the queue to
// it. A vif may have several queues on one poller: all receive, the first
// one opened transmits. It must run on the poller (use Do).
func (p *Poller) AddPort(vif uint32, ifindex, queue int, stats *VifStats) error {
	for _, q := range p.ports {
		if q.vif == vif && q.queue == queue {
			return fmt.Errorf("vif %d queue %d already open on this poller", vif, queue)
		}
	}
	if stats == nil {
		stats = new(VifStats)
	}
	if fill := p.FillTarget * (len(p.ports) + 1); fill > p.frames/2 {
		return fmt.Errorf("%w: %d sockets with %d fill frames each would lend more than half of the UMEM's %d frames (raise xvrd -frames)",
			ErrPollerFull, len(p.ports)+1, p.FillTarget, p.frames)
	}
	s, err := p.open(ifindex, afxdp.SocketOptions{Queue: queue, Copy: true, FillTarget: p.FillTarget})
	if err != nil {
		return fmt.Errorf("opening xdp socket on ifindex %d queue %d: %w", ifindex, queue, err)
	}
	if err := p.bind.Register(ifindex, queue, s.FD()); err != nil {
		return errors.Join(fmt.Errorf("steering ifindex %d queue %d: %w", ifindex, queue, err), s.Close())
	}
	pt := &port{vif: vif, ifindex: ifindex, queue: queue, sock: s, stats: stats,
		txq: make([]afxdp.Desc, 0, BatchSize*4)}
	for int(vif) >= len(p.byVif) {
		p.byVif = append(p.byVif, nil)
	}
	if p.byVif[vif] == nil {
		p.byVif[vif] = pt
	}
	p.ports = append(p.ports, pt)
	p.rebuildFDs()
	s.Fill()
	return nil
}

// RemovePort closes every socket of vif on this poller; their frames go back
// to the UMEM. It must run on the poller (use Do). Removing a vif that is not
// open is not an error.
func (p *Poller) RemovePort(vif uint32) error {
	p.flush() // nothing may stay queued for a closed socket
	var errs []error
	kept := p.ports[:0]
	for _, pt := range p.ports {
		if pt.vif != vif {
			kept = append(kept, pt)
			continue
		}
		errs = append(errs, p.bind.Unregister(pt.ifindex, pt.queue))
		if st, err := pt.sock.Stats(); err == nil {
			addStats(&p.closed, st)
		} else {
			errs = append(errs, fmt.Errorf("reading xdp statistics of vif %d queue %d: %w", vif, pt.queue, err))
		}
		if err := pt.sock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing xdp socket of vif %d queue %d: %w", vif, pt.queue, err))
		}
	}
	clear(p.ports[len(kept):])
	p.ports = kept
	if int(vif) < len(p.byVif) {
		p.byVif[vif] = nil
	}
	p.rebuildFDs()
	return errors.Join(errs...)
}

// KernelDrops adds the drops the kernel counted on this poller's sockets,
// open and closed, to d (indexed by Reason). It runs on the poller.
func (p *Poller) KernelDrops(ctx context.Context, d *[NumReasons]uint64) error {
	return p.Do(ctx, func() error {
		sum := p.closed
		var errs []error
		for _, pt := range p.ports {
			st, err := pt.sock.Stats()
			if err != nil {
				errs = append(errs, fmt.Errorf("reading xdp statistics of vif %d queue %d: %w", pt.vif, pt.queue, err))
				continue
			}
			addStats(&sum, st)
		}
		// The kernel counts a frame that found the fill ring empty in both
		// rx_dropped and rx_fill_ring_empty_descs: count it once.
		d[XSKRxDropped] += sum.RxDropped - min(sum.RxDropped, sum.RxFillRingEmptyDescs)
		d[XSKRxRingFull] += sum.RxRingFull
		d[XSKFillEmpty] += sum.RxFillRingEmptyDescs
		d[XSKTxInvalid] += sum.TxInvalidDescs
		return errors.Join(errs...)
	})
}

func addStats(a *afxdp.Stats, b afxdp.Stats) {
	a.RxDropped += b.RxDropped
	a.RxRingFull += b.RxRingFull
	a.RxFillRingEmptyDescs += b.RxFillRingEmptyDescs
	a.TxInvalidDescs += b.TxInvalidDescs
}

func (p *Poller) portOf(vif uint32) *port {
	if int(vif) < len(p.byVif) {
		return p.byVif[vif]
	}
	return nil
}

func (p *Poller) rebuildFDs() {
	p.fds = p.fds[:0]
	p.fds = append(p.fds, unix.PollFd{Fd: int32(p.wake), Events: unix.POLLIN})
	for _, pt := range p.ports {
		p.fds = append(p.fds, unix.PollFd{Fd: int32(pt.sock.FD()), Events: unix.POLLIN})
	}
}

// Run forwards until ctx is done, then closes every socket and the UMEM.
// A poller runs once: a second Run returns an error at once.
func (p *Poller) Run(ctx context.Context) (err error) {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("poller already ran")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(p.stopped)
	defer func() { err = errors.Join(err, p.close()) }()
	idle := 0
	for ctx.Err() == nil {
		p.commands()
		if p.round() > 0 {
			idle = 0
			continue
		}
		if idle++; idle > p.SpinRounds {
			if err := p.sleep(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Poller) commands() {
	for {
		select {
		case fn := <-p.cmds:
			fn()
		default:
			return
		}
	}
}

// sleep blocks in poll(2) until a socket has frames, a command is queued, or
// 50 ms pass (so a cancelled context is noticed).
func (p *Poller) sleep() error {
	_, err := unix.Poll(p.fds, 50)
	if err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("polling xdp sockets: %w", err)
	}
	if p.fds[0].Revents&unix.POLLIN != 0 {
		var buf [8]byte
		if _, err := unix.Read(p.wake, buf[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("reading poller eventfd: %w", err)
		}
	}
	return nil
}

// round receives one batch from every port, forwards it, and recycles frames.
// It returns how many frames were received.
func (p *Poller) round() int {
	s := p.cur.Load()
	mem := p.umem.Mem()
	total := 0
	for _, pt := range p.ports {
		n := pt.sock.Receive(p.rx[:])
		if n == 0 {
			continue
		}
		total += n
		var bytes uint64
		for _, d := range p.rx[:n] {
			bytes += uint64(d.Len)
		}
		pt.stats.RXPackets.Add(uint64(n))
		pt.stats.RXBytes.Add(bytes)
		p.pipe.Process(s, mem, p.rx[:n], pt.vif, p.verdicts[:n])
		p.dispatch(pt, n)
	}
	p.flush()
	for _, pt := range p.ports {
		pt.sock.Complete()
		pt.sock.Fill()
	}
	return total
}

func (p *Poller) dispatch(in *port, n int) {
	for i := 0; i < n; i++ {
		d, v := p.rx[i], p.verdicts[i]
		if v.Note != Forward {
			p.drops[v.Note].Add(1)
		}
		if v.Reason != Forward {
			p.drop(in, d, v.Reason)
			continue
		}
		out := p.portOf(v.Vif)
		if out == nil {
			p.drop(in, d, InterfaceDown)
			continue
		}
		if len(out.txq) == cap(out.txq) {
			p.transmit(out)
		}
		out.txq = append(out.txq, d)
		if !out.pending {
			out.pending = true
			p.dirty = append(p.dirty, out)
		}
	}
}

func (p *Poller) drop(in *port, d afxdp.Desc, r Reason) {
	p.umem.Free(d.Addr)
	p.drops[r].Add(1)
	in.stats.Drops.Add(1)
}

// flush transmits every queued group with one kick each.
func (p *Poller) flush() {
	for _, out := range p.dirty {
		p.transmit(out)
		out.pending = false
	}
	p.dirty = p.dirty[:0]
}

// transmit hands out's queued frames to its TX ring; what the ring cannot
// take is dropped and counted.
func (p *Poller) transmit(out *port) {
	n, err := out.sock.Transmit(out.txq)
	if err != nil {
		p.TxErrors.Add(1)
		e := err // a copy: storing &err would move err to the heap on every call
		p.lastTxErr.Store(&e)
	}
	var bytes uint64
	for _, d := range out.txq[:n] {
		bytes += uint64(d.Len)
	}
	for _, d := range out.txq[n:] {
		p.umem.Free(d.Addr)
		p.drops[TxRingFull].Add(1)
		out.stats.Drops.Add(1)
	}
	out.stats.TXPackets.Add(uint64(n))
	out.stats.TXBytes.Add(bytes)
	out.txq = out.txq[:0]
}

func (p *Poller) close() error {
	var errs []error
	for len(p.ports) > 0 {
		errs = append(errs, p.RemovePort(p.ports[0].vif))
	}
	errs = append(errs, p.umem.Close())
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	if err := unix.Close(p.wake); err != nil {
		errs = append(errs, fmt.Errorf("closing eventfd: %w", err))
	}
	p.wake = -1
	return errors.Join(errs...)
}
