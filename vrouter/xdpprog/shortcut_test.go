package xdpprog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/internal/ethtool"
)

var (
	routerMAC = [6]byte{0x02, 0x78, 0x76, 0x72, 0, 1}
	podMAC1   = [6]byte{0x02, 0, 0, 0, 0, 0x11}
	podMAC2   = [6]byte{0x02, 0, 0, 0, 0, 0x22}
	podIP1    = [4]byte{198, 18, 5, 1}
	podIP2    = [4]byte{198, 18, 5, 2}
)

// shortFrame is a 64-byte Ethernet/IPv4/UDP frame from pod 1 to dst, as a
// pod sends it to the vRouter.
func shortFrame(dst [4]byte, ttl byte) []byte {
	f := make([]byte, 64)
	copy(f, routerMAC[:])
	copy(f[6:], podMAC1[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 50)
	ip[8], ip[9] = ttl, 17
	copy(ip[12:], podIP1[:])
	copy(ip[16:], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	binary.BigEndian.PutUint16(f[34:], 1024)
	binary.BigEndian.PutUint16(f[36:], 9)
	binary.BigEndian.PutUint16(f[38:], 30)
	return f
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		if i == 10 {
			continue
		}
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// shortcutSetup attaches xvr_pod to the host ends of two veth pairs, gives
// the first a socket on queue 0 and installs the shortcut from the first to
// pod 2 behind the second.
// pod1 is the first pair's pod end, pod2 the second's.
func shortcutSetup(t testing.TB) (p *Program, pod1, pod2 netlink.Link, in, out int) {
	t.Helper()
	pr := newPair(t)
	n := nsCounter.Add(1)
	second := &pair{}
	second.addVeth(t, fmt.Sprintf("xs%da%d", os.Getpid(), n), fmt.Sprintf("xs%db%d", os.Getpid(), n))
	p = mustLoad(t)
	in, out = idx(pr.a), idx(second.a)
	for _, d := range []int{in, out} {
		if err := p.Attach(d); err != nil {
			t.Fatalf("Attach %d: %v", d, err)
		}
	}
	if err := p.Register(in, 0, openXSK(t, in, 0)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	err := p.SetShortcuts([]ShortcutPort{{Ifindex: in, VRF: 3, RouterMAC: routerMAC}},
		[]ShortcutDest{{VRF: 3, Addr: podIP2, Ifindex: out, MAC: podMAC2}, {VRF: 3, Addr: podIP1, Ifindex: in, MAC: podMAC1}}, nil)
	if err != nil {
		t.Fatalf("SetShortcuts: %v", err)
	}
	return p, pr.b, second.b, in, out
}

// run runs xvr_pod on frame as received on (ifindex, 0).
func run(t *testing.T, p *Program, ifindex int, frame []byte) (uint32, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256),
		Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)}}
	ret, err := p.objs.XvrPod.Run(opts)
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret, opts.DataOut
}

func TestShortcutRewrites(t *testing.T) {
	p, _, _, in, _ := shortcutSetup(t)
	f := shortFrame(podIP2, 64)
	ret, got := run(t, p, in, f)
	if ret != xdpRedirect {
		t.Fatalf("verdict %d, want XDP_REDIRECT", ret)
	}
	want := append([]byte(nil), f...)
	copy(want, podMAC2[:])
	copy(want[6:], routerMAC[:])
	want[14+8] = 63
	binary.BigEndian.PutUint16(want[14+10:], ipChecksum(want[14:34]))
	if !bytes.Equal(got, want) {
		t.Fatalf("frame\n got %x\nwant %x", got, want)
	}
	if pk, b, err := p.ShortcutCount(in); err != nil || pk != 1 || b != uint64(len(f)) {
		t.Fatalf("ShortcutCount = %d %d %v, want 1 %d", pk, b, err, len(f))
	}
}

