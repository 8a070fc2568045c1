package xdpprog

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

type fcase struct {
	name  string
	frame []byte
	want  uint32
}

// xvrFrames are frames xvr_fabric must redirect under the default config
// with tNodeIP and tPrefix.
func xvrFrames(t testing.TB) []fcase {
	return []fcase{
		{"MPLSoUDP to node", udpFrame(t, tNodeIP, PortMPLSoUDP), xdpRedirect},
		{"VXLAN to node", udpFrame(t, tNodeIP, PortVXLAN), xdpRedirect},
		{"UDP to pod in prefix", udpFrame(t, tPodIP, 53), xdpRedirect},
		{"TCP to pod in prefix", tcpFrame(t, tPodIP, 22), xdpRedirect},
		{"ARP request for pod", arpFrame(t, layers.ARPRequest, tPodIP), xdpRedirect},
		{"ARP reply for pod", arpFrame(t, layers.ARPReply, tPodIP), xdpRedirect},
		{"SNAT TCP 56001", tcpFrame(t, tNodeIP, 56001), xdpRedirect},
		{"SNAT TCP 56000 (low edge)", tcpFrame(t, tNodeIP, 56000), xdpRedirect},
		{"SNAT TCP 57023 (high edge)", tcpFrame(t, tNodeIP, 57023), xdpRedirect},
		{"SNAT UDP 57030", udpFrame(t, tNodeIP, 57030), xdpRedirect},
		{"SNAT UDP 58047 (high edge)", udpFrame(t, tNodeIP, 58047), xdpRedirect},
		{"echo reply id 57100", icmpFrame(t, tNodeIP, layers.ICMPv4TypeEchoReply, 57100), xdpRedirect},
	}
}

// hostFrames are frames that are the host's, whatever the sockets.
func hostFrames(t testing.TB) []fcase {
	return []fcase{
		{"MPLSoUDP to another IP", udpFrame(t, tOtherIP, PortMPLSoUDP), xdpPass},
		{"UDP 53 to node", udpFrame(t, tNodeIP, 53), xdpPass},
		{"TCP 22 to node", tcpFrame(t, tNodeIP, 22), xdpPass},
		{"TCP 55999 to node", tcpFrame(t, tNodeIP, 55999), xdpPass},
		{"TCP 57024 to node (UDP pool)", tcpFrame(t, tNodeIP, 57024), xdpPass},
		{"UDP 57023 to node (TCP pool)", udpFrame(t, tNodeIP, 57023), xdpPass},
		{"UDP 58048 to node", udpFrame(t, tNodeIP, 58048), xdpPass},
		{"echo request id 57100", icmpFrame(t, tNodeIP, layers.ICMPv4TypeEchoRequest, 57100), xdpPass},
		{"echo reply id 1000", icmpFrame(t, tNodeIP, layers.ICMPv4TypeEchoReply, 1000), xdpPass},
		{"UDP to pod outside prefix", udpFrame(t, tOutPodIP, 53), xdpPass},
		{"ARP for node", arpFrame(t, layers.ARPRequest, tNodeIP), xdpPass},
		{"ARP for pod outside prefix", arpFrame(t, layers.ARPRequest, tOutPodIP), xdpPass},
		{"IPv6 UDP 6635", ipv6Frame(t), xdpPass},
		{"VLAN-tagged MPLSoUDP to node", vlanFrame(t), xdpPass},
	}
}

// fabricUnderTest is a loaded Fabric with tPrefix and a socket on queue 0
// of the test veth's host side.
func fabricUnderTest(t *testing.T) (*Fabric, int) {
	t.Helper()
	pr := newPair(t)
	f := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP})
	a := idx(pr.a)
	if err := f.Register(a, 0, openXSK(t, a, 0)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := f.AddPrefix(tPrefix); err != nil {
		t.Fatalf("AddPrefix: %v", err)
	}
	return f, a
}

