package dataplane

import (
	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/vrouter/packet"
)

// The node's kernel forwards some pod packets back into xvr: a pod's packet
// to a Service's ClusterIP goes to the kernel through the host vif, where
// kube-proxy rewrites its destination to an endpoint pod and sends it back
// with the pod's own source address. The endpoint's reply must go back
// through the same kernel, whose conntrack turns its source into the
// ClusterIP again; delivered to the client pod directly it would be
// refused. So a frame from the host vif whose source is a pod of the
// default network records a flow whose reverse entry sends the reply to the
// host vif, on this node or after decapsulation when the endpoint is on
// another node (guard in policy.go records it: its flowEnds.hostFlow).
// Other traffic never pays for it: the lookups happen only for
// default-network packets while the flow table holds flows.

// lookup finds dst's next hop in the batch's VRF; for the kernel's frames,
// a destination in a VN that opted in to host access is looked up in that
// VN's table. A packet the kernel forwards from a pod of the default
// network to such a VN finds no route: host access is the node's, not a
// way around the isolation between VNs.
func (p *Pipeline) lookup(c *batchCtx, dst [4]byte) (uint32, bool) {
	if h := &c.s.Host; c.in == h.Vif && h.Valid && len(h.VRFs) > 0 && !c.vrf.Contains(dst) {
		for _, id := range h.VRFs {
			if v := c.s.vrf(id); v != nil && v.Table != nil && v.Contains(dst) {
				if c.vrf.Contains(p.ip.Src) && p.ip.Src != h.IP {
					return 0, false
				}
				return v.Table.Lookup(dst)
			}
		}
	}
	return c.view.Lookup(dst)
}

// hostReturn is the host vif's next hop when the packet (parsed into p.ip,
// about to be delivered to a local pod through nh) is the reply of a flow
// the kernel forwarded (noteFromHost); otherwise nh.
func (p *Pipeline) hostReturn(c *batchCtx, vrf *VRF, f []byte, nh *NextHop) *NextHop {
	s, h := c.s, &c.s.Host
	if !h.Valid || s.Flows == nil || c.in == h.Vif || nh.Vif == h.Vif || vrf != s.vrf(h.VRF) ||
		(p.ip.Proto != packet.ProtoTCP && p.ip.Proto != packet.ProtoUDP) || s.Flows.Len() == 0 {
		return nh
	}
	sport, dport, ok := l4Ports(f[packet.EthLen:], &p.ip, true)
	if !ok {
		return nh
	}
	k := flowtable.Key{VRF: h.VRF, Src: p.ip.Src, Dst: p.ip.Dst, SrcPort: sport, DstPort: dport, Proto: p.ip.Proto}
	var ref flowtable.Ref
	var act flowtable.Action
	accounted := p.seen.ok && p.seen.k == k // policy looked this entry up (and accounted it)
	if accounted {
		ref, act = p.seen.ref, p.seen.act
	} else {
		var hit bool
		if ref, act, hit = s.Flows.Lookup(&k); !hit {
			return nh
		}
	}
	if act.Kind != flowtable.Forward || act.NextHop != h.NH {
		return nh
	}
	hn := s.nh(h.NH)
	if hn == nil || hn.Type != NHEncap || s.vif(hn.Vif) == nil {
		return nh
	}
	if !accounted {
		s.Flows.Account(ref, int(p.ip.TotalLen), p.Now)
	}
	return hn
}
