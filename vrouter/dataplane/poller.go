package dataplane

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/internal/cpuset"
	"github.com/xvr-project/xvr/vrouter/afxdp"
)

// BatchSize is how many frames a poller takes from one socket at a time.
const BatchSize = 64

// DefaultFillTarget is how many frames each socket keeps lent to the kernel
// for reception unless Poller.FillTarget says otherwise. Frames in a fill
// ring stay lent until the kernel fills them, so a UMEM never promises its
// sockets more than half its frames (the rest is for frames in flight): it
// serves at most frames/(2*FillTarget) sockets. On a busy 2-core node a
// single TCP stream at ~1.5 Gbit/s still finds the ring empty now and then
// at 512 (0.2-0.7 % retransmits), none at 1024, many at 256: 512 balances
// that against the time a socket takes to bind, which grows with the UMEM
// (docs/benchmarks.md). xvrd -fill changes it.
const DefaultFillTarget = 512

// DefaultMaxUmems bounds how many UMEMs a poller makes.
const DefaultMaxUmems = 64

// ErrPollerFull is returned by AddPort when no UMEM of the poller can back
// another socket's fill ring and it may not make another.
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
	TxPending() int // descriptors on the TX ring the kernel has not taken
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
	Alloc() (addr uint64, ok bool)
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
	Alloc() (addr uint64, ok bool)
	Free(addr uint64)
	FreeFrames() int
	Close() error
}

// group is one UMEM of a poller and the sockets sharing it. Forwarding
// between two sockets of a group moves the descriptor; between groups the
// frame is copied into the egress group's UMEM.
//
// A UMEM serves a bounded number of sockets because every socket bound to a
// shared UMEM on another device makes the kernel allocate per-chunk state
// for the whole UMEM (bind costs ~0.45 µs and ~128 B per chunk): many small
// UMEMs keep both the bind time and that memory proportional to the sockets.
type group struct {
	store   frameStore
	open    openFunc
	frames  int
	sockets int
	filling int // the fill targets of its sockets, summed (adaptFill's scratch)
}

// groupOf wraps a fresh UMEM.
func groupOf[S Socket](u Umem[S]) *group {
	return &group{store: u, open: opener(u), frames: u.FreeFrames()}
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
	g       *group
	bind    Binder // steers the device queue to sock
	stats   *VifStats
	txq     []afxdp.Desc
	pending bool // txq has frames and the port is on the dirty list
	kicked  bool // transmit ran this round
	fill    int  // the socket's fill target (adaptFill)
	recv    int  // frames received since adaptFill last ran
}

// Poller runs the pipeline over the sockets of one UMEM on one OS thread.
type Poller struct {
	cur      *Current
	groups   []*group
	newGroup func() (*group, error) // nil: the poller keeps the UMEM it was given
	bind     Binder
	drops    *DropStats

	// TxErrors counts transmit calls that failed outright (not a full ring).
	TxErrors  atomic.Uint64
	lastTxErr atomic.Pointer[error]

	// Busy-ratio clock (see Busy): nanoseconds since born, all monotonic.
	born     time.Time
	busyNs   atomic.Int64 // spent in rounds that received frames
	runStart atomic.Int64 // when Run started; 0: not yet
	runEnd   atomic.Int64 // when Run returned; 0: still running

	ports []*port // active ports in poll order
	byVif []*port // indexed by vif id
	dirty []*port
	fds   []unix.PollFd

	closed afxdp.Stats // kernel counters of sockets already closed

	cmds    chan func()
	started atomic.Bool
	stopped chan struct{} // closed when Run has returned
	wakeMu  sync.Mutex    // orders Do's kicks before Run closes wake
	wake    int           // eventfd that interrupts poll(2) when a command is queued; -1 once closed
	// txBacklog: after the last round some TX ring still held frames.
	txBacklog bool

	pipe     Pipeline
	rx       [BatchSize]afxdp.Desc
	verdicts [BatchSize]Verdict

	// SpinRounds is how many empty rounds a poller busy-polls before it
	// sleeps in poll(2): the most, adapted down while spinning finds no
	// frames (see spinBudget), or always with FixedSpin. Set both before Run.
	SpinRounds int
	FixedSpin  bool
	// NoYield keeps a spinning poller on its CPU; by default it yields it
	// after every empty round (sched_yield), so that a thread waiting for
	// the CPU (another xvrd's poller, a pod's process) runs at once instead
	// of after the spin: on a shared core the spin otherwise holds off the
	// other end of the path, whose fill ring empties meanwhile.
	NoYield bool
	// FillTarget is how many frames each socket keeps in its fill ring
	// (DefaultFillTarget) at least; change it only before the first AddPort.
	FillTarget int
	// FillMax is the most a busy socket's fill target grows to (see
	// adaptFill), at most the fill ring's size; 0 is the ring's size,
	// FillTarget keeps every target fixed. Set before Run.
	FillMax   int
	fillStart int64 // when adaptFill last ran, on the since clock
	fillRing  int   // the sockets' fill ring size, the most a target can be
	// MaxUmems bounds the UMEMs a poller made by NewPoller creates as ports
	// come (DefaultMaxUmems).
	MaxUmems int
	// CPUs, when set, are the only CPUs Run's thread may run on (xvrd
	// -poller-cpus); set before Run.
	CPUs []int
}