// Every frame the forwarder must judge leaves the program untouched, for
// the socket, and is not counted.
func TestShortcutDeclines(t *testing.T) {
	p, _, _, in, out := shortcutSetup(t)
	otherMAC := func(f []byte) { f[5] ^= 1 }
	cases := map[string]struct {
		ifindex int
		frame   []byte
	}{
		"ttl 1":            {in, shortFrame(podIP2, 1)},
		"unknown address":  {in, shortFrame([4]byte{198, 18, 5, 9}, 64)},
		"hairpin":          {in, shortFrame(podIP1, 64)},
		"no shortcut port": {out, shortFrame(podIP2, 64)},
		"other mac":        {in, edit(shortFrame(podIP2, 64), otherMAC)},
		"arp":              {in, edit(shortFrame(podIP2, 64), func(f []byte) { f[12], f[13] = 0x08, 0x06 })},
		"bad checksum":     {in, edit(shortFrame(podIP2, 64), func(f []byte) { f[14+10] ^= 0xff })},
		"options":          {in, edit(shortFrame(podIP2, 64), func(f []byte) { f[14] = 0x46; fixSum(f) })},
		"fragment":         {in, edit(shortFrame(podIP2, 64), func(f []byte) { f[14+6] = 0x20; fixSum(f) })},
		"total length":     {in, edit(shortFrame(podIP2, 64), func(f []byte) { f[14+2], f[14+3] = 0x01, 0; fixSum(f) })},
		"short length":     {in, edit(shortFrame(podIP2, 64), func(f []byte) { f[14+2], f[14+3] = 0, 19; fixSum(f) })},
		"truncated":        {in, shortFrame(podIP2, 64)[:33]},
	}
	if err := p.Register(out, 0, openXSK(t, out, 0)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	for name, c := range cases {
		ret, got := run(t, p, c.ifindex, c.frame)
		if ret != xdpRedirect || !bytes.Equal(got, c.frame) {
			t.Errorf("%s: verdict %d, frame changed %v; want XDP_REDIRECT to the socket, untouched", name, ret, !bytes.Equal(got, c.frame))
		}
	}
	if pk, _, err := p.ShortcutCount(in); err != nil || pk != 0 {
		t.Fatalf("ShortcutCount = %d %v, want 0", pk, err)
	}
}

func edit(f []byte, fn func([]byte)) []byte { fn(f); return f }

func fixSum(f []byte) { binary.BigEndian.PutUint16(f[14+10:], ipChecksum(f[14:34])) }

// SetShortcuts replaces the whole set; a detached device takes its entries
// with it.
func TestShortcutUpdates(t *testing.T) {
	p, _, _, in, out := shortcutSetup(t)
	f := shortFrame(podIP2, 64)
	if err := p.SetShortcuts([]ShortcutPort{{Ifindex: in, VRF: 3, RouterMAC: routerMAC}}, nil, nil); err != nil {
		t.Fatalf("SetShortcuts: %v", err)
	}
	if _, got := run(t, p, in, f); !bytes.Equal(got, f) {
		t.Fatal("destination removed: frame still rewritten")
	}
	err := p.SetShortcuts([]ShortcutPort{{Ifindex: in, VRF: 3, RouterMAC: routerMAC}},
		[]ShortcutDest{{VRF: 3, Addr: podIP2, Ifindex: out, MAC: podMAC2}}, nil)
	if err != nil {
		t.Fatalf("SetShortcuts: %v", err)
	}
	if ret, got := run(t, p, in, f); ret != xdpRedirect || got[0] != podMAC2[0] || got[5] != podMAC2[5] {
		t.Fatalf("destination back: verdict %d frame %x", ret, got[:12])
	}
	if err := p.Detach(out); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if _, got := run(t, p, in, f); !bytes.Equal(got, f) {
		t.Fatal("destination detached: frame still rewritten")
	}
	if len(p.short.dests) != 0 || len(p.short.tx) != 0 || len(p.short.ports) != 1 {
		t.Fatalf("after Detach: %d dests %d devices %d ports, want 0 0 1", len(p.short.dests), len(p.short.tx), len(p.short.ports))
	}
	for _, bad := range [][2]int{{0, out}, {in, 0}} {
		err := p.SetShortcuts([]ShortcutPort{{Ifindex: bad[0]}}, []ShortcutDest{{Ifindex: bad[1]}}, nil)
		if err == nil {
			t.Errorf("SetShortcuts with ifindex %v: no error", bad)
		}
	}
}

// Frames sent by pod 1 arrive at pod 2's end of the other veth rewritten,
// without a socket in between: the kernel redirected them.
func TestShortcutDelivers(t *testing.T) {
	p, pod1, pod2, in, _ := shortcutSetup(t)
	// A veth takes redirected frames only with NAPI on its receiving end:
	// GRO gives it one.
	if err := ethtool.GROOn(pod2.Attrs().Name); err != nil {
		t.Fatalf("GRO on: %v", err)
	}
	tap := openTap(t, idx(pod2))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	defer unix.Close(fd)
	const n = 8
	f := shortFrame(podIP2, 64)
	for i := 0; i < n; i++ {
		if err := unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: idx(pod1), Protocol: htons(0x0800)}); err != nil {
			t.Fatalf("sending: %v", err)
		}
	}
	got := 0
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(2 * time.Second); got < n && time.Now().Before(deadline); {
		m, from, err := unix.Recvfrom(tap, buf, 0)
		if err == unix.EAGAIN {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("reading pod 2: %v", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING || m < 34 || buf[12] != 0x08 {
			continue
		}
		if !bytes.Equal(buf[:6], podMAC2[:]) || !bytes.Equal(buf[6:12], routerMAC[:]) || buf[14+8] != 63 {
			t.Fatalf("pod 2 got %x, want it rewritten", buf[:34])
		}
		got++
	}
	if got != n {
		t.Fatalf("pod 2 received %d frames, want %d", got, n)
	}
	if pk, _, err := p.ShortcutCount(in); err != nil || pk != n {
		t.Fatalf("ShortcutCount = %d %v, want %d", pk, err, n)
	}
}

// A veth end is a redirect target only while its peer has NAPI; GRO turned
// on before the peer is up does not count (the kernel's order, which
// xvr-cni follows).
func TestRedirectTarget(t *testing.T) {
	pr := newPair(t)
	a, b := idx(pr.a), pr.b.Attrs().Name
	want := func(when string, w bool) {
		t.Helper()
		got, err := RedirectTarget(a)
		if err != nil || got != w {
			t.Fatalf("%s: RedirectTarget = %v %v, want %v", when, got, err, w)
		}
	}
	want("peer without NAPI", false)
	if err := ethtool.GROOn(b); err != nil {
		t.Fatal(err)
	}
	want("peer with GRO on while up", true)
	if _, err := RedirectTarget(999999); err == nil {
		t.Fatal("RedirectTarget of a missing device: no error")
	}
}
