package afxdp

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// pair is the forwarding fixture: frames sent on in0 reach s0 (on p0a),
// and frames s1 transmits (on p1a) arrive at the AF_PACKET socket out1.
type pair struct {
	net        *testNet
	umem       *Umem
	s0, s1     *Socket
	in0, out1  int // AF_PACKET fds on p0b and p1b
	p0a, p1a   int
	p0b, p1b   int
	descs, fwd []Desc
	xsks       *ebpf.Map // XSKMAP of the program on p0a
}

func newPair(t testing.TB, cfg UmemConfig) *pair {
	t.Helper()
	p := &pair{net: newTestNet(t), descs: make([]Desc, 64), fwd: make([]Desc, 0, 64)}
	p.p0a, p.p0b = p.net.veth()
	p.p1a, p.p1b = p.net.veth()
	u, err := NewUmem(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Errorf("umem close: %v", err)
		}
	})
	p.umem = u
	p.xsks = p.net.attach(p.p0a)
	p.s0 = p.net.open(u, p.p0a, p.xsks)
	p.s1 = p.net.open(u, p.p1a, nil) // different device: XDP_SHARED_UMEM with its own FQ/CQ
	p.in0 = p.net.packetSocket(p.p0b)
	p.out1 = p.net.packetSocket(p.p1b)
	return p
}

// send writes frames into p0b; they arrive on p0a's XDP hook.
func (p *pair) send(t *testing.T, frames [][]byte) {
	t.Helper()
	for _, f := range frames {
		if _, err := unix.Write(p.in0, f); err != nil {
			t.Fatalf("af_packet send: %v", err)
		}
	}
}

// step moves one batch from s0 to s1 and returns how many test frames it
// forwarded; other frames are freed.
func (p *pair) step() int {
	n := p.s0.Receive(p.descs)
	p.fwd = p.fwd[:0]
	mem := p.umem.Mem()
	for _, d := range p.descs[:n] {
		if _, ok := isTestFrame(mem[d.Addr : d.Addr+uint64(d.Len)]); ok {
			p.fwd = append(p.fwd, d)
		} else {
			p.umem.Free(d.Addr)
		}
	}
	sent, _ := p.s1.Transmit(p.fwd)
	for _, d := range p.fwd[sent:] {
		p.umem.Free(d.Addr)
	}
	p.s1.Complete()
	p.s0.Fill()
	return sent
}

// forward runs step until want frames went out or the deadline passes.
func (p *pair) forward(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	got := 0
	for got < want && time.Now().Before(deadline) {
		got += p.step()
	}
	if got != want {
		st, _ := p.s0.Stats()
		t.Fatalf("forwarded %d of %d frames; s0 stats %+v", got, want, st)
	}
}

// collect reads test frames from out1 until want arrived or 2s passed.
func (p *pair) collect(t *testing.T, want int) map[int][]byte {
	t.Helper()
	got := map[int][]byte{}
	buf := make([]byte, 4096)
	deadline := time.Now().Add(2 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(p.out1, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("af_packet recv: %v", err)
		}
		if seq, ok := isTestFrame(buf[:n]); ok {
			got[seq] = bytes.Clone(buf[:n])
		}
	}
	return got
}

func TestForwardSharedUmem(t *testing.T) {
	// The fill target (half of 512) covers the whole burst sent below.
	p := newPair(t, UmemConfig{NumFrames: 1024, FillSize: 512, CompletionSize: 256, RxSize: 256, TxSize: 256})
	if p.s0.ZeroCopy() || p.s1.ZeroCopy() {
		t.Fatal("veth sockets report zero-copy; want copy mode")
	}
	p.s0.Fill()
	const n = 200
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = testFrame(i, 60+i*7) // 60..1453 bytes
	}
	p.send(t, frames)
	p.forward(t, n)
	got := p.collect(t, n)
	if len(got) != n {
		t.Fatalf("received %d of %d frames on the far peer", len(got), n)
	}
	for i, f := range frames {
		if !bytes.Equal(got[i], f) {
			t.Fatalf("frame %d changed on the way: got %d bytes, want %d", i, len(got[i]), len(f))
		}
	}
	st, err := p.s1.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Transmitted != n || st.TxInvalidDescs != 0 || st.KickErrors != 0 {
		t.Fatalf("s1 stats %+v", st)
	}
	t.Logf("s0 rx wakeups %d, s1 tx kicks %d (transient %d)", p.s0.ctr.wakeups, st.Wakeups, st.KickTransient)
}

func TestHotPathAllocs(t *testing.T) {
	p := newPair(t, UmemConfig{NumFrames: 1024, FillSize: 256, CompletionSize: 256, RxSize: 256, TxSize: 256})
	p.s0.Fill()
	frames := make([][]byte, 300)
	for i := range frames {
		frames[i] = testFrame(i, 64)
	}
	p.send(t, frames)
	moved := 0
	allocs := testing.AllocsPerRun(100, func() { moved += p.step() })
	if allocs != 0 {
		t.Fatalf("Receive/Transmit/Complete/Fill allocate %.1f times per batch", allocs)
	}
	if moved == 0 {
		t.Fatal("no frame moved while measuring allocations")
	}
}

