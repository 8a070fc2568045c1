package dataplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/internal/cpuset"
	"github.com/xvr-project/xvr/vrouter/afxdp/xdptest"
	"github.com/xvr-project/xvr/vrouter/packet"
)

var _ Umem[*xdptest.Socket] = (*xdptest.Umem)(nil)

// fakeBinder records which socket each (ifindex, queue) is steered to.
type fakeBinder struct {
	mu  sync.Mutex
	reg map[[2]int]int
	err error // returned by Register when set
}

func (b *fakeBinder) Register(ifindex, queue, fd int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	b.reg[[2]int{ifindex, queue}] = fd
	return nil
}

func (b *fakeBinder) Unregister(ifindex, queue int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.reg, [2]int{ifindex, queue})
	return nil
}

func (b *fakeBinder) registered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reg)
}

// rig is a poller over a fake UMEM, forwarding testSnapshot. Vif v's port
// is ifindex 10+v; its stats are stats[v].
type rig struct {
	p     *Poller
	u     *xdptest.Umem
	b     *fakeBinder
	stats [8]VifStats
}

func newRig(t testing.TB, frames int, vifs ...uint32) *rig {
	t.Helper()
	cur := new(Current)
	cur.Publish(testSnapshot(t))
	r := &rig{u: xdptest.NewUmem(frames, frameSize), b: &fakeBinder{reg: map[[2]int]int{}}}
	p, err := NewPollerWith(cur, r.u, r.b)
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	p.FillTarget = 64 // small UMEMs: keep room for every test's sockets
	for _, v := range vifs {
		if err := r.add(v, 0); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *rig) add(vif uint32, queue int) error {
	return r.p.AddPort(vif, 10+int(vif), queue, &r.stats[vif])
}

func (r *rig) sock(vif uint32) *xdptest.Socket { return r.u.Socket(10+int(vif), 0) }

func (r *rig) inject(t testing.TB, vif uint32, frames ...[]byte) {
	t.Helper()
	s := r.sock(vif)
	for i, f := range frames {
		if !s.Inject(f) {
			t.Fatalf("inject %d on vif %d: no room", i, vif)
		}
	}
}

// closeAndCheck closes the poller as Run does and checks the invariant:
// every frame is back on the free list and the fake saw no ownership error.
func (r *rig) closeAndCheck(t testing.TB) {
	t.Helper()
	if err := r.p.close(); err != nil {
		t.Fatal(err)
	}
	r.checkNoLeak(t)
}

func (r *rig) checkNoLeak(t testing.TB) {
	t.Helper()
	if err := r.u.Err(); err != nil {
		t.Fatalf("umem ownership: %v", err)
	}
	if free, all := r.u.FreeFrames(), r.u.Frames(); free != all {
		t.Fatalf("%d of %d frames free after close: leak", free, all)
	}
	if n := r.b.registered(); n != 0 {
		t.Fatalf("%d queues still steered after close", n)
	}
}

// checkConserved checks, between rounds, that every frame is free or lent
// to one of the sockets of vifs (queue 0): the poller holds none.
func (r *rig) checkConserved(t testing.TB, vifs ...uint32) {
	t.Helper()
	n := r.u.FreeFrames()
	for _, v := range vifs {
		n += r.sock(v).Lent()
	}
	if n != r.u.Frames() {
		t.Fatalf("%d of %d frames free or lent to a socket", n, r.u.Frames())
	}
}

func (r *rig) drops(reason Reason) uint64 { return r.p.DropStats()[reason].Load() }

func (r *rig) totalDrops() uint64 {
	var n uint64
	for i := range r.p.DropStats() {
		n += r.p.DropStats()[i].Load()
	}
	return n
}

func decode(f []byte) (*layers.Ethernet, *layers.IPv4) {
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	return eth, ip
}

func checkForwarded(t *testing.T, f []byte, wantLen int, dst [6]byte) {
	t.Helper()
	eth, ip := decode(f)
	if len(f) != wantLen || eth == nil || ip == nil {
		t.Fatalf("sent %d bytes (want %d): %x", len(f), wantLen, f)
	}
	if [6]byte(eth.DstMAC) != dst || [6]byte(eth.SrcMAC) != rtrMAC || ip.TTL != 63 {
		t.Fatalf("rewrite: dst %v src %v ttl %d", eth.DstMAC, eth.SrcMAC, ip.TTL)
	}
	if packet.Checksum(f[14:34]) != 0 {
		t.Fatal("IP checksum broken")
	}
}

func checkVif(t *testing.T, name string, s *VifStats, rxp, rxb, txp, txb, drops uint64) {
	t.Helper()
	got := [5]uint64{s.RXPackets.Load(), s.RXBytes.Load(), s.TXPackets.Load(), s.TXBytes.Load(), s.Drops.Load()}
	if want := [5]uint64{rxp, rxb, txp, txb, drops}; got != want {
		t.Fatalf("%s rx pkts/bytes, tx pkts/bytes, drops = %v, want %v", name, got, want)
	}
}

func TestPollerForwardsSameVN(t *testing.T) {
	r := newRig(t, 1024, 1, 2, 3)
	ab := [][]byte{udpFrame(t, ipA, ipB, 64, 10), udpFrame(t, ipA, ipB, 64, 100), udpFrame(t, ipA, ipB, 64, 1000)}
	ba := udpFrame(t, ipB, ipA, 64, 50)
	r.inject(t, 1, ab...)
	r.inject(t, 2, ba)
	if n := r.p.round(); n != 4 {
		t.Fatalf("round received %d frames, want 4", n)
	}
	toB, toA, toC := r.sock(2).Sent(), r.sock(1).Sent(), r.sock(3).Sent()
	if len(toB) != 3 || len(toA) != 1 || len(toC) != 0 {
		t.Fatalf("sent to A/B/C: %d/%d/%d frames, want 1/3/0", len(toA), len(toB), len(toC))
	}
	abBytes := uint64(0)
	for i, f := range toB {
		checkForwarded(t, f, len(ab[i]), macB) // in order
		abBytes += uint64(len(f))
	}
	checkForwarded(t, toA[0], len(ba), macA)
	checkVif(t, "vif 1", &r.stats[1], 3, abBytes, 1, uint64(len(ba)), 0)
	checkVif(t, "vif 2", &r.stats[2], 1, uint64(len(ba)), 3, abBytes, 0)
	checkVif(t, "vif 3", &r.stats[3], 0, 0, 0, 0, 0)
	if n := r.totalDrops(); n != 0 {
		t.Fatalf("%d drops", n)
	}
	r.p.round() // completes what Sent drained
	r.closeAndCheck(t)
}

func TestPollerDropsCrossVN(t *testing.T) {
	r := newRig(t, 1024, 1, 2, 3)
	r.inject(t, 1, udpFrame(t, ipA, ipC, 64, 10))
	r.inject(t, 3, udpFrame(t, ipC, ipA, 64, 10))
	r.p.round()
	for v := uint32(1); v <= 3; v++ {
		if n := len(r.sock(v).Sent()); n != 0 {
			t.Fatalf("vif %d sent %d frames across VNs", v, n)
		}
	}
	if n := r.drops(NoRoute); n != 2 || r.totalDrops() != 2 {
		t.Fatalf("no_route %d, all drops %d, want 2 and 2", n, r.totalDrops())
	}
	if r.stats[1].Drops.Load() != 1 || r.stats[3].Drops.Load() != 1 || r.stats[2].Drops.Load() != 0 {
		t.Fatal("drop not counted on the ingress vif")
	}
	r.checkConserved(t, 1, 2, 3) // the dropped frames went back to the UMEM

	r.closeAndCheck(t)
}

func TestPollerAnswersOnIngress(t *testing.T) {
	r := newRig(t, 1024, 1, 2)
	r.inject(t, 1, arpFrame(t, gw10), pingFrame(t, gw10))
	r.p.round()
	back := r.sock(1).Sent()
	if len(back) != 2 || len(r.sock(2).Sent()) != 0 {
		t.Fatalf("%d frames back out of vif 1, want 2 (and none to vif 2)", len(back))
	}
	p := gopacket.NewPacket(back[0], layers.LayerTypeEthernet, gopacket.Default)
	a, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if a == nil || a.Operation != layers.ARPReply || [6]byte(a.SourceHwAddress) != rtrMAC ||
		[4]byte(a.SourceProtAddress) != gw10 || [4]byte(a.DstProtAddress) != ipA {
		t.Fatalf("arp reply %v", p)
	}
	p = gopacket.NewPacket(back[1], layers.LayerTypeEthernet, gopacket.Default)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ic == nil || ic.TypeCode.Type() != layers.ICMPv4TypeEchoReply {
		t.Fatalf("echo reply %v", p)
	}
	if r.stats[1].TXPackets.Load() != 2 || r.totalDrops() != 0 {
		t.Fatalf("vif 1 tx %d, drops %d", r.stats[1].TXPackets.Load(), r.totalDrops())
	}
	r.closeAndCheck(t)
}

func TestPollerTxRingFull(t *testing.T) {
	r := newRig(t, 1024, 1, 2)
	r.sock(2).SetTxCapacity(2)
	f := udpFrame(t, ipA, ipB, 64, 10)
	r.inject(t, 1, f, f, f, f, f)
	r.p.round()
	if n := len(r.sock(2).Sent()); n != 2 {
		t.Fatalf("%d sent through a 2-entry TX ring", n)
	}
	if n := r.drops(TxRingFull); n != 3 {
		t.Fatalf("tx_ring_full %d, want 3", n)
	}
	n := uint64(len(f))
	checkVif(t, "vif 1", &r.stats[1], 5, 5*n, 0, 0, 0)
	checkVif(t, "vif 2", &r.stats[2], 0, 0, 2, 2*n, 3) // counted on the egress vif
	r.closeAndCheck(t)
}

// TestPollerTxBacklog: frames the kernel has not taken from a TX ring are
// kicked again in later rounds, even empty ones, and keep the poller from
// sleeping long; once taken, the backlog is gone.
func TestPollerTxBacklog(t *testing.T) {
	r := newRig(t, 1024, 1, 2)
	f := udpFrame(t, ipA, ipB, 64, 10)
	r.inject(t, 1, f, f)
	if got := r.p.round(); got != 2 {
		t.Fatalf("round received %d", got)
	}
	if !r.p.txBacklog {
		t.Fatal("2 frames on vif 2's TX ring after the round: no backlog noted")
	}
	if got := r.p.round(); got != 0 || !r.p.txBacklog {
		t.Fatalf("empty round: received %d, backlog %v; want 0, true (the ring still holds them)", got, r.p.txBacklog)
	}
	if n := r.sock(2).DiscardSent(); n != 2 {
		t.Fatalf("%d frames on the TX ring, want 2", n)
	}
	r.p.round()
	if r.p.txBacklog {
		t.Fatal("backlog after the kernel took every frame")
	}
	r.closeAndCheck(t)
}

func TestPollerTransmitError(t *testing.T) {
	r := newRig(t, 1024, 1, 2)
	boom := errors.New("sendto: boom")
	r.sock(2).SetTransmitError(boom)
	f := udpFrame(t, ipA, ipB, 64, 10)
	r.inject(t, 1, f, f)
	r.p.round()
	if r.p.TxErrors.Load() != 1 || !errors.Is(r.p.LastTxError(), boom) {
		t.Fatalf("tx errors %d, last %v", r.p.TxErrors.Load(), r.p.LastTxError())
	}
	if n := len(r.sock(2).Sent()); n != 2 || r.totalDrops() != 0 { // a failed kick leaves frames on the ring
		t.Fatalf("%d sent, %d drops", n, r.totalDrops())
	}
	r.sock(2).SetTransmitError(nil)
	r.inject(t, 1, f)
	r.p.round()
	if r.p.TxErrors.Load() != 1 || len(r.sock(2).Sent()) != 1 {
		t.Fatal("transmit error outlived its cause")
	}
	r.closeAndCheck(t)
}

// TestPollerMultiQueue: every queue of a vif receives, the first transmits,
// and more frames for one port than its TX queue holds are sent in groups.
func TestPollerMultiQueue(t *testing.T) {
	const queues = 5         // 5*BatchSize frames > the 4*BatchSize TX queue
	r := newRig(t, 16384, 2) // enough for every socket's fill target
	for q := range queues {
		if err := r.add(1, q); err != nil {
			t.Fatal(err)
		}
	}
	f := udpFrame(t, ipA, ipB, 64, 10)
	for q := range queues {
		for range BatchSize {
			if !r.u.Socket(11, q).Inject(f) {
				t.Fatalf("inject on queue %d", q)
			}
		}
	}
	if n := r.p.round(); n != queues*BatchSize {
		t.Fatalf("received %d", n)
	}
	if n := len(r.sock(2).Sent()); n != queues*BatchSize || r.totalDrops() != 0 {
		t.Fatalf("sent %d, dropped %d", n, r.totalDrops())
	}
	r.inject(t, 2, udpFrame(t, ipB, ipA, 64, 10))
	r.p.round()
	if n := len(r.sock(1).Sent()); n != 1 {
		t.Fatalf("vif 1 queue 0 sent %d, want 1", n)
	}
	r.closeAndCheck(t)
}

func TestPollerAddPortErrors(t *testing.T) {
	r := newRig(t, 1024, 1)
	free := r.u.FreeFrames()
	if err := r.add(1, 0); err == nil {
		t.Fatal("vif 1 queue 0 opened twice")
	}
	if r.b.registered() != 1 || r.u.FreeFrames() != free {
		t.Fatal("a refused AddPort changed state")
	}
	openErr := errors.New("no such device")
	r.u.SetOpenError(openErr)
	if err := r.add(2, 0); !errors.Is(err, openErr) {
		t.Fatalf("AddPort with a failing Open: %v", err)
	}
	r.u.SetOpenError(nil)
	bindErr := errors.New("xskmap full")
	r.b.err = bindErr
	if err := r.add(2, 0); !errors.Is(err, bindErr) || r.sock(2) != nil {
		t.Fatalf("AddPort with a failing Register: %v (socket left open: %v)", err, r.sock(2) != nil)
	}
	r.b.err = nil
	if err := r.add(2, 0); err != nil {
		t.Fatal(err)
	}
	r.inject(t, 1, udpFrame(t, ipA, ipB, 64, 10))
	r.p.round()
	if len(r.sock(2).Sent()) != 1 {
		t.Fatal("port added after failures does not forward")
	}
	r.closeAndCheck(t)
}

func TestPollerRemovePortReturnsFrames(t *testing.T) {
	r := newRig(t, 1024, 1, 2)
	f := udpFrame(t, ipA, ipB, 64, 10)
	r.inject(t, 1, f, f, f)
	r.p.round() // three frames wait in vif 2's TX queue
	r.checkConserved(t, 1, 2)
	if err := r.p.RemovePort(2); err != nil {
		t.Fatal(err)
	}
	r.checkConserved(t, 1)
	if r.u.Socket(12, 0) != nil || r.b.registered() != 1 {
		t.Fatal("removed port still open or steered")
	}
	r.inject(t, 1, f)
	r.p.round()
	if r.drops(InterfaceDown) != 1 || r.stats[1].Drops.Load() != 1 {
		t.Fatalf("interface_down %d", r.drops(InterfaceDown))
	}
	if err := r.p.RemovePort(2); err != nil {
		t.Fatalf("removing a removed vif: %v", err)
	}
	if err := r.p.RemovePort(1); err != nil {
		t.Fatal(err)
	}
	if r.u.FreeFrames() != r.u.Frames() {
		t.Fatalf("%d of %d frames free with no port open", r.u.FreeFrames(), r.u.Frames())
	}
	r.closeAndCheck(t)
}

// TestPollerRun drives Run on its own goroutine: ports added with Do, frames
// woken out of poll(2) by the fake sockets' eventfds, kernel drops summed
// across closed sockets, and Do refused once Run has returned.
func TestPollerRun(t *testing.T) {
	r := newRig(t, 512, 1, 2)
	r.p.SpinRounds = 0 // sleep in poll(2) after every empty round
	f := udpFrame(t, ipA, ipB, 64, 10)
	lent := r.sock(1).Lent()
	for range lent + 72 {
		r.sock(1).Inject(f) // the last 72 find the fill ring empty
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- r.p.Run(ctx) }()
	waitSent(t, r.sock(2), lent)

	start := time.Now()
	for range 20 { // one frame at a time: each must wake the poller from poll(2)
		waitFillable(t, r.sock(1)) // the poller refills after it sends
		r.inject(t, 1, f)
		waitSent(t, r.sock(2), 1)
	}
	if el := time.Since(start); el > 500*time.Millisecond { // 20 x the 50 ms poll timeout is 1 s
		t.Fatalf("20 wakeups took %v: frames are not waking poll(2)", el)
	}

	var d [NumReasons]uint64
	if err := r.p.KernelDrops(ctx, &d); err != nil || d[XSKFillEmpty] != 72 {
		t.Fatalf("kernel drops %v (err %v), want 72 xsk_fill_ring_empty", d, err)
	}
	do(t, r.p, func() error { return r.add(3, 0) })
	do(t, r.p, func() error { return r.p.RemovePort(1) })
	d = [NumReasons]uint64{}
	if err := r.p.KernelDrops(ctx, &d); err != nil || d[XSKFillEmpty] != 72 {
		t.Fatalf("kernel drops of a closed socket lost: %v (err %v)", d, err)
	}
	if n := r.stats[2].TXPackets.Load(); n != uint64(lent+20) {
		t.Fatalf("vif 2 tx %d, want %d", n, lent+20)
	}

	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer dcancel()
	if err := r.p.Do(dctx, func() error { return nil }); !errors.Is(err, ErrStopped) {
		t.Fatalf("Do after Run returned: %v, want ErrStopped", err)
	}
	if err := r.p.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
	r.checkNoLeak(t)
}

// TestPollerCPUs: a poller with CPUs runs on those alone; with a CPU the
// machine lacks, Run fails at once and releases everything.
func TestPollerCPUs(t *testing.T) {
	allowed, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for c := range 1024 {
		if allowed.IsSet(c) {
			last = c
		}
	}
	r := newRig(t, 512, 1)
	r.p.CPUs = []int{last}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.p.Run(ctx) }()
	do(t, r.p, func() error {
		on, err := cpuset.Allowed()
		if err != nil {
			return err
		}
		if on.Count() != 1 || !on.IsSet(last) {
			return fmt.Errorf("the poller's thread may run on %d CPUs, want only CPU %d", on.Count(), last)
		}
		return nil
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}

	bad := newRig(t, 512, 1)
	bad.p.CPUs = []int{1023}
	if err := bad.p.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "pinning") {
		t.Fatalf("Run pinned to a missing CPU: %v", err)
	}
	bad.checkNoLeak(t)
}