// NewPoller makes a poller that creates AF_XDP UMEMs of cfg as its ports
// need them (one to start with).
func NewPoller(cur *Current, cfg afxdp.UmemConfig, bind Binder) (*Poller, error) {
	newGroup := func() (*group, error) {
		u, err := afxdp.NewUmem(cfg)
		if err != nil {
			return nil, fmt.Errorf("creating umem: %w", err)
		}
		return groupOf(u), nil
	}
	first, err := newGroup()
	if err != nil {
		return nil, err
	}
	p, err := newPoller(cur, first, bind)
	if err != nil {
		return nil, errors.Join(err, first.store.Close())
	}
	p.newGroup = newGroup
	if cfg.FillSize > 0 {
		p.fillRing = cfg.FillSize
	}
	return p, nil
}

// NewPollerWith makes a poller over u, a fresh UMEM with no socket open
// (tests pass an *xdptest.Umem), and no other. The poller owns u from then
// on: Run closes it, with every socket, when it returns. On error the caller
// keeps u.
func NewPollerWith[S Socket](cur *Current, u Umem[S], bind Binder) (*Poller, error) {
	return newPoller(cur, groupOf(u), bind)
}

func newPoller(cur *Current, first *group, bind Binder) (*Poller, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating eventfd: %w", err)
	}
	p := &Poller{cur: cur, groups: []*group{first}, bind: bind, drops: new(DropStats),
		cmds: make(chan func(), 16), stopped: make(chan struct{}), wake: efd, SpinRounds: 4096,
		FillTarget: DefaultFillTarget, MaxUmems: DefaultMaxUmems, born: time.Now(), fillRing: defaultFillRing}
	p.pipe.FrameSize = uint64(first.store.FrameSize())
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
	return p.AddPortWith(vif, ifindex, queue, stats, p.bind)
}

