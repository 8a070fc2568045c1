package xdptest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/vrouter/afxdp"
)

func open(t *testing.T, u *Umem, ifindex, fill int) *Socket {
	t.Helper()
	s, err := u.Open(ifindex, afxdp.SocketOptions{FillTarget: fill})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func receiveOne(t *testing.T, s *Socket) afxdp.Desc {
	t.Helper()
	var d [1]afxdp.Desc
	if s.Receive(d[:]) != 1 {
		t.Fatal("nothing received")
	}
	return d[0]
}

func checkClean(t *testing.T, u *Umem) {
	t.Helper()
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u.Err(); err != nil {
		t.Fatal(err)
	}
	if u.FreeFrames() != u.Frames() {
		t.Fatalf("%d of %d frames free", u.FreeFrames(), u.Frames())
	}
}

func TestForwardBetweenSockets(t *testing.T) {
	u := NewUmem(64, 2048)
	a, b := open(t, u, 1, 8), open(t, u, 2, 8)
	if a.Fill() != 8 || b.Fill() != 8 || u.FreeFrames() != 48 {
		t.Fatalf("fill: %d free", u.FreeFrames())
	}
	frame := []byte("a frame of some bytes")
	if !a.Inject(frame) {
		t.Fatal("inject")
	}
	d := receiveOne(t, a)
	if d.Addr%2048 != Headroom || !bytes.Equal(u.Mem()[d.Addr:d.Addr+uint64(d.Len)], frame) {
		t.Fatalf("desc %+v", d)
	}
	if n, err := b.Transmit([]afxdp.Desc{d}); n != 1 || err != nil {
		t.Fatalf("transmit %d %v", n, err)
	}
	if sent := b.Sent(); len(sent) != 1 || !bytes.Equal(sent[0], frame) {
		t.Fatalf("sent %q", sent)
	}
	if b.Complete() != 1 || a.Fill() != 1 || u.FreeFrames() != 48 {
		t.Fatalf("complete/refill: %d free", u.FreeFrames())
	}
	checkClean(t, u)
}

func TestOwnershipViolationsAreRecorded(t *testing.T) {
	u := NewUmem(16, 2048)
	s := open(t, u, 1, 4)
	s.Fill()
	s.Inject([]byte("x"))
	d := receiveOne(t, s)
	u.Free(d.Addr)
	if u.Err() != nil {
		t.Fatal(u.Err())
	}
	u.Free(d.Addr)                                   // double free
	u.Free(4 * 2048)                                 // free list frame never handed out (frames 0-3 are lent)
	s.Transmit([]afxdp.Desc{{Addr: d.Addr, Len: 1}}) // transmit of a free frame
	u.Free(1 << 30)                                  // outside the umem
	err := u.Err()
	if err == nil {
		t.Fatal("violations not recorded")
	}
	for _, want := range []string{"free: frame 0", "is free, want the caller's", "transmit", "outside"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %v", want, err)
		}
	}
	if st, _ := s.Stats(); st.TxInvalidDescs != 1 || len(s.Sent()) != 0 {
		t.Fatalf("invalid transmit queued: %+v", st)
	}
	if u.FreeFrames()+s.Lent() != u.Frames() {
		t.Fatal("a bad free changed the free list")
	}
}

func TestLeakAtCloseIsRecorded(t *testing.T) {
	u := NewUmem(16, 2048)
	s := open(t, u, 1, 4)
	s.Fill()
	s.Inject([]byte("x"))
	receiveOne(t, s) // never freed
	u.Close()
	if err := u.Err(); err == nil || !strings.Contains(err.Error(), "1 frames still owned") {
		t.Fatalf("leak not recorded: %v", err)
	}
}

func TestTransmitPastChunkIsRecorded(t *testing.T) {
	u := NewUmem(16, 2048)
	s := open(t, u, 1, 4)
	s.Fill()
	s.Inject([]byte("x"))
	d := receiveOne(t, s)
	d.Len = 2048
	if n, _ := s.Transmit([]afxdp.Desc{d}); n != 1 || u.Err() == nil {
		t.Fatalf("descriptor past its chunk: taken %d, err %v", n, u.Err())
	}
}

