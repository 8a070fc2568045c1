package afxdp

import (
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/internal/nettest"
)

// port is one veth of the shared-UMEM fixture: the host end a carries the
// AF_XDP socket (and a redirect-to-XSKMAP program), the peer b an AF_PACKET
// socket that injects and collects test frames.
type port struct {
	name   string // host end, deleted by this name
	a      int    // ifindex of the host end
	xsks   *ebpf.Map
	packet int // AF_PACKET fd on the peer
	sock   *Socket
}

// sharedNet is the package's namespace fixture on a nettest namespace.
type sharedNet struct {
	*testNet
	nsx *nettest.NS
}

// newSharedNet makes a namespace with nettest (unique name, deleted by that
// name) and wraps it in the package's fixture.
func newSharedNet(t *testing.T) *sharedNet {
	t.Helper()
	requireAFXDP(t)
	nettest.RequireRoot(t)
	ns := nettest.NewNS(t, "xsk")
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatalf("netns %s: %v", ns.Name, err)
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		t.Fatalf("netlink handle in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { nl.Close(); h.Close() })
	return &sharedNet{testNet: &testNet{tb: t, name: ns.Name, ns: h, nl: nl}, nsx: ns}
}

// addPort makes a veth in n, attaches the redirect program to its host end
// and opens a socket there on u.
func addPort(t *testing.T, n *sharedNet, u *Umem) *port {
	t.Helper()
	p := &port{name: nettest.Name(t, "xa"), packet: -1}
	peer := nettest.Name(t, "xb")
	n.nsx.AddVeth(t, p.name, peer)
	p.a = n.ifindex(p.name)
	p.xsks = n.attach(p.a)
	p.packet = n.packetSocket(n.ifindex(peer))
	var err error
	n.mustDo(func() error {
		p.sock, err = u.Open(p.a, SocketOptions{Copy: true})
		return err
	})
	if err := p.xsks.Put(uint32(0), uint32(p.sock.FD())); err != nil {
		t.Fatalf("xskmap put: %v", err)
	}
	p.sock.Fill()
	return p
}

// delete removes the port's veth: the kernel unbinds its socket.
func (p *port) delete(t *testing.T, n *sharedNet) {
	t.Helper()
	l, err := n.nl.LinkByName(p.name)
	if err != nil {
		t.Fatalf("link %s: %v", p.name, err)
	}
	if err := n.nl.LinkDel(l); err != nil {
		t.Fatalf("delete veth %s: %v", p.name, err)
	}
}

func (n *sharedNet) ifindex(name string) int {
	n.tb.Helper()
	l, err := n.nl.LinkByName(name)
	if err != nil {
		n.tb.Fatalf("link %s: %v", name, err)
	}
	return l.Attrs().Index
}

// forwardFrames sends count frames into in's peer, moves them from in's
// socket to out's (same UMEM: the descriptor moves) and checks that every
// one arrives unchanged at out's peer.
func forwardFrames(t *testing.T, u *Umem, in, out *port, count int) {
	t.Helper()
	sent := map[int][]byte{}
	for i := range count {
		f := testFrame(1000+i, 64+i)
		sent[1000+i] = f
		if _, err := unix.Write(in.packet, f); err != nil {
			t.Fatalf("af_packet send: %v", err)
		}
	}
	descs, fwd := make([]Desc, 64), make([]Desc, 0, 64)
	moved := 0
	for deadline := time.Now().Add(5 * time.Second); moved < count && time.Now().Before(deadline); {
		n := in.sock.Receive(descs)
		fwd = fwd[:0]
		for _, d := range descs[:n] {
			if _, ok := isTestFrame(u.Mem()[d.Addr : d.Addr+uint64(d.Len)]); ok {
				fwd = append(fwd, d)
			} else {
				u.Free(d.Addr)
			}
		}
		k, err := out.sock.Transmit(fwd)
		if err != nil {
			t.Fatalf("transmit: %v", err)
		}
		for _, d := range fwd[k:] {
			u.Free(d.Addr)
		}
		moved += k
		out.sock.Complete()
		in.sock.Fill()
	}
	if moved != count {
		st, _ := in.sock.Stats()
		t.Fatalf("forwarded %d of %d frames; ingress stats %+v", moved, count, st)
	}
	buf := make([]byte, 4096)
	got := 0
	for deadline := time.Now().Add(2 * time.Second); got < count && time.Now().Before(deadline); {
		m, _, err := unix.Recvfrom(out.packet, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("af_packet recv: %v", err)
		}
		if seq, ok := isTestFrame(buf[:m]); ok && string(sent[seq]) == string(buf[:m]) {
			delete(sent, seq)
			got++
		}
	}
	if got != count {
		t.Fatalf("%d of %d frames arrived unchanged at the egress peer", got, count)
	}
}

// TestSharedUmemSurvivesStaleRegistration: the socket that registered the
// UMEM (or the one the registration moved to) is unbound by the kernel when
// its device goes away, or closed; a later socket on the UMEM must still
// bind, through another bound socket or by registering the UMEM afresh, and
// pass frames to and from the UMEM's other sockets without a copy.
func TestSharedUmemSurvivesStaleRegistration(t *testing.T) {
	cases := []struct {
		name string
		// break runs against the first two ports and returns the ones still
		// bound, which the new ports must be able to forward to.
		breakIt func(t *testing.T, n *sharedNet, p0, p1 *port) []*port
	}{
		{"first device deleted", func(t *testing.T, n *sharedNet, p0, p1 *port) []*port {
			p0.delete(t, n)
			return []*port{p1}
		}},
		{"first device deleted and its socket closed", func(t *testing.T, n *sharedNet, p0, p1 *port) []*port {
			p0.delete(t, n)
			closeSock(t, p0)
			return []*port{p1}
		}},
		{"second device deleted, first socket closed", func(t *testing.T, n *sharedNet, p0, p1 *port) []*port {
			p1.delete(t, n) // the registration moves to an unbound socket
			closeSock(t, p0)
			return nil
		}},
		{"both devices deleted", func(t *testing.T, n *sharedNet, p0, p1 *port) []*port {
			p0.delete(t, n)
			p1.delete(t, n)
			return nil
		}},
		{"both sockets closed", func(t *testing.T, n *sharedNet, p0, p1 *port) []*port {
			closeSock(t, p0)
			closeSock(t, p1)
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const frames = 512
			n := newSharedNet(t)
			u, err := NewUmem(UmemConfig{NumFrames: frames, FillSize: 128, CompletionSize: 128, RxSize: 128, TxSize: 128})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { u.Close() })
			p0, p1 := addPort(t, n, u), addPort(t, n, u)
			forwardFrames(t, u, p0, p1, 8)
			alive := c.breakIt(t, n, p0, p1)
			p2 := addPort(t, n, u) // failed with EBADF while the registration was stale
			p3 := addPort(t, n, u)
			want := p2.sock // nothing bound was left: p2 registered the memory again
			if len(alive) > 0 {
				want = alive[0].sock // shared through the socket still bound
			}
			if u.reg != want {
				t.Errorf("later sockets share through the socket on ifindex %d, want %d", sockIfindex(u.reg), want.ifindex)
			}
			forwardFrames(t, u, p2, p3, 16)
			forwardFrames(t, u, p3, p2, 16)
			for _, o := range alive {
				forwardFrames(t, u, p2, o, 8)
				forwardFrames(t, u, o, p3, 8)
			}
			for _, p := range []*port{p0, p1, p2, p3} {
				closeSock(t, p)
			}
			if u.FreeFrames() != frames || u.BadFrees() != 0 {
				t.Fatalf("after closing every socket %d of %d frames free, %d bad frees", u.FreeFrames(), frames, u.BadFrees())
			}
			p4 := addPort(t, n, u) // the UMEM registers again from scratch
			p5 := addPort(t, n, u)
			forwardFrames(t, u, p4, p5, 8)
		})
	}
}

func closeSock(t *testing.T, p *port) {
	t.Helper()
	if err := p.sock.Close(); err != nil {
		t.Fatalf("close socket on %s: %v", p.name, err)
	}
}

func sockIfindex(s *Socket) int {
	if s == nil {
		return 0
	}
	return s.ifindex
}
