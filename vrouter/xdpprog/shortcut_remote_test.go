package xdpprog

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xvr-project/xvr/encap"
)

// The remote half of the shortcut: pod frames leave encapsulated (or
// natively) for the fabric NIC exactly as package encap would write them,
// and xvr_fabric delivers what arrives for a local pod.

var (
	fabricMAC = [6]byte{0x02, 0, 0, 0, 0xfa, 0x01}
	nextMAC   = [6]byte{0x02, 0, 0, 0, 0xfa, 0x02}
	remoteMAC = [6]byte{0x02, 0, 0, 0, 0xee, 0x01} // the remote pod's, VXLAN's inner destination
	nodeIP    = [4]byte{198, 18, 0, 1}
	remoteIP  = [4]byte{198, 18, 0, 2}
	farMPLS   = [4]byte{198, 18, 6, 1}
	farVXLAN  = [4]byte{198, 18, 6, 2}
	farNative = [4]byte{198, 18, 6, 3}
)

// remoteDests are three pods on another node, one per way to reach it, out
// of fabric (an ifindex).
func remoteDests(fabric int) []ShortcutDest {
	out := func(addr [4]byte, k ShortcutKind, label uint32, df bool, ttl uint8) ShortcutDest {
		d := ShortcutDest{VRF: 3, Addr: addr, Kind: k, Ifindex: fabric, MAC: nextMAC, SrcMAC: fabricMAC, MTU: 1500}
		if k != ShortFabric {
			d.Src, d.Dst, d.Label, d.DF, d.TTL, d.InnerMAC = nodeIP, remoteIP, label, df, ttl, remoteMAC
		}
		return d
	}
	return []ShortcutDest{out(farMPLS, ShortMPLSoUDP, 1003, false, 0), out(farVXLAN, ShortVXLAN, 77, true, 9),
		out(farNative, ShortFabric, 0, false, 0)}
}

// sent is what the forwarder sends for f to d (toTunnel, toFabric): TTL - 1,
// then the MACs or encap.Encap's outer headers.
func sent(t testing.TB, f []byte, d ShortcutDest) []byte {
	t.Helper()
	g := append([]byte(nil), f...)
	g[14+8]--
	binary.BigEndian.PutUint16(g[14+10:], ipChecksum(g[14:34]))
	kind := encap.MPLSoUDP
	switch d.Kind {
	case ShortFabric:
		copy(g, d.MAC[:])
		copy(g[6:], d.SrcMAC[:])
		return g
	case ShortVXLAN:
		kind = encap.VXLAN
		copy(g, d.InnerMAC[:])
		copy(g[6:], routerMAC[:])
	}
	buf := make([]byte, 64+len(g))
	copy(buf[64:], g)
	o := encap.Outer{SrcMAC: d.SrcMAC, DstMAC: d.MAC, Src: d.Src, Dst: d.Dst, TTL: d.TTL, DF: d.DF}
	off, n, err := encap.Encap(buf, 64, len(g), kind, d.Label, &o, encap.FlowEntropy(g[14:]))
	if err != nil {
		t.Fatalf("Encap: %v", err)
	}
	return buf[off : off+n]
}

// tcpShortFrame is shortFrame carrying TCP (ports in the flow entropy).
func tcpShortFrame(dst [4]byte) []byte {
	f := shortFrame(dst, 64)
	f[14+9] = 6
	fixSum(f)
	return f
}

func remoteSetup(t *testing.T) (p *Program, in, fabric int) {
	t.Helper()
	p, _, _, in, fabric = shortcutSetup(t)
	dests := append(remoteDests(fabric), ShortcutDest{VRF: 3, Addr: podIP2, Ifindex: fabric, MAC: podMAC2, SrcMAC: routerMAC})
	if err := p.SetShortcuts([]ShortcutPort{{Ifindex: in, VRF: 3, RouterMAC: routerMAC}}, dests, nil); err != nil {
		t.Fatalf("SetShortcuts: %v", err)
	}
	return p, in, fabric
}

func TestShortcutToOtherNodes(t *testing.T) {
	p, in, fabric := remoteSetup(t)
	n := 0
	for _, d := range remoteDests(fabric) {
		for _, f := range [][]byte{shortFrame(d.Addr, 64), tcpShortFrame(d.Addr), shortFrame(d.Addr, 2)} {
			ret, got := run(t, p, in, f)
			if want := sent(t, f, d); ret != xdpRedirect || !bytes.Equal(got, want) {
				t.Fatalf("kind %d: verdict %d\n got %x\nwant %x", d.Kind, ret, got, want)
			}
			n++
		}
	}
	if pk, _, err := p.ShortcutCount(in); err != nil || pk != uint64(n) {
		t.Fatalf("ShortcutCount = %d %v, want %d", pk, err, n)
	}
}

