package dataplane

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/packet"
)

// remoteSnapshot is overlaySnapshot with a fabric MTU; kind 0 makes the
// next hop to 198.18.10.9 a fabric-forwarding one.
func remoteSnapshot(t *testing.T, kind encap.Kind) *Snapshot {
	k := kind
	if k == 0 {
		k = encap.VXLAN
	}
	s := overlaySnapshot(t, k)
	s.Fabric.MTU = 1500
	if kind == 0 {
		s.NextHops[5].Type, s.NextHops[5].Kind, s.NextHops[5].Label = NHFabric, 0, 0
	}
	return s
}

// sentRemote is the shortcut's rewrite of f to a remote d (bpf/pod.c's
// tunnel_at, or its fabric case): TTL - 1, then the next hop's MACs or
// encap's outer headers over the inner frame VXLAN carries.
func sentRemote(t *testing.T, f []byte, d ShortcutDest, router [6]byte) []byte {
	t.Helper()
	nh := d.Remote
	g := shortcutRewrite(f, ShortcutDest{MAC: nh.Outer.DstMAC}, nh.Outer.SrcMAC)
	if nh.Type == NHFabric {
		return g
	}
	if nh.Kind == encap.VXLAN {
		copy(g, nh.InnerMAC[:])
		copy(g[6:], router[:])
	}
	buf := make([]byte, 64+len(g))
	copy(buf[64:], g)
	off, n, err := encap.Encap(buf, 64, len(g), nh.Kind, nh.Label, &nh.Outer, encap.FlowEntropy(g[packet.EthLen:]))
	if err != nil {
		t.Fatal(err)
	}
	return buf[off : off+n]
}

func remoteOnly(dests []ShortcutDest) []ShortcutDest {
	var out []ShortcutDest
	for _, d := range dests {
		if d.Remote != nil {
			out = append(out, d)
		}
	}
	return out
}

// Every remote delivery Shortcuts offers is what toTunnel or toFabric does.
func TestShortcutsToOtherNodesMatchPipeline(t *testing.T) {
	for _, kind := range []encap.Kind{encap.MPLSoUDP, encap.VXLAN, 0} {
		s := remoteSnapshot(t, kind)
		remote := remoteOnly(s.Shortcuts().Dests)
		if len(remote) != 1 || remote[0].Addr != ipRemote || remote[0].VRF != 1 || remote[0].Vif != 0 || remote[0].MTU != 1500 {
			t.Fatalf("kind %v: remote dests %+v, want 198.18.10.9 in VRF 1 out of vif 0", kind, remote)
		}
		for _, f := range [][]byte{udpFrame(t, ipA, ipRemote, 64, 100), pingFrame(t, ipRemote)} {
			want := sentRemote(t, f, remote[0], s.MAC)
			mem, descs, v := processWith(s, 1, f)
			if v[0] != (Verdict{Vif: 0}) {
				t.Fatalf("kind %v: pipeline verdict %+v", kind, v[0])
			}
			if got := frameAt(mem, descs[0]); !bytes.Equal(got, want) {
				t.Fatalf("kind %v:\npipeline %x\nshortcut %x", kind, got, want)
			}
		}
	}
}

// Every label Shortcuts lists decapsulates, in fabricIn, to what the
// fabric's shortcut delivers to each local destination of its VRF: the
// inner IPv4 packet behind the pod's MAC and the vRouter's.
func TestShortcutsFromFabricMatchPipeline(t *testing.T) {
	checked := 0
	for _, kind := range []encap.Kind{encap.MPLSoUDP, encap.VXLAN} {
		s := remoteSnapshot(t, kind)
		set := s.Shortcuts()
		for _, l := range set.Labels {
			if l.Kind != kind {
				continue
			}
			for _, d := range set.Dests {
				if d.Remote != nil || d.VRF != l.VRF {
					continue
				}
				inner := udpFrame(t, ipRemote, d.Addr, 63, 18)
				o := encap.Outer{SrcMAC: remoteMAC, DstMAC: fabricMAC, Src: remoteIP, Dst: nodeIP}
				buf := make([]byte, 64+len(inner))
				copy(buf[64:], inner)
				off, n, err := encap.Encap(buf, 64, len(inner), kind, l.Label, &o, 7)
				if err != nil {
					t.Fatal(err)
				}
				want := append([]byte(nil), inner...)
				copy(want, d.MAC[:])
				copy(want[6:], s.MAC[:])
				mem, descs, v := processWith(s, s.Fabric.Vif, buf[off:off+n])
				if v[0] != (Verdict{Vif: d.Vif}) {
					t.Fatalf("%v label %d to %v: verdict %+v, want vif %d", kind, l.Label, d.Addr, v[0], d.Vif)
				}
				if got := frameAt(mem, descs[0]); !bytes.Equal(got, want) {
					t.Fatalf("%v label %d:\npipeline %x\nshortcut %x", kind, l.Label, got, want)
				}
				checked++
			}
		}
	}
	if checked != 5 {
		t.Fatalf("checked %d deliveries, want 5 (A and B by label 1001 and by VNI 77, C by label 1002)", checked)
	}
}