func do(t *testing.T, p *Poller, fn func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Do(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

// waitSent waits (at most 5 s) for n frames out of s.
// waitFillable waits (at most 5 s) until the socket's fill queue has a chunk.
func waitFillable(t *testing.T, s *xdptest.Socket) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if s.Fillable() > 0 {
			return
		}
		time.Sleep(20 * time.Microsecond)
	}
	t.Fatal("the fill queue stayed empty for 5 s")
}

func waitSent(t *testing.T, s *xdptest.Socket, n int) {
	t.Helper()
	got := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if got += len(s.Sent()); got >= n {
			if got > n {
				t.Fatalf("%d frames sent, want %d", got, n)
			}
			return
		}
		time.Sleep(20 * time.Microsecond)
	}
	t.Fatalf("%d of %d frames sent after 5 s", got, n)
}

// roundTrip is one benchmark step: a batch from vif 1 forwarded to vif 2,
// which the fake kernel then drains.
func roundTrip(tb testing.TB, r *rig, in, out *xdptest.Socket, f []byte) {
	for range BatchSize {
		in.Inject(f)
	}
	r.p.round()
	if out.DiscardSent() != BatchSize {
		tb.Fatal("batch not forwarded")
	}
}

func TestPollerRoundZeroAllocs(t *testing.T) {
	r := newRig(t, 4096, 1, 2)
	in, out, f := r.sock(1), r.sock(2), udpFrame(t, ipA, ipB, 64, 18)
	allocs := testing.AllocsPerRun(200, func() { roundTrip(t, r, in, out, f) })
	if allocs != 0 {
		t.Fatalf("%v allocations per round of %d frames", allocs, BatchSize)
	}
	r.p.round()
	r.closeAndCheck(t)
}