// A packet too big for the fabric once encapsulated is the forwarder's
// (it answers "fragmentation needed").
func TestShortcutToOtherNodesMTU(t *testing.T) {
	p, in, fabric := remoteSetup(t)
	for _, d := range remoteDests(fabric) {
		over := 1500 - int(encap.Overhead(map[ShortcutKind]encap.Kind{ShortMPLSoUDP: encap.MPLSoUDP, ShortVXLAN: encap.VXLAN}[d.Kind]))
		for _, size := range []int{over, over + 1} {
			f := make([]byte, 14+size)
			copy(f, shortFrame(d.Addr, 64))
			binary.BigEndian.PutUint16(f[14+2:], uint16(size))
			fixSum(f)
			ret, got := run(t, p, in, f)
			taken := !bytes.Equal(got, f)
			if ret != xdpRedirect || taken != (size == over) {
				t.Errorf("kind %d, %d-byte packet: verdict %d, shortcut taken %v", d.Kind, size, ret, taken)
			}
		}
	}
}

func TestShortcutDestErrors(t *testing.T) {
	p, in, fabric := remoteSetup(t)
	for name, d := range map[string]ShortcutDest{
		"mpls label 15":   {Kind: ShortMPLSoUDP, Ifindex: fabric, Label: 15},
		"mpls label 2^20": {Kind: ShortMPLSoUDP, Ifindex: fabric, Label: 1 << 20},
		"vni 2^24":        {Kind: ShortVXLAN, Ifindex: fabric, Label: 1 << 24},
		"unknown kind":    {Kind: 9, Ifindex: fabric},
	} {
		if err := p.SetShortcuts(nil, []ShortcutDest{d}, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for name, l := range map[string]ShortcutLabel{
		"mpls label 15": {Kind: ShortMPLSoUDP, Label: 15},
		"vni 2^24":      {Kind: ShortVXLAN, Label: 1 << 24},
		"local":         {Kind: ShortLocal, Label: 100},
	} {
		if err := p.SetShortcuts(nil, nil, []ShortcutLabel{l}); err == nil {
			t.Errorf("label %s: no error", name)
		}
	}
	if len(p.short.dests) != 4 || p.short.ports[in] == (podShortPort{}) {
		t.Fatalf("a refused set changed the maps: %d dests", len(p.short.dests))
	}
}

// fabricShortcutSetup loads xvr_fabric sharing p's shortcut maps, with the
// node IP, a fabric-forwarded prefix holding podIP2 and pod 2 (behind out)
// reachable by label 1003, VNI 77 and natively.
func fabricShortcutSetup(t testing.TB) (p *Program, f *Fabric, out int) {
	t.Helper()
	p, _, _, _, out = shortcutSetup(t)
	f = mustLoadFabric(t, FabricConfig{NodeIP: netip.AddrFrom4(nodeIP), Shortcut: p})
	if err := f.AddPrefix(netip.MustParsePrefix("198.18.5.0/24")); err != nil {
		t.Fatalf("AddPrefix: %v", err)
	}
	pod2 := ShortcutDest{VRF: 3, Addr: podIP2, Ifindex: out, MAC: podMAC2, SrcMAC: routerMAC}
	native := pod2
	native.VRF = NativeVRF
	labels := []ShortcutLabel{{Kind: ShortMPLSoUDP, Label: 1003, VRF: 3, RouterMAC: routerMAC},
		{Kind: ShortVXLAN, Label: 77, VRF: 3, RouterMAC: routerMAC}}
	if err := p.SetShortcuts(nil, []ShortcutDest{pod2, native}, labels); err != nil {
		t.Fatalf("SetShortcuts: %v", err)
	}
	return p, f, out
}

// runFabric runs xvr_fabric on frame as received on queue 0.
func runFabric(t testing.TB, f *Fabric, frame []byte) (uint32, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256),
		Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: 1}}
	ret, err := f.objs.XvrFabric.Run(opts)
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret, opts.DataOut
}

