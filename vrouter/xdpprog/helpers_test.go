package xdpprog

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var nsCounter atomic.Int32

// pair is a veth pair inside a network namespace made for one test.
type pair struct {
	a, b netlink.Link // a is the "host side" the tests attach to
	lo   netlink.Link
	ns   string
}

// newPair locks the test goroutine to its OS thread, moves the thread into a
// fresh named network namespace holding a veth pair with two queues a side,
// and deletes both by exact name on cleanup. The thread is never unlocked,
// so the runtime throws it away when the test ends, whatever happened.
func newPair(t testing.TB) *pair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and BPF")
	}
	runtime.LockOSThread()
	n := nsCounter.Add(1)
	pid := os.Getpid()
	pr := &pair{ns: fmt.Sprintf("xvrxdp-%d-%d", pid, n)}
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("getting netns: %v", err)
	}
	ns, err := netns.NewNamed(pr.ns)
	if err != nil {
		orig.Close()
		t.Fatalf("creating netns %s: %v", pr.ns, err)
	}
	t.Cleanup(func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("leaving netns %s: %v", pr.ns, err)
		}
		ns.Close()
		orig.Close()
		if err := netns.DeleteNamed(pr.ns); err != nil {
			t.Errorf("deleting netns %s: %v", pr.ns, err)
		}
	})
	quietIPv6(t)
	pr.addVeth(t, fmt.Sprintf("xp%da%d", pid, n), fmt.Sprintf("xp%db%d", pid, n))
	return pr
}

// quietIPv6 turns IPv6 off for new devices of the current namespace, so no
// router solicitation or MLD report mixes with the frames a test counts.
func quietIPv6(t testing.TB) {
	t.Helper()
	const knob = "/proc/sys/net/ipv6/conf/default/disable_ipv6"
	err := os.WriteFile(knob, []byte("1"), 0)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("disabling IPv6: %v", err)
	}
}

func (pr *pair) addVeth(t testing.TB, a, b string) {
	t.Helper()
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: a, NumRxQueues: 2, NumTxQueues: 2},
		PeerName:  b,
	}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("adding veth %s: %v", a, err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(a); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("deleting veth %s: %v", a, err)
			}
		}
	})
	pr.a = mustLinkUp(t, a)
	pr.b = mustLinkUp(t, b)
	pr.lo = mustLinkUp(t, "lo")
}

func mustLinkUp(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("looking up %s: %v", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatalf("setting %s up: %v", name, err)
	}
	return l
}

func idx(l netlink.Link) int { return l.Attrs().Index }

func mustLoad(t testing.TB) *Program {
	t.Helper()
	p, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func wantAttached(t testing.TB, ifindex int, wantID uint32, wantName string) {
	t.Helper()
	id, name, err := Attached(ifindex)
	if err != nil {
		t.Fatalf("Attached(%d): %v", ifindex, err)
	}
	if id != wantID || name != wantName {
		t.Fatalf("Attached(%d) = %d %q, want %d %q", ifindex, id, name, wantID, wantName)
	}
}

// netlinkAttach attaches prog the old way, as a crashed older run or
// another tool would have left it, and detaches it on cleanup.
func netlinkAttach(t testing.TB, dev netlink.Link, prog *ebpf.Program, flags int) {
	t.Helper()
	if err := netlink.LinkSetXdpFdWithFlags(dev, prog.FD(), flags); err != nil {
		t.Fatalf("netlink attach to %s: %v", dev.Attrs().Name, err)
	}
	t.Cleanup(func() { _ = netlink.LinkSetXdpFdWithFlags(dev, -1, flags) })
}

// foreignProg is a trivial XDP_PASS program that is not xvr's.
func foreignProg(t testing.TB) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "foreign_pass",
		Type:    ebpf.XDP,
		License: "MIT",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, int32(xdpPass)),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("loading foreign program: %v", err)
	}
	t.Cleanup(func() { _ = prog.Close() })
	return prog
}

// XDP actions, from linux/bpf.h.
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

// xdpMd mirrors struct xdp_md for BPF_PROG_TEST_RUN.
type xdpMd struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

// verdict runs xvr_pod once on a 64-byte frame as if it arrived on
// (ifindex, queue) and returns the XDP action.
func verdict(t testing.TB, p *Program, ifindex, queue int) uint32 {
	t.Helper()
	frame := make([]byte, 64)
	copy(frame, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00})
	ctx := xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex), RxQueueIndex: uint32(queue)}
	ret, err := p.objs.XvrPod.Run(&ebpf.RunOptions{Data: frame, Context: ctx})
	if err != nil {
		t.Fatalf("test run on ifindex %d queue %d: %v", ifindex, queue, err)
	}
	return ret
}