func TestFabricVerdicts(t *testing.T) {
	f, a := fabricUnderTest(t)
	for _, c := range append(xvrFrames(t), hostFrames(t)...) {
		wantFabric(t, f, a, c.name, c.frame, c.want)
	}
	if err := f.DeletePrefix(tPrefix); err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	if err := f.DeletePrefix(tPrefix); err != nil {
		t.Fatalf("second DeletePrefix: %v", err)
	}
	wantFabric(t, f, a, "UDP to pod after DeletePrefix", udpFrame(t, tPodIP, 53), xdpPass)
	wantFabric(t, f, a, "ARP for pod after DeletePrefix", arpFrame(t, layers.ARPRequest, tPodIP), xdpPass)
	wantFabric(t, f, a, "MPLSoUDP after DeletePrefix", udpFrame(t, tNodeIP, PortMPLSoUDP), xdpRedirect)
}

// A queue without a socket passes everything, xvr's frames included.
func TestFabricNoSocketPasses(t *testing.T) {
	f, a := fabricUnderTest(t)
	if err := f.Unregister(a, 0); err != nil {
		t.Fatalf("Unregister: %v", err)
	}
	for _, c := range xvrFrames(t) {
		wantFabric(t, f, a, c.name+" without socket", c.frame, xdpPass)
	}
}

// Another queue without a socket passes (bpf_redirect_map's fallback).
func TestFabricOtherQueuePasses(t *testing.T) {
	f, a := fabricUnderTest(t)
	frame := udpFrame(t, tNodeIP, PortMPLSoUDP)
	ctx := xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(a), RxQueueIndex: 1}
	ret, err := f.objs.XvrFabric.Run(&ebpf.RunOptions{Data: frame, Context: ctx})
	if err != nil || ret != xdpPass {
		t.Fatalf("queue 1 without socket: %d %v, want XDP_PASS", ret, err)
	}
}

// Every truncation of an xvr frame passes, and the kernel never reports an
// error for a frame the program runs on.
func TestFabricTruncated(t *testing.T) {
	f, a := fabricUnderTest(t)
	for _, c := range xvrFrames(t) {
		if v, _ := fverdict(t, f, a, c.frame); v != xdpRedirect {
			t.Fatalf("%s: whole frame verdict %d, want XDP_REDIRECT", c.name, v)
		}
		refused := 0
		for n := 0; n <= 60 && n < wholeLen(c.frame); n++ {
			v, err := fverdict(t, f, a, c.frame[:n])
			if err != nil {
				refused++ // the kernel refuses runts before the program runs
				continue
			}
			if v != xdpPass {
				t.Errorf("%s cut to %d bytes: verdict %d, want XDP_PASS", c.name, n, v)
			}
		}
		if refused > 14 {
			t.Errorf("%s: the kernel refused %d truncations, want at most the 14 runts", c.name, refused)
		}
	}
}

// wholeLen is the frame's length without Ethernet padding.
func wholeLen(frame []byte) int {
	if binary.BigEndian.Uint16(frame[12:]) == uint16(layers.EthernetTypeARP) {
		return 14 + 28
	}
	return 14 + int(binary.BigEndian.Uint16(frame[16:]))
}

// setU16 returns a copy of frame with a big-endian uint16 at off.
func setU16(frame []byte, off int, v uint16) []byte {
	out := append([]byte(nil), frame...)
	binary.BigEndian.PutUint16(out[off:], v)
	return out
}

