package dataplane

// ShortcutDest is a local pod the kernel may deliver to without the
// pipeline (vrouter/xdpprog's shortcut): IPv4 to Addr in VRF leaves on Vif
// to MAC, TTL - 1, from the vRouter's MAC — what toVif does.
type ShortcutDest struct {
	VRF  uint32
	Addr [4]byte
	Vif  uint32
	MAC  [6]byte
}

// Shortcuts lists the vifs whose IPv4 frames may skip the pipeline on their
// way to the destinations listed, because for them the pipeline's decision
// depends on nothing but the snapshot: a vif qualifies as a source and as a
// destination when it is not policed (no flow to look up or record), not
// the host vif nor in the host's VRF (hostReturn may send a pod's reply
// back to the kernel by its flow), and, as a destination, when its VRF's
// route for its own address is its own next hop. A frame of a listed vif to
// a listed destination of its VRF, with no IPv4 options, not a fragment,
// TTL > 1, a valid header checksum and the vRouter's MAC as destination,
// gets exactly toVif's rewrite; the shortcut hands every other frame to the
// pipeline.
func (s *Snapshot) Shortcuts() (vifs []uint32, dests []ShortcutDest) {
	for i := range s.Vifs {
		vif := uint32(i)
		v := &s.Vifs[i]
		if !s.shortcutVif(vif) {
			continue
		}
		vifs = append(vifs, vif)
		if v.IP == ([4]byte{}) {
			continue
		}
		nh := s.localNH(s.vrf(v.VRF), v.IP)
		if nh == nil || nh.Vif != vif || nh.DstMAC != v.MAC {
			continue
		}
		dests = append(dests, ShortcutDest{VRF: v.VRF, Addr: v.IP, Vif: vif, MAC: v.MAC})
	}
	return vifs, dests
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