// AddPortWith is AddPort for a device whose queues another XDP program
// steers (the fabric NIC's).
func (p *Poller) AddPortWith(vif uint32, ifindex, queue int, stats *VifStats, bind Binder) error {
	for _, q := range p.ports {
		if q.vif == vif && q.queue == queue {
			return fmt.Errorf("vif %d queue %d already open on this poller", vif, queue)
		}
	}
	if stats == nil {
		stats = new(VifStats)
	}
	g, err := p.groupFor()
	if err != nil {
		return err
	}
	s, err := g.open(ifindex, afxdp.SocketOptions{Queue: queue, Copy: true, FillTarget: p.FillTarget})
	if err != nil {
		p.release(g)
		return fmt.Errorf("opening xdp socket on ifindex %d queue %d: %w", ifindex, queue, err)
	}
	if err := bind.Register(ifindex, queue, s.FD()); err != nil {
		err = errors.Join(fmt.Errorf("steering ifindex %d queue %d: %w", ifindex, queue, err), s.Close())
		return errors.Join(err, p.release(g))
	}
	pt := &port{vif: vif, ifindex: ifindex, queue: queue, sock: s, g: g, bind: bind, stats: stats,
		txq: make([]afxdp.Desc, 0, BatchSize*4), fill: p.FillTarget}
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
		errs = append(errs, pt.bind.Unregister(pt.ifindex, pt.queue))
		if st, err := pt.sock.Stats(); err == nil {
			addStats(&p.closed, st)
		} else {
			errs = append(errs, fmt.Errorf("reading xdp statistics of vif %d queue %d: %w", vif, pt.queue, err))
		}
		if err := pt.sock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing xdp socket of vif %d queue %d: %w", vif, pt.queue, err))
		}
		errs = append(errs, p.release(pt.g))
	}
	clear(p.ports[len(kept):])
	p.ports = kept
	if int(vif) < len(p.byVif) {
		p.byVif[vif] = nil
	}
	p.rebuildFDs()
	return errors.Join(errs...)
}

// groupFor returns a UMEM with room for one more socket, making one if it
// must and may, and counts the socket in it.
func (p *Poller) groupFor() (*group, error) {
	for _, g := range p.groups {
		if (g.sockets+1)*p.FillTarget <= g.frames/2 {
			g.sockets++
			return g, nil
		}
	}
	if p.newGroup == nil || len(p.groups) >= p.MaxUmems {
		return nil, fmt.Errorf("%w: %d umems serve %d sockets with %d fill frames each (raise xvrd -frames or -umems)",
			ErrPollerFull, len(p.groups), len(p.ports), p.FillTarget)
	}
	g, err := p.newGroup()
	if err != nil {
		return nil, err
	}
	p.groups = append(p.groups, g)
	g.sockets++
	return g, nil
}