func TestFabricMalformed(t *testing.T) {
	f, a := fabricUnderTest(t)
	overlay := udpFrame(t, tNodeIP, PortMPLSoUDP)
	pod := udpFrame(t, tPodIP, 53)
	const ipOff = 14
	for _, c := range []fcase{
		{"tot_len beyond frame", setU16(overlay, ipOff+2, uint16(len(overlay))), xdpPass},
		{"tot_len below header", setU16(overlay, ipOff+2, 19), xdpPass},
		{"tot_len without UDP header", setU16(overlay, ipOff+2, 24), xdpPass},
		{"pod: tot_len beyond frame", setU16(pod, ipOff+2, uint16(len(pod))), xdpPass},
		{"ihl 4", setByte(overlay, ipOff, 0x44), xdpPass},
		{"version 6 in an IPv4 ethertype", setByte(overlay, ipOff, 0x65), xdpPass},
		{"ihl 15 beyond frame", setByte(overlay, ipOff, 0x4f), xdpPass},
		{"ARP with plen 16", setByte(arpFrame(t, layers.ARPRequest, tPodIP), 14+5, 16), xdpPass},
		{"ARP op 3", setU16(arpFrame(t, layers.ARPRequest, tPodIP), 14+6, 3), xdpPass},
		{"ARP padded to 60 bytes", pad(arpFrame(t, layers.ARPRequest, tPodIP), 60), xdpRedirect},
		{"IPv4 with trailing padding", pad(overlay, len(overlay)+6), xdpRedirect},
	} {
		wantFabric(t, f, a, c.name, c.frame, c.want)
	}
}

func setByte(frame []byte, off int, v byte) []byte {
	out := append([]byte(nil), frame...)
	out[off] = v
	return out
}

func pad(frame []byte, n int) []byte {
	return append(append([]byte(nil), frame...), make([]byte, n-len(frame))...)
}

func fragFrame(t testing.TB, dst netip.Addr, dport uint16, flags layers.IPv4Flag, off uint16) []byte {
	t.Helper()
	ip := ip4L(dst, layers.IPProtocolUDP)
	ip.Flags, ip.FragOffset = flags, off
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(dport)}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ethL(layers.EthernetTypeIPv4), ip, udp, payload)
}

// Fragments to the node IP pass (documented); to a pod subnet they are
// xvr's. IP options move the UDP header and are followed.
func TestFabricFragmentsAndOptions(t *testing.T) {
	f, a := fabricUnderTest(t)
	ip := ip4L(tNodeIP, layers.IPProtocolUDP)
	ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	udp := &layers.UDP{SrcPort: 40000, DstPort: PortVXLAN}
	_ = udp.SetNetworkLayerForChecksum(ip)
	opts := serialize(t, ethL(layers.EthernetTypeIPv4), ip, udp, payload)
	if opts[14] != 0x46 {
		t.Fatalf("options frame has version/ihl %#x, want 0x46", opts[14])
	}
	for _, c := range []fcase{
		{"first fragment to node", fragFrame(t, tNodeIP, PortMPLSoUDP, layers.IPv4MoreFragments, 0), xdpPass},
		{"later fragment to node", fragFrame(t, tNodeIP, PortMPLSoUDP, 0, 100), xdpPass},
		{"DF to node", fragFrame(t, tNodeIP, PortMPLSoUDP, layers.IPv4DontFragment, 0), xdpRedirect},
		{"later fragment to pod", fragFrame(t, tPodIP, 53, 0, 100), xdpRedirect},
		{"VXLAN with IP options", opts, xdpRedirect},
	} {
		wantFabric(t, f, a, c.name, c.frame, c.want)
	}
}

func TestFabricConfig(t *testing.T) {
	pr := newPair(t)
	a := idx(pr.a)
	f := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP, TCPPorts: [2]uint16{1000, 1001}, UDPPorts: [2]uint16{2000, 2000}})
	if err := f.Register(a, 0, openXSK(t, a, 0)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	for _, c := range []fcase{
		{"TCP 1001", tcpFrame(t, tNodeIP, 1001), xdpRedirect},
		{"TCP 56001 (not the pool now)", tcpFrame(t, tNodeIP, 56001), xdpPass},
		{"UDP 2000", udpFrame(t, tNodeIP, 2000), xdpRedirect},
		{"UDP 2001", udpFrame(t, tNodeIP, 2001), xdpPass},
		{"echo reply id 2000", icmpFrame(t, tNodeIP, layers.ICMPv4TypeEchoReply, 2000), xdpRedirect},
	} {
		wantFabric(t, f, a, c.name, c.frame, c.want)
	}
	newIP := netip.MustParseAddr("198.18.0.9")
	if err := f.SetNodeIP(newIP); err != nil {
		t.Fatalf("SetNodeIP: %v", err)
	}
	wantFabric(t, f, a, "MPLSoUDP to old node IP", udpFrame(t, tNodeIP, PortMPLSoUDP), xdpPass)
	wantFabric(t, f, a, "MPLSoUDP to new node IP", udpFrame(t, newIP, PortMPLSoUDP), xdpRedirect)
	if err := f.SetNodeIP(netip.Addr{}); err != nil {
		t.Fatalf("SetNodeIP(zero): %v", err)
	}
	wantFabric(t, f, a, "MPLSoUDP, no node IP", udpFrame(t, newIP, PortMPLSoUDP), xdpPass)
	wantFabric(t, f, a, "TCP 1001, no node IP", tcpFrame(t, newIP, 1001), xdpPass)
}