// arriving is what a remote vRouter sends to pod 2 of this node: pod 1's
// frame in MPLSoUDP (label 1003), VXLAN (VNI 77) or natively.
func arriving(t testing.TB, kind ShortcutKind) []byte {
	d := ShortcutDest{Kind: kind, MAC: fabricMAC, SrcMAC: nextMAC, Src: remoteIP, Dst: nodeIP, Label: 1003, InnerMAC: routerMAC}
	if kind == ShortVXLAN {
		d.Label = 77
	}
	return sent(t, tcpShortFrame(podIP2), d)
}

// delivered is what the forwarder's fabricIn (fabricNative) hands pod 2 for
// the frame sent as pod 1's f: the sender's TTL (natively one less again),
// pod 2's MAC, the vRouter's.
func delivered(f []byte, native bool) []byte {
	g := append([]byte(nil), f...)
	g[14+8]--
	if native {
		g[14+8]--
	}
	binary.BigEndian.PutUint16(g[14+10:], ipChecksum(g[14:34]))
	copy(g, podMAC2[:])
	copy(g[6:], routerMAC[:])
	return g
}

func TestFabricShortcutDelivers(t *testing.T) {
	p, f, _ := fabricShortcutSetup(t)
	for _, k := range []ShortcutKind{ShortMPLSoUDP, ShortVXLAN, ShortFabric} {
		ret, got := runFabric(t, f, arriving(t, k))
		if want := delivered(tcpShortFrame(podIP2), k == ShortFabric); ret != xdpRedirect || !bytes.Equal(got, want) {
			t.Fatalf("kind %d: verdict %d\n got %x\nwant %x", k, ret, got, want)
		}
	}
	// VXLAN from an xvr that knows no MAC of the pod: the inner frame is to
	// and from its own vRouter MAC, which overlayL2 accepts too.
	g := arriving(t, ShortVXLAN)
	copy(g[50:], remoteMAC[:])
	copy(g[56:], remoteMAC[:])
	if ret, got := runFabric(t, f, g); ret != xdpRedirect || !bytes.Equal(got, delivered(tcpShortFrame(podIP2), false)) {
		t.Fatalf("VXLAN to the sender's own MAC: verdict %d, frame %x", ret, got)
	}
	if pk, _, err := p.FabricShortcutCount(); err != nil || pk != 4 {
		t.Fatalf("FabricShortcutCount = %d %v, want 4", pk, err)
	}
}

// What the forwarder must judge passes on (to the socket; none here, so
// XDP_PASS) untouched.
func TestFabricShortcutDeclines(t *testing.T) {
	p, f, _ := fabricShortcutSetup(t)
	mpls := func(fn func([]byte)) []byte { g := arriving(t, ShortMPLSoUDP); fn(g); return g }
	vxlan := func(fn func([]byte)) []byte { g := arriving(t, ShortVXLAN); fn(g); return g }
	native := func(fn func([]byte)) []byte { g := arriving(t, ShortFabric); fn(g); return g }
	cases := map[string][]byte{
		"udp checksum":       mpls(func(g []byte) { g[40] = 1 }),
		"unknown label":      mpls(func(g []byte) { g[42] ^= 0x10 }),
		"no bottom of stack": mpls(func(g []byte) { g[44] &^= 1 }),
		"trailing byte":      append(arriving(t, ShortMPLSoUDP), 0),
		"outer options":      mpls(func(g []byte) { g[14] = 0x46; fixSum(g) }),
		"inner checksum":     mpls(func(g []byte) { g[46+10] ^= 0xff }),
		"inner fragment":     mpls(func(g []byte) { g[46+6] = 0x20; binary.BigEndian.PutUint16(g[46+10:], ipChecksum(g[46:66])) }),
		"unknown vni":        vxlan(func(g []byte) { g[48] ^= 1 }),
		"vxlan no I flag":    vxlan(func(g []byte) { g[42] = 0 }),
		"inner other mac":    vxlan(func(g []byte) { g[50+5] ^= 1 }),
		"inner arp":          vxlan(func(g []byte) { g[50+12], g[50+13] = 0x08, 0x06 }),
		"native ttl 1":       native(func(g []byte) { g[14+8] = 1; fixSum(g) }),
		"native elsewhere":   native(func(g []byte) { g[14+19] = 9; fixSum(g) }),
	}
	for name, g := range cases {
		before := append([]byte(nil), g...)
		if ret, got := runFabric(t, f, g); ret != xdpPass || !bytes.Equal(got, before) {
			t.Errorf("%s: verdict %d, frame changed %v; want XDP_PASS untouched", name, ret, !bytes.Equal(got, before))
		}
	}
	if pk, _, err := p.FabricShortcutCount(); err != nil || pk != 0 {
		t.Fatalf("FabricShortcutCount = %d %v, want 0", pk, err)
	}
}