// BenchmarkPollerRound measures one poller round of BatchSize 64-byte
// frames from port 1 to port 2 over the fake UMEM, including the fake
// kernel's work (Inject copies each frame in, DiscardSent drains the TX
// queue), which real NIC/veth traffic would not cost the poller.
func BenchmarkPollerRound(b *testing.B) {
	r := newRig(b, 4096, 1, 2)
	in, out, f := r.sock(1), r.sock(2), udpFrame(b, ipA, ipB, 64, 18)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		roundTrip(b, r, in, out, f)
	}
	el := time.Since(start)
	b.StopTimer()
	pkts := float64(b.N) * BatchSize
	b.ReportMetric(el.Seconds()*1e9/pkts, "ns/pkt")
	b.ReportMetric(pkts/el.Seconds(), "pps")
	r.p.round()
	r.closeAndCheck(b)
}

// TestPollerFull: a poller refuses a socket its UMEM cannot back, and takes
// one again once a port is gone.
func TestPollerFull(t *testing.T) {
	r := newRig(t, 512, 1, 2, 3, 4) // 4 sockets x 64 fill frames = half of 512
	if err := r.add(5, 0); !errors.Is(err, ErrPollerFull) {
		t.Fatalf("fifth socket: %v, want ErrPollerFull", err)
	}
	if err := r.p.RemovePort(4); err != nil {
		t.Fatal(err)
	}
	if err := r.add(5, 0); err != nil {
		t.Fatalf("after a removal: %v", err)
	}
	r.closeAndCheck(t)
}