// testXSK is a minimal AF_XDP socket (copy mode, tiny UMEM and rings)
// bound to one (ifindex, queue): enough to sit in an XSKMAP and to count
// the frames the kernel delivers to it.
type testXSK struct {
	fd      int
	off     unix.XDPMmapOffsets
	fill    []byte
	rx      []byte
	nFrames uint32
}

const xskFrames, xskFrameSize = 16, 4096

// openXSK opens a testXSK bound to (ifindex, queue), every UMEM frame posted
// to its fill ring; it is closed on cleanup.
func openXSK(t testing.TB, ifindex, queue int) int {
	t.Helper()
	return newXSK(t, ifindex, queue).fd
}

func newXSK(t testing.TB, ifindex, queue int) *testXSK {
	t.Helper()
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if errors.Is(err, unix.EAFNOSUPPORT) {
		t.Skip("kernel lacks AF_XDP (CONFIG_XDP_SOCKETS)")
	}
	if err != nil {
		t.Fatalf("opening AF_XDP socket: %v", err)
	}
	x := &testXSK{fd: fd, nFrames: xskFrames}
	umem := mustMmap(t, -1, 0, xskFrames*xskFrameSize, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	t.Cleanup(func() { _ = unix.Close(fd) })
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&umem[0]))), Len: uint64(len(umem)), Size: xskFrameSize}
	mustSockopt(t, unix.SYS_SETSOCKOPT, fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg))
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, xskFrames); err != nil {
			t.Fatalf("sizing ring %d: %v", opt, err)
		}
	}
	x.mapRings(t)
	sa := &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("binding AF_XDP socket to ifindex %d queue %d: %v", ifindex, queue, err)
	}
	return x
}

// mapRings maps the fill and rx rings and posts every UMEM frame to fill.
func (x *testXSK) mapRings(t testing.TB) {
	t.Helper()
	size := unsafe.Sizeof(x.off)
	mustSockopt(t, unix.SYS_GETSOCKOPT, x.fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&x.off), uintptr(unsafe.Pointer(&size)))
	x.fill = mustMmap(t, x.fd, unix.XDP_UMEM_PGOFF_FILL_RING, int(x.off.Fr.Desc)+xskFrames*8, unix.MAP_SHARED|unix.MAP_POPULATE)
	x.rx = mustMmap(t, x.fd, unix.XDP_PGOFF_RX_RING, int(x.off.Rx.Desc)+xskFrames*16, unix.MAP_SHARED|unix.MAP_POPULATE)
	for i := 0; i < xskFrames; i++ {
		*(*uint64)(unsafe.Pointer(&x.fill[int(x.off.Fr.Desc)+i*8])) = uint64(i * xskFrameSize)
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&x.fill[x.off.Fr.Producer])), xskFrames)
}

// received is how many frames the kernel has put on the rx ring.
func (x *testXSK) received() uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&x.rx[x.off.Rx.Producer])))
}

func mustMmap(t testing.TB, fd int, off int64, size, flags int) []byte {
	t.Helper()
	b, err := unix.Mmap(fd, off, size, unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		t.Fatalf("mmap fd %d offset %#x: %v", fd, off, err)
	}
	t.Cleanup(func() { _ = unix.Munmap(b) })
	return b
}

// mustSockopt is setsockopt/getsockopt(SOL_XDP) for the struct options x/sys
// has no helper for.
func mustSockopt(t testing.TB, call uintptr, fd, opt int, val unsafe.Pointer, size uintptr) {
	t.Helper()
	_, _, errno := unix.Syscall6(call, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(val), size, 0)
	if errno != 0 {
		t.Fatalf("sockopt %d on fd %d: %v", opt, fd, errno)
	}
}

// sendFrames writes n raw Ethernet frames out of dev; its veth peer receives them.
func sendFrames(t testing.TB, dev, n int) {
	t.Helper()
	const ethP = 0x88b5 // IEEE local experimental: nothing in the stack wants it
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening packet socket: %v", err)
	}
	defer unix.Close(fd)
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 2, ethP >> 8, ethP & 0xff})
	sa := &unix.SockaddrLinklayer{Ifindex: dev, Protocol: htons(ethP)}
	for i := 0; i < n; i++ {
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			t.Fatalf("sending frame %d: %v", i, err)
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openTap opens a packet socket on dev: it sees only what XDP passed to the
// stack.
func openTap(t testing.TB, dev int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatalf("opening tap: %v", err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: dev, Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		t.Fatalf("binding tap: %v", err)
	}
	return fd
}

// tapCount drains the tap and counts incoming frames.
func tapCount(t testing.TB, fd int) int {
	t.Helper()
	buf := make([]byte, 2048)
	n := 0
	for i := 0; i < 1000; i++ {
		_, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) {
			return n
		}
		if err != nil {
			t.Fatalf("reading tap: %v", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype != unix.PACKET_OUTGOING {
			n++
		}
	}
	return n
}