func TestFabricConfigErrors(t *testing.T) {
	for _, cfg := range []FabricConfig{
		{NodeIP: netip.MustParseAddr("2001:db8::1")},
		{NodeIP: netip.IPv4Unspecified()},
		{NodeIP: tNodeIP, TCPPorts: [2]uint16{2, 1}},
		{NodeIP: tNodeIP, UDPPorts: [2]uint16{2, 1}},
	} {
		if f, err := LoadFabric(cfg); err == nil {
			_ = f.Close()
			t.Errorf("LoadFabric(%+v): no error", cfg)
		}
	}
	newPair(t)
	f := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP})
	if err := f.AddPrefix(netip.MustParsePrefix("2001:db8::/64")); err == nil {
		t.Error("AddPrefix IPv6: no error")
	}
	if err := f.AddPrefix(netip.MustParsePrefix("198.18.0.0/16")); err == nil {
		t.Error("AddPrefix holding the node IP: no error")
	}
	if err := f.AddPrefix(tPrefix); err != nil {
		t.Fatalf("AddPrefix: %v", err)
	}
	if err := f.SetNodeIP(tPodIP); err == nil {
		t.Error("SetNodeIP inside a prefix: no error")
	}
	if err := f.SetNodeIP(netip.MustParseAddr("2001:db8::1")); err == nil {
		t.Error("SetNodeIP IPv6: no error")
	}
}

// AddPrefix masks host bits; the node IP is judged before the prefixes.
func TestFabricPrefixMasking(t *testing.T) {
	f, a := fabricUnderTest(t)
	p := netip.MustParsePrefix("198.18.200.77/24")
	if err := f.AddPrefix(p); err != nil {
		t.Fatalf("AddPrefix: %v", err)
	}
	wantFabric(t, f, a, "pod in masked prefix", udpFrame(t, netip.MustParseAddr("198.18.200.1"), 53), xdpRedirect)
	if err := f.DeletePrefix(netip.MustParsePrefix("198.18.200.0/24")); err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	wantFabric(t, f, a, "pod after delete", udpFrame(t, netip.MustParseAddr("198.18.200.1"), 53), xdpPass)
}

func TestFabricRegisterErrors(t *testing.T) {
	pr := newPair(t)
	f := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP})
	a, b := idx(pr.a), idx(pr.b)
	for _, q := range []int{-1, MaxFabricQueues} {
		if err := f.Register(a, q, 0); err == nil {
			t.Errorf("Register queue %d: no error", q)
		}
		if err := f.Unregister(a, q); err == nil {
			t.Errorf("Unregister queue %d: no error", q)
		}
	}
	if err := f.Register(a, 0, -1); err == nil {
		t.Error("Register fd -1: no error")
	}
	xa := openXSK(t, a, 0)
	if err := f.Register(0, 0, xa); err == nil {
		t.Error("Register ifindex 0: no error")
	}
	if err := f.Register(a, 0, 1); err == nil {
		t.Error("Register stdout: no error")
	}
	// The failed Register fixed no device: b can still be attached.
	if err := f.Attach(b); err != nil {
		t.Fatalf("Attach b after a failed Register on a: %v", err)
	}
	if err := f.Register(a, 0, xa); err == nil || !strings.Contains(err.Error(), "serves") {
		t.Errorf("Register on a while attached to b = %v, want a device mismatch", err)
	}
	if err := f.Attach(a); err == nil {
		t.Error("Attach a while attached to b: no error")
	}
	if err := f.Unregister(a, 0); err != nil {
		t.Errorf("Unregister of a device not served: %v", err)
	}
	if err := f.Register(b, 1, openXSK(t, b, 1)); err != nil {
		t.Fatalf("Register b: %v", err)
	}
}