// TestPollerBusy: an idle poller counts no busy time while its running time
// follows the clock; rounds that move frames count as busy, and busy never
// exceeds running; both stop growing once Run returns.
func TestPollerBusy(t *testing.T) {
	r := newRig(t, 512, 1, 2)
	r.p.SpinRounds = 64
	if busy, running := r.p.Busy(); busy != 0 || running != 0 {
		t.Fatalf("before Run: busy %v running %v, want 0 and 0", busy, running)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- r.p.Run(ctx) }()

	time.Sleep(200 * time.Millisecond) // idle: spinning, then poll(2)
	busy, running := r.p.Busy()
	if busy != 0 || running < 150*time.Millisecond || running > time.Since(start) {
		t.Fatalf("idle for 200 ms: busy %v running %v (wall %v)", busy, running, time.Since(start))
	}

	f := udpFrame(t, ipA, ipB, 64, 10)
	for i := range 50 { // frames now and then: some rounds are busy
		r.inject(t, 1, f)
		waitSent(t, r.sock(2), 1)
		if i%10 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	busy, running = r.p.Busy()
	if busy <= 0 || busy >= running {
		t.Fatalf("after 50 forwarded frames: busy %v running %v, want 0 < busy < running", busy, running)
	}
	t.Logf("busy %v of %v running (ratio %.4f)", busy, running, busy.Seconds()/running.Seconds())

	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	busy1, running1 := r.p.Busy()
	time.Sleep(20 * time.Millisecond)
	if busy2, running2 := r.p.Busy(); busy2 != busy1 || running2 != running1 || busy1 < busy {
		t.Fatalf("after Run returned: busy %v→%v running %v→%v", busy1, busy2, running1, running2)
	}
	r.checkNoLeak(t)
}
