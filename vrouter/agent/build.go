package agent

import (
	"github.com/xvr-project/xvr/vrouter/dataplane"
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
	a.cfg.Current.Publish(s)
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