func TestFabricAttachDetach(t *testing.T) {
	pr := newPair(t)
	f := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP})
	a, b := idx(pr.a), idx(pr.b)
	if err := f.Attach(a); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	wantAttached(t, a, f.ID(), FabricProgName)
	if m := f.Mode(); m != ModeDriver {
		t.Fatalf("veth mode = %v, want driver", m)
	}
	if err := f.Attach(a); err != nil {
		t.Fatalf("second Attach: %v", err)
	}
	if err := f.Detach(); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	wantAttached(t, a, 0, "")
	if m := f.Mode(); m != ModeNone {
		t.Fatalf("mode after Detach = %v", m)
	}
	if err := f.Detach(); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
	// Detach freed the Fabric for another device.
	if err := f.Attach(b); err != nil {
		t.Fatalf("Attach b after Detach: %v", err)
	}
	wantAttached(t, b, f.ID(), FabricProgName)
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wantAttached(t, b, 0, "")
}

// Detach removes the sockets: re-attaching must not resurrect them.
func TestFabricDetachForgetsSockets(t *testing.T) {
	f, a := fabricUnderTest(t)
	if err := f.Attach(a); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if err := f.Detach(); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if err := f.Attach(a); err != nil {
		t.Fatalf("re-Attach: %v", err)
	}
	wantFabric(t, f, a, "MPLSoUDP after Detach", udpFrame(t, tNodeIP, PortMPLSoUDP), xdpPass)
}

func TestFabricAttachGenericFallback(t *testing.T) {
	pr := newPair(t)
	f := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP})
	if err := f.Attach(idx(pr.lo)); err != nil {
		t.Fatalf("Attach lo: %v", err)
	}
	if m := f.Mode(); m != ModeGeneric {
		t.Fatalf("lo mode = %v, want generic", m)
	}
}

func TestFabricReplacesStale(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags int
	}{
		{"driver", nl.XDP_FLAGS_DRV_MODE},
		{"generic", nl.XDP_FLAGS_SKB_MODE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := newPair(t)
			old := mustLoadFabric(t, FabricConfig{})
			netlinkAttach(t, pr.a, old.objs.XvrFabric, tc.flags)
			if err := old.Close(); err != nil {
				t.Fatalf("closing old run: %v", err)
			}
			wantAttached(t, idx(pr.a), old.ID(), FabricProgName)
			f := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP})
			if err := f.Attach(idx(pr.a)); err != nil {
				t.Fatalf("Attach over stale: %v", err)
			}
			wantAttached(t, idx(pr.a), f.ID(), FabricProgName)
		})
	}
}

// Neither a foreign program nor xvr_pod is ever replaced by xvr_fabric,
// and xvr_pod never replaces xvr_fabric.
func TestFabricRefusesForeign(t *testing.T) {
	pr := newPair(t)
	pod := mustLoad(t)
	netlinkAttach(t, pr.a, pod.objs.XvrPod, nl.XDP_FLAGS_DRV_MODE)
	netlinkAttach(t, pr.b, foreignProg(t), nl.XDP_FLAGS_DRV_MODE)
	f := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP})
	for _, d := range []int{idx(pr.a), idx(pr.b)} {
		var busy *BusyError
		if err := f.Attach(d); !errors.As(err, &busy) || busy.Why != "foreign program" {
			t.Fatalf("Attach over a foreign program on %d = %v, want *BusyError", d, err)
		}
		if err := f.Detach(); err != nil { // frees the Fabric for the next device
			t.Fatalf("Detach: %v", err)
		}
	}
	wantAttached(t, idx(pr.a), pod.ID(), ProgName)

	lo := idx(pr.lo)
	if err := f.Attach(lo); err != nil {
		t.Fatalf("Attach lo: %v", err)
	}
	var busy *BusyError
	if err := pod.Attach(lo); !errors.As(err, &busy) || busy.Name != FabricProgName {
		t.Fatalf("pod Attach over xvr_fabric = %v, want *BusyError naming it", err)
	}
}

