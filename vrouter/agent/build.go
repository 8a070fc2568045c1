package agent

import (
	"github.com/xvr-project/xvr/encap"
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
// adds is one the agent has committed to. Only redirect targets are named
// as devices to deliver to (pod veths whose pod end has NAPI, a fabric NIC
// that takes redirected frames). A failure is logged and leaves the
// kernel's maps with valid entries (xdpprog.SetShortcuts); the next change
// tries again.
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
	set := s.Shortcuts()
	var ins []xdpprog.ShortcutPort
	for _, v := range set.Vifs {
		if p := byVif[v]; p != nil {
			ins = append(ins, xdpprog.ShortcutPort{Ifindex: p.ifindex, VRF: s.Vifs[v].VRF, RouterMAC: s.MAC})
		}
	}
	var outs []xdpprog.ShortcutDest
	for _, d := range set.Dests {
		if len(outs) >= xdpprog.MaxShortcuts-1 {
			break // the rest stay the forwarder's; local pods come first
		}
		if d.Remote != nil {
			if f := a.fab; f != nil && f.ifindex > 0 && f.target {
				outs = append(outs, remoteShortcut(d, f.ifindex))
			}
			continue
		}
		p := byVif[d.Vif]
		if p == nil || !p.target {
			continue
		}
		sd := xdpprog.ShortcutDest{VRF: d.VRF, Addr: d.Addr, Ifindex: p.ifindex, MAC: d.MAC, SrcMAC: s.MAC}
		outs = append(outs, sd)
		if d.Native {
			sd.VRF = xdpprog.NativeVRF
			outs = append(outs, sd)
		}
	}
	var labels []xdpprog.ShortcutLabel
	for _, l := range set.Labels {
		if len(labels) < xdpprog.MaxShortcutLabels {
			labels = append(labels, xdpprog.ShortcutLabel{Kind: tunnelKind(l.Kind), Label: l.Label, VRF: l.VRF, RouterMAC: s.MAC})
		}
	}
	if err := a.cfg.Shortcut.SetShortcuts(ins, outs, labels); err != nil {
		a.cfg.Log.Warn("xdp shortcut not updated", "err", err)
	}
}

// remoteShortcut is the shortcut's form of a pod on another node, reached
// out of the fabric NIC (ifindex).
func remoteShortcut(d dataplane.ShortcutDest, ifindex int) xdpprog.ShortcutDest {
	nh := d.Remote
	o := &nh.Outer
	sd := xdpprog.ShortcutDest{VRF: d.VRF, Addr: d.Addr, Kind: xdpprog.ShortFabric, Ifindex: ifindex,
		MAC: o.DstMAC, SrcMAC: o.SrcMAC, MTU: uint16(min(max(d.MTU, 0), 0xffff))}
	if nh.Type == dataplane.NHFabric {
		return sd
	}
	sd.Kind = tunnelKind(nh.Kind)
	sd.Src, sd.Dst, sd.TTL, sd.DF, sd.Label, sd.InnerMAC = o.Src, o.Dst, o.TTL, o.DF, nh.Label, nh.InnerMAC
	return sd
}

// tunnelKind is the shortcut's kind of an encapsulation (MPLSoUDP or VXLAN).
func tunnelKind(k encap.Kind) xdpprog.ShortcutKind {
	if k == encap.VXLAN {
		return xdpprog.ShortVXLAN
	}
	return xdpprog.ShortMPLSoUDP
}

// checkTargets refreshes which up ports (and the fabric NIC) the kernel
// takes redirected frames for (a pod may turn its GRO off or on) and
// reports whether any changed.
func (a *Agent) checkTargets() bool {
	if a.cfg.Shortcut == nil {
		return false
	}
	changed := false
	for _, p := range a.ports {
		was := p.target
		p.target = a.redirectTarget(p.ifindex, p.spec.ID)
		changed = changed || was != p.target
	}
	if f := a.fab; f != nil {
		was := f.target
		f.target = a.redirectTarget(f.ifindex, f.cfg.IfName)
		changed = changed || was != f.target
	}
	return changed
}

func (a *Agent) redirectTarget(ifindex int, name string) bool {
	if ifindex < 1 {
		return false
	}
	ok, err := a.cfg.Shortcut.RedirectTarget(ifindex)
	if err != nil {
		a.cfg.Log.Warn("reading a device's xdp features", "device", name, "err", err)
	}
	return ok
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
