package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/packet"
)

// Every delivery Shortcuts offers is what the pipeline does with the frame:
// the same vif, and the frame rewritten as the XDP shortcut rewrites it.
func TestShortcutsMatchPipeline(t *testing.T) {
	s := testSnapshot(t)
	set := s.Shortcuts()
	vifs, dests := set.Vifs, set.Dests
	if !slices.Equal(vifs, []uint32{1, 2, 3}) || len(dests) != 3 {
		t.Fatalf("Shortcuts = %v %v, want vifs 1 2 3 and their three pods", vifs, dests)
	}
	checked := 0
	for _, in := range vifs {
		for _, d := range dests {
			if d.VRF != s.Vifs[in].VRF || d.Vif == in {
				continue
			}
			f := udpFrame(t, s.Vifs[in].IP, d.Addr, 64, 18)
			want := shortcutRewrite(f, d, s.MAC)
			mem, descs, v := process(t, in, f)
			if v[0].Reason != Forward || v[0].Vif != d.Vif {
				t.Fatalf("vif %d to %v: pipeline verdict %+v, want forward to vif %d", in, d.Addr, v[0], d.Vif)
			}
			if got := frameAt(mem, descs[0]); !bytes.Equal(got, want) {
				t.Fatalf("vif %d to %v:\npipeline %x\nshortcut %x", in, d.Addr, got, want)
			}
			checked++
		}
	}
	if checked != 2 {
		t.Fatalf("checked %d deliveries, want 2 (A to B, B to A)", checked)
	}
}

// shortcutRewrite is bpf/pod.c's rewrite: the pod's MAC, the vRouter's as
// source, TTL - 1 with the RFC 1624 checksum update.
func shortcutRewrite(f []byte, d ShortcutDest, router [6]byte) []byte {
	g := append([]byte(nil), f...)
	copy(g, d.MAC[:])
	copy(g[6:], router[:])
	ip := g[packet.EthLen:]
	sum := uint32(binary.BigEndian.Uint16(ip[10:])) + 0x0100
	if sum >= 0xffff {
		sum -= 0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], uint16(sum))
	ip[8]--
	return g
}

func TestShortcutsLeaveOut(t *testing.T) {
	cases := map[string]struct {
		edit     func(*Snapshot)
		vifs     []uint32
		destVifs []uint32
	}{
		"policed vif": {func(s *Snapshot) { s.Vifs[2].Policy = &policy.Compiled{} }, []uint32{1, 3}, []uint32{1, 3}},
		"host's VRF":  {func(s *Snapshot) { s.Host = Host{Valid: true, Vif: 3, VRF: 1} }, nil, nil},
		"host vif":    {func(s *Snapshot) { s.Host = Host{Valid: true, Vif: 3, VRF: 2} }, []uint32{1, 2}, []uint32{1, 2}},
		"fabric vif":  {func(s *Snapshot) { s.Fabric = Fabric{Valid: true, Vif: 3} }, []uint32{1, 2}, []uint32{1, 2}},
		"route elsewhere": {func(s *Snapshot) {
			if err := s.VRFs[1].Table.Insert(netip.MustParsePrefix("198.18.10.2/32"), 2); err != nil {
				t.Fatal(err)
			}
		}, []uint32{1, 2, 3}, []uint32{1, 3}},
		"no address": {func(s *Snapshot) { s.Vifs[3].IP = [4]byte{} }, []uint32{1, 2, 3}, []uint32{1, 2}},
		"no VRF":     {func(s *Snapshot) { s.VRFs[2].Valid = false }, []uint32{1, 2}, []uint32{1, 2}},
	}
	for name, c := range cases {
		s := testSnapshot(t)
		c.edit(s)
		set := s.Shortcuts()
		vifs, dests := set.Vifs, set.Dests
		var dv []uint32
		for _, d := range dests {
			dv = append(dv, d.Vif)
		}
		if !slices.Equal(vifs, c.vifs) || !slices.Equal(dv, c.destVifs) {
			t.Errorf("%s: vifs %v dests %v, want %v %v", name, vifs, dv, c.vifs, c.destVifs)
		}
	}
}
