package agent

import (
	"github.com/xvr-project/xvr/vrouter/dataplane"
	"github.com/xvr-project/xvr/vrouter/xdpprog"
)

// publish builds the forwarder's snapshot from the current state and makes
// it live. Called with a.mu held after every change.
func (a *Agent) publish() {
	s := &dataplane.Snapshot{NextHops: []dataplane.NextHop{
		dataplane.NHIDDiscard: {Type: dataplane.NHDiscard},
		dataplane.NHIDReceive: {Type: dataplane.NHReceive},
	}}
	copy(s.MAC[:], a.cfg.MAC)
	for _, n := range a.nets {
		if n.target != nil {
			continue
		}
		vrf := n.spec.VRF
		for int(vrf) >= len(s.VRFs) {
			s.VRFs = append(s.VRFs, dataplane.VRF{})
		}
		s.VRFs[vrf] = dataplane.VRF{Valid: true, Gateway: n.gw.As4(), DNS: n.dns.As4(),
			Net: be32(n.prefix.Addr().As4()), Mask: maskOf(n.prefix.Bits()),
			Table: a.tables.Ensure(vrf)}
	}
	for _, p := range a.ports {
		vif, nh := p.spec.Vif, p.nh
		for int(vif) >= len(s.Vifs) {
			s.Vifs = append(s.Vifs, dataplane.Vif{})
		}
		for int(nh) >= len(s.NextHops) {
			s.NextHops = append(s.NextHops, dataplane.NextHop{Type: dataplane.NHDiscard})
		}
		s.Vifs[vif] = dataplane.Vif{Valid: true, VRF: p.net.vn().spec.VRF, MAC: p.mac, IP: p.ip.As4()}
		s.NextHops[nh] = dataplane.NextHop{Type: dataplane.NHEncap, Vif: vif, DstMAC: p.mac}
	}
	if h := a.ports[HostPortID]; h != nil {
		s.Host = dataplane.Host{Valid: true, Vif: h.spec.Vif, NH: h.nh, VRF: h.net.vn().spec.VRF, IP: h.ip.As4()}
		for _, n := range a.nets {
			if n.target == nil && n.spec.HostAccess && n != h.net.vn() {
				s.Host.VRFs = append(s.Host.VRFs, n.spec.VRF)
			}
		}
	}
	s.VNIs = map[uint32]uint32{}
	for _, n := range a.nets {
		if n.target == nil {
			s.VNIs[n.spec.VNI] = n.spec.VRF
		}
	}
	a.publishPolicies(s)
	s.Flows = a.cfg.Flows
	s.PolicyStats = &a.polStats
	a.publishFabric(s)
	a.publishShortcuts(s)
	a.cfg.Current.Publish(s)
}

// publishShortcuts has the XDP shortcut hold what s allows, before s goes
// live: a delivery s no longer allows leaves the kernel first, and one it
// adds is one the agent has committed to. A failure is logged and leaves
// the kernel's maps with valid entries (xdpprog.SetShortcuts); the next
// change tries again.
func (a *Agent) publishShortcuts(s *dataplane.Snapshot) {
	if a.cfg.Shortcut == nil {
		return
	}
	byVif := make(map[uint32]*port, len(a.ports))
	for _, p := range a.ports {
		if p.ifindex > 0 {
			byVif[p.spec.Vif] = p
		}
	}
	vifs, dests := s.Shortcuts()
	var ins []xdpprog.ShortcutPort
	for _, v := range vifs {
		if p := byVif[v]; p != nil {
			ins = append(ins, xdpprog.ShortcutPort{Ifindex: p.ifindex, VRF: s.Vifs[v].VRF, RouterMAC: s.MAC})
		}
	}
	var outs []xdpprog.ShortcutDest
	for _, d := range dests {
		if p := byVif[d.Vif]; p != nil && p.target {
			outs = append(outs, xdpprog.ShortcutDest{VRF: d.VRF, Addr: d.Addr, Ifindex: p.ifindex, MAC: d.MAC})
		}
	}
	if err := a.cfg.Shortcut.SetShortcuts(ins, outs); err != nil {
		a.cfg.Log.Warn("xdp shortcut not updated", "err", err)
	}
}

// checkTargets refreshes which up ports the kernel takes redirected frames
// for (a pod may turn its GRO off or on) and reports whether any changed.
func (a *Agent) checkTargets() bool {
	if a.cfg.Shortcut == nil {
		return false
	}
	changed := false
	for _, p := range a.ports {
		was := p.target
		p.target = false
		if p.ifindex > 0 {
			ok, err := a.cfg.Shortcut.RedirectTarget(p.ifindex)
			if err != nil {
				a.cfg.Log.Warn("reading a port's xdp features", "port", p.spec.ID, "err", err)
			}
			p.target = ok
		}
		changed = changed || was != p.target
	}
	return changed
}

// maskOf is the host-order netmask of a prefix length (0..32).
func maskOf(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

func be32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}