// release uncounts a socket of g and closes g when it was the last one (the
// first UMEM stays for the poller's life).
func (p *Poller) release(g *group) error {
	g.sockets--
	if g.sockets > 0 || g == p.groups[0] {
		return nil
	}
	for i, x := range p.groups {
		if x == g {
			p.groups = append(p.groups[:i], p.groups[i+1:]...)
			break
		}
	}
	if err := g.store.Close(); err != nil {
		return fmt.Errorf("closing an emptied umem: %w", err)
	}
	return nil
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
	defer close(p.stopped)
	if len(p.CPUs) == 0 {
		defer runtime.UnlockOSThread()
	} else if err := cpuset.PinThread(cpuset.Set(p.CPUs...)); err != nil {
		return errors.Join(err, p.close())
	} // a pinned thread stays locked and ends with Run's goroutine: no other goroutine inherits its pinning
	p.runStart.Store(max(p.since(time.Now()), 1))
	defer func() { p.runEnd.Store(max(p.since(time.Now()), p.runStart.Load())) }()
	defer func() { err = errors.Join(err, p.close()) }()
	idle, spin := 0, newSpinBudget(p.SpinRounds, p.FixedSpin)
	for ctx.Err() == nil {
		p.commands()
		if p.round() > 0 {
			spin.received(idle)
			idle = 0
			continue
		}
		if idle++; spin.sleepAfter(idle) {
			if err := p.sleep(); err != nil {
				return err
			}
		} else if !p.NoYield {
			yield()
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
// 50 ms pass (so a cancelled context is noticed); 1 ms while a TX ring
// still holds frames the kernel has not taken (TX completion wakes no
// poll(2) for RX).
func (p *Poller) sleep() error {
	timeout := 50
	if p.txBacklog {
		timeout = 1
	}
	_, err := unix.Poll(p.fds, timeout)
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

// yield gives the CPU to any thread waiting for it; with none it returns
// at once. Its error (none is defined) is of no use to a spinning poller.
func yield() { _, _, _ = unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// Busy returns how long the poller has spent in rounds that received frames
// (forwarded or dropped them) and how long its Run has been running, both
// zero before Run. busy/running is the busy ratio; the rest of the time went
// on rounds that found nothing (spinning), sleeping in poll(2) and commands.
// Safe to call from any goroutine.
func (p *Poller) Busy() (busy, running time.Duration) {
	start := p.runStart.Load()
	if start == 0 {
		return time.Duration(p.busyNs.Load()), 0
	}
	end := p.runEnd.Load()
	if end == 0 {
		end = p.since(time.Now())
	}
	return time.Duration(p.busyNs.Load()), time.Duration(end - start)
}

// since is t on the poller's monotonic clock, in nanoseconds.
func (p *Poller) since(t time.Time) int64 { return int64(t.Sub(p.born)) }

// round receives one batch from every port, forwards it, and recycles frames.
// It returns how many frames were received. A round that received frames
// reads the clock once more, at its end, to count its time as busy; an empty
// round costs nothing extra.
func (p *Poller) round() int {
	s := p.cur.Load()
	start := time.Now()
	p.pipe.Now = uint32(start.Unix())
	total := 0
	for _, pt := range p.ports {
		n := pt.sock.Receive(p.rx[:])
		if n == 0 {
			continue
		}
		total += n
		pt.recv += n
		var bytes uint64
		for _, d := range p.rx[:n] {
			bytes += uint64(d.Len)
		}
		pt.stats.RXPackets.Add(uint64(n))
		pt.stats.RXBytes.Add(bytes)
		p.pipe.Process(s, pt.g.store.Mem(), p.rx[:n], pt.vif, p.verdicts[:n])
		p.dispatch(pt, n)
	}
	p.flush()
	p.txBacklog = false
	for _, pt := range p.ports {
		pt.sock.Complete()
		pt.sock.Fill()
		switch {
		case pt.kicked: // transmit kicked it this round
			pt.kicked = false
			p.txBacklog = p.txBacklog || pt.sock.TxPending() > 0
		case pt.sock.TxPending() > 0:
			p.kickTx(pt)
		}
	}
	if total > 0 {
		p.busyNs.Add(int64(time.Since(start)))
	}
	p.adaptFill(p.since(start))
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
		if out.g != in.g {
			var ok bool
			if d, ok = p.copyAcross(in, out, d); !ok {
				p.drop(in, d, NoFrame)
				continue
			}
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

// copyAcross copies the frame d of in's UMEM into a frame of out's, at the
// same offset in its chunk (so the headroom is kept), and frees d. It
// reports false, keeping d, when out's UMEM has no free frame.
func (p *Poller) copyAcross(in, out *port, d afxdp.Desc) (afxdp.Desc, bool) {
	base, ok := out.g.store.Alloc()
	if !ok {
		return d, false
	}
	off := d.Addr & (p.pipe.FrameSize - 1)
	copy(out.g.store.Mem()[base+off:base+off+uint64(d.Len)], in.g.store.Mem()[d.Addr:d.Addr+uint64(d.Len)])
	in.g.store.Free(d.Addr)
	return afxdp.Desc{Addr: base + off, Len: d.Len}, true
}

func (p *Poller) drop(in *port, d afxdp.Desc, r Reason) {
	in.g.store.Free(d.Addr)
	p.drops[r].Add(1)
	in.stats.Drops.Add(1)
}

// kickTx asks the kernel again to send what out's TX ring holds: in copy
// mode one sendto sends a bounded batch, and frames left on the ring would
// otherwise wait for the next frame to that port (at the end of a burst,
// forever). It notes a backlog that remains, so the poller does not sleep
// long on it.
func (p *Poller) kickTx(out *port) {
	if _, err := out.sock.Transmit(nil); err != nil {
		p.TxErrors.Add(1)
		e := err
		p.lastTxErr.Store(&e)
	}
	if out.sock.TxPending() > 0 {
		p.txBacklog = true
	}
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
	out.kicked = true
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
		out.g.store.Free(d.Addr)
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
	for _, g := range p.groups {
		errs = append(errs, g.store.Close())
	}
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	if err := unix.Close(p.wake); err != nil {
		errs = append(errs, fmt.Errorf("closing eventfd: %w", err))
	}
	p.wake = -1
	return errors.Join(errs...)
}
