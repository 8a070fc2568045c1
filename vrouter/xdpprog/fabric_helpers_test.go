package xdpprog

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Test addresses, all in 198.18.0.0/15.
var (
	tNodeIP   = netip.MustParseAddr("198.18.0.1")
	tPeerIP   = netip.MustParseAddr("198.18.0.2")
	tOtherIP  = netip.MustParseAddr("198.18.0.3")
	tPrefix   = netip.MustParsePrefix("198.18.128.0/24")
	tPodIP    = netip.MustParseAddr("198.18.128.5")
	tOutPodIP = netip.MustParseAddr("198.18.129.5") // outside tPrefix
	// tMarkMAC is the source MAC of every crafted frame, so a tap can tell
	// them from the kernel's own traffic.
	tMarkMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	tDstMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
)

func mustLoadFabric(t testing.TB, cfg FabricConfig) *Fabric {
	t.Helper()
	f, err := LoadFabric(cfg)
	if err != nil {
		t.Fatalf("LoadFabric: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// fverdict runs xvr_fabric once on frame as if it arrived on queue 0 of
// ifindex. The kernel refuses frames shorter than an Ethernet header before
// the program runs; that error is returned, any other fails the test.
func fverdict(t testing.TB, f *Fabric, ifindex int, frame []byte) (uint32, error) {
	t.Helper()
	ctx := xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)}
	ret, err := f.objs.XvrFabric.Run(&ebpf.RunOptions{Data: frame, Context: ctx})
	if err != nil && len(frame) >= 14 {
		t.Fatalf("test run on a %d-byte frame: %v", len(frame), err)
	}
	return ret, err
}

func wantFabric(t *testing.T, f *Fabric, ifindex int, name string, frame []byte, want uint32) {
	t.Helper()
	if v, _ := fverdict(t, f, ifindex, frame); v != want {
		t.Errorf("%s: verdict %d, want %d", name, v, want)
	}
}

// serialize builds a frame from layers, lengths and checksums fixed.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serializing: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ethL(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: tMarkMAC, DstMAC: tDstMAC, EthernetType: typ}
}

func ip4L(dst netip.Addr, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto,
		SrcIP: tPeerIP.AsSlice(), DstIP: dst.AsSlice()}
}

// payload makes every IPv4 frame longer than 60 bytes, so each length up to
// 60 is a truncation of it.
var payload = gopacket.Payload(make([]byte, 32))

func udpFrame(t testing.TB, dst netip.Addr, dport uint16) []byte {
	t.Helper()
	ip := ip4L(dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(dport)}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ethL(layers.EthernetTypeIPv4), ip, udp, payload)
}

func tcpFrame(t testing.TB, dst netip.Addr, dport uint16) []byte {
	t.Helper()
	ip := ip4L(dst, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: 443, DstPort: layers.TCPPort(dport), ACK: true, Window: 1000}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ethL(layers.EthernetTypeIPv4), ip, tcp, payload)
}

func icmpFrame(t testing.TB, dst netip.Addr, typ uint8, id uint16) []byte {
	t.Helper()
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: 1}
	return serialize(t, ethL(layers.EthernetTypeIPv4), ip4L(dst, layers.IPProtocolICMPv4), icmp, payload)
}

func arpFrame(t testing.TB, op uint16, target netip.Addr) []byte {
	t.Helper()
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: tMarkMAC, SourceProtAddress: tPeerIP.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice()}
	return serialize(t, ethL(layers.EthernetTypeARP), arp)
}

func ipv6Frame(t testing.TB) []byte {
	t.Helper()
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
		SrcIP: net.ParseIP("2001:db8::2"), DstIP: net.ParseIP("2001:db8::1")}
	udp := &layers.UDP{SrcPort: 40000, DstPort: PortMPLSoUDP}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ethL(layers.EthernetTypeIPv6), ip, udp, payload)
}

func vlanFrame(t testing.TB) []byte {
	t.Helper()
	ip := ip4L(tNodeIP, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: 40000, DstPort: PortMPLSoUDP}
	_ = udp.SetNetworkLayerForChecksum(ip)
	tag := &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4}
	return serialize(t, ethL(layers.EthernetTypeDot1Q), tag, ip, udp, payload)
}

