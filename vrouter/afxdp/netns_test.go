package afxdp

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// This file holds the root-only test fixture: a private network namespace
// with veth pairs, a redirect-to-XSKMAP XDP program and AF_PACKET peers.

var nameCounter atomic.Uint32

// uniqueName returns "<prefix><pid>n<counter>", at most 15 bytes for short prefixes.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%dn%d", prefix, os.Getpid(), nameCounter.Add(1))
}

// requireAFXDP skips unless we are root on a kernel with AF_XDP sockets.
func requireAFXDP(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root for network namespaces and AF_XDP")
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if errors.Is(err, unix.EAFNOSUPPORT) {
		tb.Skip("kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)")
	}
	if err != nil {
		tb.Fatalf("socket af_xdp: %v", err)
	}
	unix.Close(fd)
}

// testNet is one network namespace made for a test and deleted after it.
type testNet struct {
	tb   testing.TB
	name string
	ns   netns.NsHandle
	nl   *netlink.Handle
}

func newTestNet(tb testing.TB) *testNet {
	tb.Helper()
	requireAFXDP(tb)
	n := &testNet{tb: tb, name: uniqueName("xvrxsk")}
	if err := n.create(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		n.nl.Close()
		n.ns.Close()
		if err := netns.DeleteNamed(n.name); err != nil {
			tb.Errorf("delete netns %s: %v", n.name, err)
		}
	})
	return n
}

// create makes the named namespace on a locked thread and returns the
// thread to its original namespace; a thread that cannot go back stays
// locked so that it dies with its goroutine.
func (n *testNet) create() error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get netns: %w", err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(n.name)
	if err != nil {
		return fmt.Errorf("new netns %s: %w", n.name, err) // thread stays locked
	}
	if err := netns.Set(orig); err != nil {
		ns.Close()
		return fmt.Errorf("back to original netns: %w", err)
	}
	runtime.UnlockOSThread()
	n.ns = ns
	if n.nl, err = netlink.NewHandleAt(ns); err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	return nil
}

// do runs fn on a locked thread inside the namespace.
func (n *testNet) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.ns); err != nil {
		return fmt.Errorf("enter netns %s: %w", n.name, err) // thread stays locked
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("leave netns %s: %w", n.name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// mustDo is do that fails the test.
func (n *testNet) mustDo(fn func() error) {
	n.tb.Helper()
	if err := n.do(fn); err != nil {
		n.tb.Fatal(err)
	}
}

// veth creates an up veth pair (host end a, peer end b) with IPv6 off so
// that no autoconfiguration frames disturb the test, and returns ifindexes.
func (n *testNet) veth() (a, b int) {
	n.tb.Helper()
	an, bn := uniqueName("xa"), uniqueName("xb")
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: an, MTU: 1500}, PeerName: bn}
	if err := n.nl.LinkAdd(v); err != nil {
		n.tb.Fatalf("add veth %s: %v", an, err)
	}
	n.tb.Cleanup(func() {
		if l, err := n.nl.LinkByName(an); err == nil {
			if err := n.nl.LinkDel(l); err != nil {
				n.tb.Errorf("delete veth %s: %v", an, err)
			}
		}
	})
	n.mustDo(func() error { return errors.Join(disableIPv6(an), disableIPv6(bn)) })
	return n.up(an), n.up(bn)
}

func disableIPv6(dev string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+dev+"/disable_ipv6", []byte("1"), 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil // kernel without IPv6
	}
	return err
}

func (n *testNet) up(name string) int {
	n.tb.Helper()
	l, err := n.nl.LinkByName(name)
	if err != nil {
		n.tb.Fatalf("link %s: %v", name, err)
	}
	if err := n.nl.LinkSetUp(l); err != nil {
		n.tb.Fatalf("link %s up: %v", name, err)
	}
	return l.Attrs().Index
}

// attach puts an XDP program on ifindex (driver mode) that redirects every
// frame to the XSKMAP entry of its RX queue and returns the map.
func (n *testNet) attach(ifindex int) *ebpf.Map {
	n.tb.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 4})
	if err != nil {
		n.tb.Fatalf("create xskmap: %v", err)
	}
	n.tb.Cleanup(func() { m.Close() })
	prog := n.loadXDP(asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 16, asm.Word), // ctx->rx_queue_index
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Imm(asm.R3, 2), // XDP_PASS when the slot is empty
		asm.FnRedirectMap.Call(),
		asm.Return(),
	})
	n.attachProg(prog, ifindex)
	return m
}

// loadXDP loads an XDP program that the test closes at cleanup.
func (n *testNet) loadXDP(insns asm.Instructions) *ebpf.Program {
	n.tb.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		n.tb.Fatalf("load xdp program: %v", err)
	}
	n.tb.Cleanup(func() { prog.Close() })
	return prog
}

func (n *testNet) attachProg(prog *ebpf.Program, ifindex int) {
	n.tb.Helper()
	n.mustDo(func() error {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		if err != nil {
			return fmt.Errorf("attach xdp to %d: %w", ifindex, err)
		}
		n.tb.Cleanup(func() { l.Close() })
		return nil
	})
}

// open opens an AF_XDP socket inside the namespace and registers it in m.
func (n *testNet) open(u *Umem, ifindex int, m *ebpf.Map) *Socket {
	n.tb.Helper()
	var s *Socket
	n.mustDo(func() (err error) {
		s, err = u.Open(ifindex, SocketOptions{Copy: true})
		return err
	})
	if m != nil {
		if err := m.Put(uint32(0), uint32(s.FD())); err != nil {
			n.tb.Fatalf("xskmap put: %v", err)
		}
	}
	return s
}

const testEtherType = 0x88b5 // IEEE local experimental

// packetSocket opens an AF_PACKET socket bound to ifindex for testEtherType.
func (n *testNet) packetSocket(ifindex int) int {
	n.tb.Helper()
	var fd int
	n.mustDo(func() (err error) {
		proto := int(htons(testEtherType))
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return fmt.Errorf("socket af_packet: %w", err)
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(testEtherType), Ifindex: ifindex})
	})
	n.tb.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
		n.tb.Fatalf("so_rcvbufforce: %v", err)
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		n.tb.Fatalf("so_rcvtimeo: %v", err)
	}
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// testFrame builds a broadcast frame of size bytes carrying seq.
func testFrame(seq, size int) []byte {
	f := make([]byte, size)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
	copy(f[14:], "xvrafxdp")
	f[22], f[23], f[24], f[25] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
	for i := 26; i < size; i++ {
		f[i] = byte(seq + i)
	}
	return f
}

// isTestFrame reports whether f is one of ours and returns its seq.
func isTestFrame(f []byte) (int, bool) {
	if len(f) < 26 || f[12] != 0x88 || f[13] != 0xb5 || string(f[14:22]) != "xvrafxdp" {
		return 0, false
	}
	return int(f[22])<<24 | int(f[23])<<16 | int(f[24])<<8 | int(f[25]), true
}