func TestFabricRefusesLiveLink(t *testing.T) {
	pr := newPair(t)
	other := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP})
	if err := other.Attach(idx(pr.a)); err != nil {
		t.Fatalf("other Attach: %v", err)
	}
	f := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP})
	var busy *BusyError
	if err := f.Attach(idx(pr.a)); !errors.As(err, &busy) || !strings.Contains(busy.Why, "bpf_link") {
		t.Fatalf("Attach over a live link = %v, want *BusyError about a bpf_link", err)
	}
	wantAttached(t, idx(pr.a), other.ID(), FabricProgName)
}

// On a real veth in driver mode, with the peer in its own namespace: xvr's
// frames land on the AF_XDP sockets and never reach the host stack, the
// host's frames reach the stack and never the sockets, and ping and TCP
// between the peer and the node IP keep working.
func TestFabricDelivers(t *testing.T) {
	pr := newPair(t)
	peer, node := peerNS(t, pr)
	bIdx := setupPeer(t, pr, peer)
	a := idx(pr.a)
	f := mustLoadFabric(t, FabricConfig{NodeIP: tNodeIP})
	xs := []*testXSK{newXSK(t, a, 0), newXSK(t, a, 1)}
	for q, x := range xs {
		if err := f.Register(a, q, x.fd); err != nil {
			t.Fatalf("Register queue %d: %v", q, err)
		}
	}
	if err := f.AddPrefix(tPrefix); err != nil {
		t.Fatalf("AddPrefix: %v", err)
	}
	if err := f.Attach(a); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	tap := openTap(t, a)
	var raw int
	inNS(t, peer, node, func() { raw = packetSocket(t) })

	xvr := xvrFrames(t)
	for _, c := range xvr {
		sendRaw(t, raw, bIdx, c.frame)
	}
	if got := waitReceived(xs, uint32(len(xvr))); got != uint32(len(xvr)) {
		t.Fatalf("sockets received %d frames, want %d", got, len(xvr))
	}
	host := hostFrames(t)[:11] // the IPv4 and ARP ones
	for _, c := range host {
		sendRaw(t, raw, bIdx, c.frame)
	}
	time.Sleep(100 * time.Millisecond)
	if n := tapMarked(t, tap); n != len(host) {
		t.Errorf("host stack saw %d crafted frames, want the %d host ones", n, len(host))
	}
	hostTraffic(t, peer, node)
	if got := waitReceived(xs, 0); got != uint32(len(xvr)) {
		t.Errorf("sockets hold %d frames after host traffic, want %d", got, len(xvr))
	}
}

func packetSocket(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening packet socket: %v", err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd
}

