package dataplane

import (
	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/vrouter/afxdp"
	"github.com/xvr-project/xvr/vrouter/packet"
)

// overlayL2 gives the inner Ethernet frame of a VXLAN packet (p.dec, in buf,
// the chunk of d at base) the layer-2 checks of a frame from a pod. ARP is
// handled here (done true: v is the verdict); IPv4 to the vRouter goes on to
// the inner IPv4 checks (done false). An MPLSoUDP packet carries an IPv4
// packet, no Ethernet header (Decap checked the version): it goes on.
//
// A VXLAN frame's inner destination must be the vRouter MAC (what a standard
// VTEP learns from its ARP reply) or, for IPv4, the frame's own unicast
// source MAC: what an xvr that does not know the receiver's MAC sends (a
// tunnel route's default inner MAC is the sender's vRouter MAC).
func (p *Pipeline) overlayL2(c *batchCtx, d *afxdp.Desc, buf []byte, base uint64, vrf *VRF) (v Verdict, done bool) {
	dec := &p.dec
	if !dec.InnerIsEthernet {
		return Verdict{}, false
	}
	f := buf[dec.InnerOff : dec.InnerOff+dec.InnerLen]
	switch packet.EtherType(f) {
	case packet.EtherTypeIPv4:
		if dst := packet.DstMAC(f); dst != c.s.MAC && (dst != packet.SrcMAC(f) || packet.IsMulticastMAC(dst)) {
			return Verdict{Reason: OverlayL2DstMismatch}, true
		}
		return Verdict{}, false
	case packet.EtherTypeARP:
		return p.overlayARP(c, d, buf, base, vrf, f), true
	}
	return Verdict{Reason: OverlayUnknownEtherType}, true
}

// overlayARP answers an ARP request that came inside VXLAN (f, the inner
// frame) for the address of a local pod of vrf with the vRouter MAC, as
// arpIn does for a pod, and sends the reply back in VXLAN to the sender
// (same VNI, outer source this node's fabric IP and MAC): a VTEP that learns
// (a Linux vxlan device's default) then knows the vRouter MAC is behind this
// node. Only local pods are answered: this node delivers to nothing else
// (no transit), and the gateway's address is every node's.
func (p *Pipeline) overlayARP(c *batchCtx, d *afxdp.Desc, buf []byte, base uint64, vrf *VRF, f []byte) Verdict {
	if dst := packet.DstMAC(f); dst != packet.Broadcast && dst != c.s.MAC {
		return Verdict{Reason: OverlayL2DstMismatch}
	}
	a := &p.arp
	if !packet.ParseARP(f[packet.EthLen:], a) {
		return Verdict{Reason: OverlayInvalidARP}
	}
	dec := &p.dec
	outer := buf[d.Addr-base:]
	peer := packet.SrcMAC(outer)
	if a.Op != packet.ARPOpRequest || a.TPA == a.SPA || a.SPA == [4]byte{} || packet.IsMulticastMAC(peer) ||
		!packet.IsUnicast(dec.Src) || c.s.localNH(vrf, a.TPA) == nil {
		return Verdict{Reason: OverlayARPNotMe}
	}
	n := packet.ARPReply(f, a, c.s.MAC)
	p.outer = encap.Outer{SrcMAC: c.s.Fabric.MAC, DstMAC: peer, Src: c.s.Fabric.IP, Dst: dec.Src}
	off, m, err := encap.Encap(buf, dec.InnerOff, n, encap.VXLAN, dec.Label, &p.outer, dec.SrcPort)
	if err != nil {
		return Verdict{Reason: EncapError}
	}
	d.Addr, d.Len = base+uint64(off), uint32(m)
	return Verdict{Vif: c.s.Fabric.Vif}
}

// overlayIPReason is the drop reason of an inner IPv4 header parseIPv4
// refused with r.
func overlayIPReason(r Reason) Reason {
	if r == IPChecksum {
		return OverlayIPChecksum
	}
	return OverlayInvalidIPHeader
}