// peerNS makes a second named network namespace for the veth peer and
// moves pr.b into it with peerIP; the calling thread stays in (or returns
// to) the node namespace. The namespace, and with it the veth pair, is
// deleted by name on cleanup.
func peerNS(t *testing.T, pr *pair) (peer, node netns.NsHandle) {
	t.Helper()
	node, err := netns.Get()
	if err != nil {
		t.Fatalf("getting node netns: %v", err)
	}
	name := fmt.Sprintf("xvrxdpp-%d-%d", os.Getpid(), nsCounter.Add(1))
	peer, err = netns.NewNamed(name)
	if err != nil {
		t.Fatalf("creating netns %s: %v", name, err)
	}
	quietIPv6(t)
	if err := netns.Set(node); err != nil {
		t.Fatalf("returning to node netns: %v", err)
	}
	a := pr.a.Attrs().Name
	t.Cleanup(func() {
		// The pair first, by its exact name: a namespace dies
		// asynchronously, and the pair with it would race newPair's own
		// cleanup of a.
		if l, err := netlink.LinkByName(a); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("deleting veth %s: %v", a, err)
			}
		}
		peer.Close()
		node.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("deleting netns %s: %v", name, err)
		}
	})
	if err := netlink.LinkSetNsFd(pr.b, int(peer)); err != nil {
		t.Fatalf("moving %s to %s: %v", pr.b.Attrs().Name, name, err)
	}
	return peer, node
}

// setupPeer gives the node side tNodeIP and the peer side tPeerIP and
// returns the peer device's ifindex inside the peer namespace.
func setupPeer(t *testing.T, pr *pair, peer netns.NsHandle) int {
	t.Helper()
	addAddr(t, nil, pr.a, tNodeIP)
	h, err := netlink.NewHandleAt(peer)
	if err != nil {
		t.Fatalf("netlink handle in peer netns: %v", err)
	}
	defer h.Close()
	b, err := h.LinkByName(pr.b.Attrs().Name)
	if err != nil {
		t.Fatalf("looking up peer device: %v", err)
	}
	addAddr(t, h, b, tPeerIP)
	for _, l := range []netlink.Link{b, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo", Index: 1}}} {
		if err := h.LinkSetUp(l); err != nil {
			t.Fatalf("setting %s up in peer netns: %v", l.Attrs().Name, err)
		}
	}
	return b.Attrs().Index
}

func addAddr(t *testing.T, h *netlink.Handle, l netlink.Link, ip netip.Addr) {
	t.Helper()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(24, 32)}}
	var err error
	if h == nil {
		err = netlink.AddrAdd(l, addr)
	} else {
		err = h.AddrAdd(l, addr)
	}
	if err != nil {
		t.Fatalf("adding %v to %s: %v", ip, l.Attrs().Name, err)
	}
}

// inNS runs fn with the (locked) calling thread in ns, then returns it to
// back. Sockets fn opens stay in ns.
func inNS(t *testing.T, ns, back netns.NsHandle, fn func()) {
	t.Helper()
	if err := netns.Set(ns); err != nil {
		t.Fatalf("entering netns: %v", err)
	}
	fn()
	if err := netns.Set(back); err != nil {
		t.Fatalf("returning to netns: %v", err)
	}
}

// sendRaw writes frames out of device ifindex through packet socket fd.
func sendRaw(t *testing.T, fd, ifindex int, frames ...[]byte) {
	t.Helper()
	sa := &unix.SockaddrLinklayer{Ifindex: ifindex}
	for i, fr := range frames {
		if err := unix.Sendto(fd, fr, 0, sa); err != nil {
			t.Fatalf("sending frame %d: %v", i, err)
		}
	}
}

// tapMarked drains the tap and counts incoming frames from tMarkMAC.
func tapMarked(t *testing.T, fd int) int {
	t.Helper()
	buf := make([]byte, 2048)
	n := 0
	for i := 0; i < 1000; i++ {
		m, from, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EAGAIN {
			return n
		}
		if err != nil {
			t.Fatalf("reading tap: %v", err)
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if ok && ll.Pkttype != unix.PACKET_OUTGOING && m >= 12 && net.HardwareAddr(buf[6:12]).String() == tMarkMAC.String() {
			n++
		}
	}
	return n
}