// hostTraffic pings the node IP from the peer, with an identifier in the
// SNAT UDP pool, and moves 1 MiB over TCP to it.
func hostTraffic(t *testing.T, peer, node netns.NsHandle) {
	t.Helper()
	var icmpFD int
	inNS(t, peer, node, func() { icmpFD = rawICMP(t) })
	if !ping(t, icmpFD, 57100) {
		t.Error("ping from the peer to the node IP got no reply")
	}
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(tNodeIP, 2222).String())
	if err != nil {
		t.Fatalf("listening on the node IP: %v", err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go serveCount(ln, got)
	var conn net.Conn
	inNS(t, peer, node, func() {
		conn, err = net.DialTimeout("tcp4", ln.Addr().String(), 3*time.Second)
	})
	if err != nil {
		t.Fatalf("TCP from the peer to the node IP: %v", err)
	}
	defer conn.Close()
	sendCount(t, conn.(*net.TCPConn), got)
}

const tcpBytes = 1 << 20

// sendCount writes tcpBytes and checks the server counted them all.
func sendCount(t *testing.T, conn *net.TCPConn, got <-chan int64) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(make([]byte, tcpBytes)); err != nil {
		t.Fatalf("writing over TCP: %v", err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatalf("closing TCP write side: %v", err)
	}
	select {
	case n := <-got:
		if n != tcpBytes {
			t.Fatalf("node received %d bytes, want %d", n, tcpBytes)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node received nothing in 5s")
	}
}

// serveCount accepts one connection and reports how many bytes it read.
func serveCount(ln net.Listener, got chan<- int64) {
	c, err := ln.Accept()
	if err != nil {
		got <- -1
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	n, _ := io.Copy(io.Discard, c)
	got <- n
}

func rawICMP(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		t.Fatalf("opening raw ICMP socket: %v", err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	tv := unix.Timeval{Usec: 200000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatalf("setting receive timeout: %v", err)
	}
	return fd
}

// ping sends up to 5 echo requests with identifier id to the node IP and
// reports whether a matching echo reply came back.
func ping(t *testing.T, fd int, id uint16) bool {
	t.Helper()
	req := serialize(t, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: 1}, payload)
	sa := &unix.SockaddrInet4{Addr: tNodeIP.As4()}
	buf := make([]byte, 1500)
	for try := 0; try < 5; try++ {
		if err := unix.Sendto(fd, req, 0, sa); err != nil {
			t.Fatalf("sending echo request: %v", err)
		}
		for i := 0; i < 10; i++ {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				break // timeout: send again
			}
			if isEchoReply(buf[:n], id) {
				return true
			}
		}
	}
	return false
}

// isEchoReply reports whether an IPv4 packet is an echo reply with id.
func isEchoReply(pkt []byte, id uint16) bool {
	if len(pkt) < 20 {
		return false
	}
	hl := int(pkt[0]&0xf) * 4
	if len(pkt) < hl+8 {
		return false
	}
	icmp := pkt[hl:]
	return icmp[0] == layers.ICMPv4TypeEchoReply && binary.BigEndian.Uint16(icmp[4:]) == id
}

// BenchmarkFabricVerdict is xvr_fabric's cost per frame in the kernel
// (BPF_PROG_TEST_RUN, so nothing is delivered) for each class of frame.
func BenchmarkFabricVerdict(b *testing.B) {
	pr := newPair(b)
	a := idx(pr.a)
	f := mustLoadFabric(b, FabricConfig{NodeIP: tNodeIP})
	if err := f.Register(a, 0, openXSK(b, a, 0)); err != nil {
		b.Fatalf("Register: %v", err)
	}
	if err := f.AddPrefix(tPrefix); err != nil {
		b.Fatalf("AddPrefix: %v", err)
	}
	for _, c := range []fcase{
		{"overlay", udpFrame(b, tNodeIP, PortMPLSoUDP), xdpRedirect},
		{"prefix", udpFrame(b, tPodIP, 53), xdpRedirect},
		{"host_tcp", tcpFrame(b, tNodeIP, 22), xdpPass},
		{"host_other", udpFrame(b, tOtherIP, 53), xdpPass},
	} {
		b.Run(c.name, func(b *testing.B) { benchVerdict(b, f, a, c) })
	}
}

func benchVerdict(b *testing.B, f *Fabric, ifindex int, c fcase) {
	ctx := xdpMd{DataEnd: uint32(len(c.frame)), IngressIfindex: uint32(ifindex)}
	b.ReportAllocs()
	b.ResetTimer()
	ret, err := f.objs.XvrFabric.Run(&ebpf.RunOptions{Data: c.frame, Context: ctx, Repeat: uint32(b.N)})
	b.StopTimer()
	if err != nil || ret != c.want {
		b.Fatalf("run: %d %v, want %d", ret, err, c.want)
	}
}