func TestInjectLimits(t *testing.T) {
	u := NewUmem(16, 2048)
	s := open(t, u, 1, 2)
	if s.Inject([]byte("x")) {
		t.Fatal("inject with an empty fill ring")
	}
	s.Fill()
	if s.Inject(make([]byte, 2048-Headroom+1)) {
		t.Fatal("oversized frame injected")
	}
	if !s.Inject(make([]byte, 2048-Headroom)) || !s.Inject([]byte("x")) || s.Inject([]byte("x")) {
		t.Fatal("fill ring of 2 not used exactly")
	}
	st, _ := s.Stats()
	if st.RxFillRingEmptyDescs != 2 || st.RxDropped != 1 {
		t.Fatalf("stats %+v", st)
	}
	checkClean(t, u)
}

func TestTxKnobs(t *testing.T) {
	u := NewUmem(16, 2048)
	s := open(t, u, 1, 8)
	s.Fill()
	var d [4]afxdp.Desc
	for range 4 {
		s.Inject([]byte("x"))
	}
	s.Receive(d[:])
	s.SetTxCapacity(3)
	boom := errors.New("boom")
	s.SetTransmitError(boom)
	if n, err := s.Transmit(d[:]); n != 3 || !errors.Is(err, boom) {
		t.Fatalf("transmit %d %v", n, err)
	}
	u.Free(d[3].Addr)
	if s.DiscardSent() != 3 || s.Complete() != 3 {
		t.Fatal("drain")
	}
	checkClean(t, u)
}

func TestCloseReclaimsEveryQueue(t *testing.T) {
	u := NewUmem(32, 2048)
	s := open(t, u, 1, 8)
	s.Fill()
	for range 3 {
		s.Inject([]byte("x"))
	}
	var d [2]afxdp.Desc
	s.Receive(d[:])   // one stays in RX
	s.Transmit(d[:1]) // one in TX
	s.Transmit(d[1:]) // one more, then to completion
	s.Sent()          // both in completion now
	s.Transmit(nil)   // nothing
	if err := s.Close(); err != nil || s.FD() != -1 || u.Socket(1, 0) != nil {
		t.Fatalf("close: %v", err)
	}
	if s.Inject([]byte("x")) || s.Receive(d[:]) != 0 || s.Fill() != 0 {
		t.Fatal("closed socket still works")
	}
	if _, err := s.Transmit(d[:]); !errors.Is(err, afxdp.ErrClosed) {
		t.Fatalf("transmit on closed socket: %v", err)
	}
	checkClean(t, u)
}

func TestOpenChecks(t *testing.T) {
	u := NewUmem(16, 2048)
	open(t, u, 1, 0)
	if _, err := u.Open(1, afxdp.SocketOptions{}); err == nil {
		t.Fatal("same ifindex and queue opened twice")
	}
	if _, err := u.Open(0, afxdp.SocketOptions{}); err == nil {
		t.Fatal("ifindex 0 accepted")
	}
	e := errors.New("no device")
	u.SetOpenError(e)
	if _, err := u.Open(2, afxdp.SocketOptions{}); !errors.Is(err, e) {
		t.Fatalf("open error knob: %v", err)
	}
	checkClean(t, u)
	if _, err := u.Open(2, afxdp.SocketOptions{}); !errors.Is(err, afxdp.ErrClosed) || u.Mem() != nil {
		t.Fatal("closed umem still opens")
	}
}

// TestFDReadableWhileRXHoldsFrames: poll(2) on FD behaves like an AF_XDP socket's.
func TestFDReadableWhileRXHoldsFrames(t *testing.T) {
	u := NewUmem(16, 2048)
	s := open(t, u, 1, 4)
	s.Fill()
	readable := func() bool {
		fds := []unix.PollFd{{Fd: int32(s.FD()), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if readable() {
		t.Fatal("readable while empty")
	}
	s.Inject([]byte("x"))
	s.Inject([]byte("y"))
	var d [2]afxdp.Desc
	if !readable() || s.Receive(d[:1]) != 1 || !readable() {
		t.Fatal("not readable while RX holds frames")
	}
	if s.Receive(d[1:]) != 1 || readable() {
		t.Fatal("readable after RX drained")
	}
	u.Free(d[0].Addr)
	u.Free(d[1].Addr)
	checkClean(t, u)
}