// TestCloseReturnsFrames leaves frames in every ring and in the caller's
// hands, closes, and checks that every frame is back on the free list; then
// it reopens, which must register the UMEM again.
func TestCloseReturnsFrames(t *testing.T) {
	cfg := UmemConfig{NumFrames: 512, FillSize: 128, CompletionSize: 128, RxSize: 128, TxSize: 128}
	p := newPair(t, cfg)
	p.s0.Fill()
	frames := make([][]byte, 100)
	for i := range frames {
		frames[i] = testFrame(i, 64)
	}
	p.send(t, frames)
	time.Sleep(50 * time.Millisecond)
	held := p.s0.Receive(p.descs[:10]) // caller-owned
	n := p.s0.Receive(p.descs[10:40])
	if sent, err := p.s1.Transmit(p.descs[10 : 10+n]); err != nil || sent != n { // TX/completion rings
		t.Fatalf("transmit %d: sent %d, %v", n, sent, err)
	}
	if held != 10 || p.umem.FreeFrames() == cfg.NumFrames {
		t.Fatalf("setup: held %d frames, %d free", held, p.umem.FreeFrames())
	}
	for _, s := range []*Socket{p.s0, p.s1} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := p.umem.FreeFrames(), cfg.NumFrames-held; got != want {
		t.Fatalf("after close %d frames free, want %d (the caller holds %d)", got, want, held)
	}
	for _, d := range p.descs[:held] {
		p.umem.Free(d.Addr + 17) // any address inside the chunk
	}
	if p.umem.FreeFrames() != cfg.NumFrames || p.umem.BadFrees() != 0 {
		t.Fatalf("%d free, %d bad frees", p.umem.FreeFrames(), p.umem.BadFrees())
	}
	if _, err := p.s0.Transmit(p.descs[:1]); !errors.Is(err, ErrClosed) {
		t.Fatalf("transmit on closed socket: %v", err)
	}
	p.reopen(t)
}

// reopen opens both ports again on the same Umem and forwards traffic.
func (p *pair) reopen(t *testing.T) {
	p.s0 = p.net.open(p.umem, p.p0a, p.xsks)
	p.s1 = p.net.open(p.umem, p.p1a, nil)
	p.s0.Fill()
	p.send(t, [][]byte{testFrame(7, 100), testFrame(8, 200)})
	p.forward(t, 2)
	if got := p.collect(t, 2); len(got) != 2 {
		t.Fatalf("after reopen received %d of 2 frames", len(got))
	}
}

func TestOpenErrors(t *testing.T) {
	n := newTestNet(t)
	a, _ := n.veth()
	u, err := NewUmem(UmemConfig{NumFrames: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	open := func(ifindex int, o SocketOptions) (s *Socket, err error) {
		err = errors.Join(err, n.do(func() error { s, err = u.Open(ifindex, o); return nil }))
		return s, err
	}
	cases := []struct {
		name    string
		ifindex int
		opts    SocketOptions
		errno   error
	}{
		{"zero ifindex", 0, SocketOptions{Copy: true}, nil},
		{"missing ifindex", 1 << 30, SocketOptions{Copy: true}, unix.ENODEV},
		{"queue beyond device", a, SocketOptions{Copy: true, Queue: 64}, unix.EINVAL},
		{"negative queue", a, SocketOptions{Queue: -1}, nil},
		{"copy and zero-copy", a, SocketOptions{Copy: true, ZeroCopy: true}, nil},
		{"zero-copy on veth", a, SocketOptions{ZeroCopy: true}, unix.EOPNOTSUPP},
	}
	for _, c := range cases {
		s, err := open(c.ifindex, c.opts)
		if err == nil || s != nil || (c.errno != nil && !errors.Is(err, c.errno)) {
			t.Errorf("%s: got %v, %v; want error %v", c.name, s, err, c.errno)
		}
	}
	s, err := open(a, SocketOptions{Copy: true}) // a failed bind must not leave a stale registration
	if err != nil {
		t.Fatalf("good open after failures: %v", err)
	}
	if _, err := open(a, SocketOptions{Copy: true}); err == nil {
		t.Error("second socket on the same device and queue: no error")
	}
	b, _ := n.veth()
	if _, err := open(b, SocketOptions{}); err == nil {
		t.Error("shared socket with another bind mode: no error")
	}
	s.Close()
	if _, err := NewUmem(UmemConfig{FrameSize: 3000}); err == nil {
		t.Error("frame size 3000: no error")
	}
}

// TestTransmitLinkDown: a kick that meets a downed device (ENETDOWN) is
// counted, not returned and not a panic; the frame stays queued and Close
// gives it back.
func TestTransmitLinkDown(t *testing.T) {
	p := newPair(t, UmemConfig{NumFrames: 64, FillSize: 32, CompletionSize: 32, RxSize: 32, TxSize: 32})
	l, err := p.net.nl.LinkByIndex(p.p1a)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.net.nl.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	addr, _ := p.umem.Alloc()
	copy(p.umem.Mem()[addr:], testFrame(1, 64))
	sent, err := p.s1.Transmit([]Desc{{Addr: addr, Len: 64}})
	st, _ := p.s1.Stats()
	if sent != 1 || err != nil || st.KickTransient == 0 || p.s1.TxPending() != 1 {
		t.Fatalf("sent %d, err %v, stats %+v, pending %d", sent, err, st, p.s1.TxPending())
	}
	if err := p.s1.Close(); err != nil {
		t.Fatal(err)
	}
	if p.umem.FreeFrames() != 64 {
		t.Fatalf("%d of 64 frames free after close", p.umem.FreeFrames())
	}
}