// A fabric program loaded without the pod program's maps has no shortcut.
func TestFabricWithoutShortcut(t *testing.T) {
	fabricShortcutSetup(t)
	f := mustLoadFabric(t, FabricConfig{NodeIP: netip.AddrFrom4(nodeIP)})
	g := arriving(t, ShortMPLSoUDP)
	if ret, got := runFabric(t, f, g); ret != xdpPass || !bytes.Equal(got, arriving(t, ShortMPLSoUDP)) {
		t.Fatalf("verdict %d: want XDP_PASS untouched", ret)
	}
}

// FuzzFabricShortcut: whatever arrives, xvr_fabric either leaves it
// untouched (for the socket; none here, so XDP_PASS) or delivers exactly
// what the forwarder would: package encap's decapsulation (fabricIn) with
// pod 2's MAC and the vRouter's, or (natively) TTL - 1 and the same MACs.
func FuzzFabricShortcut(f *testing.F) {
	for _, k := range []ShortcutKind{ShortMPLSoUDP, ShortVXLAN, ShortFabric} {
		f.Add(arriving(f, k))
	}
	_, fab, _ := fabricShortcutSetup(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 1500 {
			return // the kernel refuses runs on less than an Ethernet header
		}
		in := append([]byte(nil), frame...)
		ret, got := runFabric(t, fab, frame)
		if ret != xdpRedirect {
			if ret != xdpPass || !bytes.Equal(got, in) {
				t.Fatalf("verdict %d, frame changed %v: want XDP_PASS untouched", ret, !bytes.Equal(got, in))
			}
			return
		}
		if want := forwarderDelivers(in); !bytes.Equal(got, want) {
			t.Fatalf("delivered\n got %x\nwant %x", got, want)
		}
	})
}

// forwarderDelivers is what the pipeline hands pod 2 (behind label 1003,
// VNI 77 and natively at 198.18.5.2) for frame from the fabric, or nil.
func forwarderDelivers(frame []byte) []byte {
	buf := append([]byte(nil), frame...)
	var d encap.Decapped
	if err := encap.Decap(buf, 0, len(buf), &d); err == nil {
		if d.Dst != nodeIP || (d.Kind == encap.MPLSoUDP && d.Label != 1003) || (d.Kind == encap.VXLAN && d.Label != 77) {
			return nil
		}
		if d.InnerIsEthernet { // overlayL2: IPv4 to the vRouter's MAC or to the sender's own unicast one
			in := buf[d.InnerOff : d.InnerOff+d.InnerLen]
			dst, src := [6]byte(in[0:6]), [6]byte(in[6:12])
			if binary.BigEndian.Uint16(in[12:]) != 0x0800 || (dst != routerMAC && (dst != src || dst[0]&1 != 0)) {
				return nil
			}
		}
		off, n := encap.InnerEthernet(buf, &d, podMAC2, routerMAC)
		if n < 34 || [4]byte(buf[off+30:off+34]) != podIP2 || !validIPv4(buf[off+14:off+n]) {
			return nil
		}
		return buf[off : off+n]
	}
	if len(buf) < 34 || [4]byte(buf[30:34]) != podIP2 || buf[14+8] <= 1 || !validIPv4(buf[14:]) {
		return nil
	}
	buf[14+8]--
	binary.BigEndian.PutUint16(buf[14+10:], ipChecksum(buf[14:34]))
	copy(buf, podMAC2[:])
	copy(buf[6:], routerMAC[:])
	return buf
}

// validIPv4 is what the pipeline's parseIPv4 accepts of b: version 4, a
// header of 20 bytes or more within a total length that fits b, a
// checksum that verifies.
func validIPv4(b []byte) bool {
	if len(b) < 20 || b[0]>>4 != 4 {
		return false
	}
	hl, tot := int(b[0]&0x0f)*4, int(binary.BigEndian.Uint16(b[2:]))
	if hl < 20 || tot < hl || tot > len(b) {
		return false
	}
	var sum uint32
	for i := 0; i < hl; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}
