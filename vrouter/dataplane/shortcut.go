package dataplane

import (
	"cmp"
	"maps"
	"slices"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/vrouter/packet"
)

// ShortcutDest is a pod the kernel may deliver to without the pipeline
// (vrouter/xdpprog's shortcut): IPv4 to Addr in VRF. With Remote nil it is
// a local pod and leaves on Vif to MAC, TTL - 1, from the vRouter's MAC —
// what toVif does. Otherwise the pod is on another node and Remote (an
// NHTunnel or NHFabric next hop) says how toTunnel or toFabric sends it out
// of the fabric vif (Vif), whose IP MTU is MTU.
type ShortcutDest struct {
	VRF    uint32
	Addr   [4]byte
	Vif    uint32
	MAC    [6]byte
	Remote *NextHop
	MTU    int
	// Native: a local pod of a fabric-forwarded VN whose packets, arriving
	// natively from the fabric, fabricNative delivers as toVif would
	// (after TTL - 1).
	Native bool
}

// ShortcutLabel is an MPLS label or VXLAN network identifier that fabricIn
// decapsulates into VRF.
type ShortcutLabel struct {
	Kind  encap.Kind
	Label uint32
	VRF   uint32
}

// ShortcutSet is what may skip the pipeline under one snapshot.
type ShortcutSet struct {
	// Vifs are the vifs whose IPv4 frames may take the shortcut.
	Vifs []uint32
	// Dests are where they may go: local pods first, then remote ones.
	Dests []ShortcutDest
	// Labels are what may arrive from the fabric for the local Dests.
	Labels []ShortcutLabel
}

// Shortcuts lists what may skip the pipeline because for it the pipeline's
// decision depends on nothing but the snapshot: a vif qualifies as a source
// and as a local destination when it is not policed (no flow to look up or
// record), not the host vif nor in the host's VRF (hostReturn may send a
// pod's reply back to the kernel by its flow), and, as a destination, when
// its VRF's route for its own address is its own next hop. A remote
// destination is a /32 route of such a VRF to a tunnel or fabric next hop
// whose underlay MAC is known. A frame of a listed vif to a listed
// destination of its VRF, with no IPv4 options, not a fragment, TTL > 1, a
// valid header checksum, the vRouter's MAC as destination and (remote) a
// length that fits the fabric once encapsulated, gets exactly toVif's,
// toTunnel's or toFabric's rewrite; the shortcut hands every other frame to
// the pipeline. From the fabric, an overlay frame to the node IP under a
// listed label, with an option-less outer header, no UDP checksum and no
// bytes beyond its datagram, carrying such an IPv4 packet to a listed
// local destination (VXLAN: inner destination MAC the vRouter's), gets
// fabricIn's decapsulation; a native one, fabricNative's delivery.
func (s *Snapshot) Shortcuts() ShortcutSet {
	var set ShortcutSet
	vrfs := map[uint32]bool{}
	for i := range s.Vifs {
		vif := uint32(i)
		v := &s.Vifs[i]
		if !s.shortcutVif(vif) {
			continue
		}
		set.Vifs = append(set.Vifs, vif)
		vrfs[v.VRF] = true
		if v.IP == ([4]byte{}) {
			continue
		}
		vrf := s.vrf(v.VRF)
		nh := s.localNH(vrf, v.IP)
		if nh == nil || nh.Vif != vif || nh.DstMAC != v.MAC {
			continue
		}
		set.Dests = append(set.Dests, ShortcutDest{VRF: v.VRF, Addr: v.IP, Vif: vif, MAC: v.MAC,
			Native: s.fabricVRF(v.IP) == vrf})
	}
	if !s.Fabric.Valid {
		return set
	}
	for _, id := range slices.Sorted(maps.Keys(vrfs)) {
		set.Dests = s.remoteDests(id, set.Dests)
		if id+LabelBase <= encap.MaxLabel {
			set.Labels = append(set.Labels, ShortcutLabel{Kind: encap.MPLSoUDP, Label: id + LabelBase, VRF: id})
		}
	}
	for vni, id := range s.VNIs {
		if vrfs[id] && vni <= encap.MaxVNI {
			set.Labels = append(set.Labels, ShortcutLabel{Kind: encap.VXLAN, Label: vni, VRF: id})
		}
	}
	slices.SortFunc(set.Labels, func(a, b ShortcutLabel) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Label, b.Label))
	})
	return set
}

// remoteDests appends the /32 routes of VRF id that leave the node through
// a tunnel or natively and that toTunnel or toFabric would send.
func (s *Snapshot) remoteDests(id uint32, dests []ShortcutDest) []ShortcutDest {
	for p, nhID := range s.vrf(id).Table.All() {
		nh := s.nh(nhID)
		if p.Bits() != 32 || nh == nil || nh.Outer.DstMAC == ([6]byte{}) {
			continue
		}
		a := p.Addr().As4()
		if !packet.IsUnicast(a) || a == [4]byte{255, 255, 255, 255} {
			continue
		}
		switch {
		case nh.Type == NHFabric:
		case nh.Type == NHTunnel && nh.Kind == encap.MPLSoUDP && nh.Label >= encap.MinLabel && nh.Label <= encap.MaxLabel:
		case nh.Type == NHTunnel && nh.Kind == encap.VXLAN && nh.Label <= encap.MaxVNI:
		default:
			continue
		}
		dests = append(dests, ShortcutDest{VRF: id, Addr: a, Vif: s.Fabric.Vif, MAC: nh.Outer.DstMAC,
			Remote: nh, MTU: s.Fabric.MTU})
	}
	return dests
}

func (s *Snapshot) shortcutVif(i uint32) bool {
	v := s.vif(i)
	if v == nil || v.Policy != nil || (s.Fabric.Valid && i == s.Fabric.Vif) {
		return false
	}
	if h := &s.Host; h.Valid && (i == h.Vif || v.VRF == h.VRF) {
		return false
	}
	vrf := s.vrf(v.VRF)
	return vrf != nil && vrf.Table != nil
}