// The local pods of a fabric-forwarded VN are Native: what arrives for them
// without a tunnel fabricNative delivers with TTL - 1, as toVif.
func TestShortcutsNativeMatchPipeline(t *testing.T) {
	s := remoteSnapshot(t, 0)
	s.FabricVRFs = []uint32{1}
	native := 0
	for _, d := range s.Shortcuts().Dests {
		if !d.Native {
			continue
		}
		native++
		f := udpFrame(t, [4]byte{198, 18, 30, 1}, d.Addr, 64, 18)
		want := shortcutRewrite(f, d, s.MAC)
		mem, descs, v := processWith(s, s.Fabric.Vif, f)
		if v[0] != (Verdict{Vif: d.Vif}) {
			t.Fatalf("to %v: verdict %+v, want vif %d", d.Addr, v[0], d.Vif)
		}
		if got := frameAt(mem, descs[0]); !bytes.Equal(got, want) {
			t.Fatalf("to %v:\npipeline %x\nshortcut %x", d.Addr, got, want)
		}
	}
	if native != 2 {
		t.Fatalf("%d native destinations, want 2 (A and B of VRF 1)", native)
	}
}

func TestShortcutsLeaveOutRemote(t *testing.T) {
	cases := map[string]struct {
		kind   encap.Kind
		edit   func(*Snapshot)
		remote int
		labels int
	}{
		"mplsoudp":        {encap.MPLSoUDP, func(*Snapshot) {}, 1, 3},
		"vxlan":           {encap.VXLAN, func(*Snapshot) {}, 1, 3},
		"no underlay mac": {encap.VXLAN, func(s *Snapshot) { s.NextHops[5].Outer.DstMAC = [6]byte{} }, 0, 3},
		"label too low":   {encap.MPLSoUDP, func(s *Snapshot) { s.NextHops[5].Label = 15 }, 0, 3},
		"vni too big":     {encap.VXLAN, func(s *Snapshot) { s.NextHops[5].Label = encap.MaxVNI + 1 }, 0, 3},
		"snat next hop":   {encap.VXLAN, func(s *Snapshot) { s.NextHops[5].Type = NHSNAT }, 0, 3},
		"no fabric":       {encap.VXLAN, func(s *Snapshot) { s.Fabric.Valid = false }, 0, 0},
		"not a /32": {encap.VXLAN, func(s *Snapshot) {
			if _, err := s.VRFs[1].Table.Delete(netip.MustParsePrefix("198.18.10.9/32")); err != nil {
				t.Fatal(err)
			}
			if err := s.VRFs[1].Table.Insert(netip.MustParsePrefix("198.18.10.8/30"), 5); err != nil {
				t.Fatal(err)
			}
		}, 0, 3},
		"policed vrf": {encap.VXLAN, func(s *Snapshot) {
			for i := range s.Vifs[1:] {
				s.Vifs[1+i].Policy = &policy.Compiled{}
			}
		}, 0, 0},
	}
	for name, c := range cases {
		s := remoteSnapshot(t, c.kind)
		c.edit(s)
		set := s.Shortcuts()
		if r := remoteOnly(set.Dests); len(r) != c.remote || len(set.Labels) != c.labels {
			t.Errorf("%s: %d remote dests, %d labels (%+v), want %d %d", name, len(r), len(set.Labels), set.Labels, c.remote, c.labels)
		}
	}
}
