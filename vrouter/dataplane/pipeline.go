package dataplane

import (
	"errors"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/vrouter/afxdp"
	"github.com/xvr-project/xvr/vrouter/packet"
	"github.com/xvr-project/xvr/vrouter/route"
)

// Verdict is the pipeline's decision for one frame: transmit on Vif when
// Reason is Forward, otherwise drop for Reason.
type Verdict struct {
	Vif    uint32
	Reason Reason
	// Note is a reason counted in dropstats although a reply is sent in the
	// frame's place (the original packet of an ICMP error was dropped).
	Note Reason
}

// Pipeline turns received frames into verdicts, rewriting them in place.
// It holds no state that changes per packet, so one value may serve a poller
// for its whole life; it is not safe for concurrent use only because of the
// scratch headers it keeps to avoid allocating.
type Pipeline struct {
	// FrameSize is the UMEM chunk size (a power of two): a frame may grow up
	// to the end of its chunk (ICMP errors are built in place).
	FrameSize uint64
	// Now is the coarse time (seconds) flows are stamped with; the poller
	// sets it once per round.
	Now uint32

	ip  packet.IPv4
	arp packet.ARP
	dec encap.Decapped
	// outer is the scratch outer header of replies sent back in a tunnel.
	outer encap.Outer
	// seen is the current packet's flow entry as policy found it, so that
	// hostReturn need not look the same key up again.
	seen seenFlow
	// warmed keeps warm's loads from being optimised away.
	warmed byte
}

// batchCtx is what every frame of one batch shares: all came in on one vif.
type batchCtx struct {
	s    *Snapshot
	in   uint32
	vif  *Vif
	vrf  *VRF
	view *route.View
	mem  []byte
}

// Process decides the fate of the frames descs, all received on vif in, and
// writes one verdict per frame into v (len(v) >= len(descs)). Frames to be
// transmitted have been rewritten; their descriptors' Len may have changed.
func (p *Pipeline) Process(s *Snapshot, mem []byte, descs []afxdp.Desc, in uint32, v []Verdict) {
	p.warmed ^= warm(mem, descs)
	if s.Fabric.Valid && in == s.Fabric.Vif {
		c := batchCtx{s: s, in: in, mem: mem}
		for i := range descs {
			v[i] = p.fabricIn(&c, &descs[i])
		}
		return
	}
	c := batchCtx{s: s, in: in, mem: mem, vif: s.vif(in)}
	if c.vif != nil {
		c.vrf = s.vrf(c.vif.VRF)
	}
	if c.vrf == nil || c.vrf.Table == nil {
		for i := range descs {
			v[i] = Verdict{Reason: InvalidVif}
		}
		return
	}
	c.view = c.vrf.Table.Snapshot()
	for i := range descs {
		v[i] = p.one(&c, &descs[i])
	}
}

// warmHeaders is how much of a frame the pipeline reads before deciding:
// Ethernet, IPv4 and the first 20 bytes of L4.
const warmHeaders = packet.EthLen + 20 + 20

// warm loads the headers of every frame of the batch before any is
// parsed. The kernel wrote the frames on another CPU (the one that ran the
// sender's veth), so their first load misses the cache: parsed one at a
// time, each miss waits for the last (perf put 98 % of the parse's time on
// its first load); these loads are independent, so their misses overlap.
func warm(mem []byte, descs []afxdp.Desc) byte {
	var x byte
	for i := range descs {
		a, n := descs[i].Addr, uint64(min(descs[i].Len, warmHeaders))
		if n == 0 || a >= uint64(len(mem)) || n > uint64(len(mem))-a { // Process drops it as invalid
			continue
		}
		x ^= mem[a] ^ mem[a+n-1]
	}
	return x
}

func (p *Pipeline) one(c *batchCtx, d *afxdp.Desc) Verdict {
	end := d.Addr + uint64(d.Len)
	if end > uint64(len(c.mem)) || d.Len < packet.EthLen {
		return Verdict{Reason: InvalidPacket}
	}
	f := c.mem[d.Addr:end]
	switch packet.EtherType(f) {
	case packet.EtherTypeIPv4:
		if packet.DstMAC(f) != c.s.MAC {
			return Verdict{Reason: L2DstMismatch}
		}
		return p.ipv4(c, d, f)
	case packet.EtherTypeARP:
		return p.arpIn(c, d, f)
	case packet.EtherTypeIPv6:
		return Verdict{Reason: IPv6Unsupported}
	}
	return Verdict{Reason: UnknownEtherType}
}

func (p *Pipeline) arpIn(c *batchCtx, d *afxdp.Desc, f []byte) Verdict {
	dst := packet.DstMAC(f)
	if dst != packet.Broadcast && dst != c.s.MAC {
		return Verdict{Reason: L2DstMismatch}
	}
	a := &p.arp
	if !packet.ParseARP(f[packet.EthLen:], a) {
		return Verdict{Reason: InvalidARP}
	}
	if a.Op != packet.ARPOpRequest || a.TPA == a.SPA || a.SPA == [4]byte{} || !c.vrf.Contains(a.TPA) {
		return Verdict{Reason: ARPNotMe}
	}
	d.Len = uint32(packet.ARPReply(f, a, c.s.MAC))
	return Verdict{Vif: c.in}
}

func (p *Pipeline) ipv4(c *batchCtx, d *afxdp.Desc, f []byte) Verdict {
	h := &p.ip
	if r := p.parseIPv4(f); r != Forward {
		return Verdict{Reason: r}
	}
	if !packet.IsUnicast(h.Dst) || h.Dst == [4]byte{255, 255, 255, 255} {
		return Verdict{Reason: NonUnicastIP}
	}
	id, ok := p.lookup(c, h.Dst)
	if !ok {
		return Verdict{Reason: NoRoute}
	}
	nh := c.s.nh(id)
	if nh == nil {
		return Verdict{Reason: InvalidNextHop}
	}
	if r := p.guard(c, f, nh); r != Forward {
		return Verdict{Reason: r}
	}
	switch nh.Type {
	case NHReceive:
		return p.receive(c, f)
	case NHEncap:
		return p.toVif(c, d, f, p.hostReturn(c, c.vrf, f, nh))
	case NHTunnel:
		return p.toTunnel(c, d, f, nh)
	case NHFabric:
		return p.toFabric(c, d, f, nh)
	case NHSNAT:
		return p.toSNAT(c, d, f, nh)
	}
	return Verdict{Reason: Discard}
}

// parseIPv4 validates the IPv4 header of the Ethernet frame f into p.ip and
// says why it is refused, or Forward.
func (p *Pipeline) parseIPv4(f []byte) Reason {
	switch packet.ParseIPv4(f[packet.EthLen:], &p.ip) {
	case packet.IPv4OK:
		return Forward
	case packet.IPv4Checksum:
		return IPChecksum
	}
	return InvalidIPHeader
}

// receive handles packets for the router's own addresses: pings are answered.
func (p *Pipeline) receive(c *batchCtx, f []byte) Verdict {
	ip := f[packet.EthLen:]
	if !packet.IsEchoRequest(ip, &p.ip) {
		return Verdict{Reason: ReceiveUnhandled}
	}
	if r := echoRefused(ip, &p.ip); r != Forward {
		return Verdict{Reason: r}
	}
	packet.EchoReply(f, &p.ip, c.s.MAC)
	return Verdict{Vif: c.in}
}

func (p *Pipeline) toVif(c *batchCtx, d *afxdp.Desc, f []byte, nh *NextHop) Verdict {
	if c.s.vif(nh.Vif) == nil {
		return Verdict{Reason: InvalidNextHop}
	}
	if nh.Vif == c.in && c.s.Host.Valid && c.in == c.s.Host.Vif {
		return Verdict{Reason: NoRoute} // the kernel's packet for no pod: not back to the kernel
	}
	if p.ip.TTL <= 1 {
		return p.timeExceeded(c, d, f)
	}
	packet.DecTTL(f[packet.EthLen:])
	packet.SetMACs(f, nh.DstMAC, c.s.MAC)
	return Verdict{Vif: nh.Vif}
}

// timeExceeded rewrites the frame into an ICMP time-exceeded from the VN's
// gateway and sends it back, when RFC 1812 allows an error for it.
func (p *Pipeline) timeExceeded(c *batchCtx, d *afxdp.Desc, f []byte) Verdict {
	if !packet.ErrorAllowed(f[packet.EthLen:], &p.ip) {
		return Verdict{Reason: TTLExceeded}
	}
	if icmpChecksumBad(f[packet.EthLen:], &p.ip) {
		return Verdict{Reason: ICMPChecksum}
	}
	chunkEnd := (d.Addr | (p.FrameSize - 1)) + 1
	if chunkEnd > uint64(len(c.mem)) {
		return Verdict{Reason: TTLExceeded}
	}
	n := packet.ICMPError(c.mem[d.Addr:chunkEnd], len(f), &p.ip, packet.ICMPTimeExceeded, 0, 0, c.vrf.Gateway, c.s.MAC)
	if n == 0 {
		return Verdict{Reason: TTLExceeded}
	}
	d.Len = uint32(n)
	return Verdict{Vif: c.in, Note: TTLExceeded}
}

// chunk returns the bounds of the UMEM chunk holding d, or ok false.
func (p *Pipeline) chunk(c *batchCtx, d *afxdp.Desc) (base, end uint64, ok bool) {
	base = d.Addr &^ (p.FrameSize - 1)
	end = base + p.FrameSize
	return base, end, end <= uint64(len(c.mem))
}

// toTunnel routes a pod's packet to another node: TTL, then the outer
// headers written into the frame's headroom, out of the fabric vif.
func (p *Pipeline) toTunnel(c *batchCtx, d *afxdp.Desc, f []byte, nh *NextHop) Verdict {
	if !c.s.Fabric.Valid {
		return Verdict{Reason: InvalidNextHop}
	}
	if nh.Outer.DstMAC == ([6]byte{}) {
		return Verdict{Reason: NoNeighbor}
	}
	if p.ip.TTL <= 1 {
		return p.timeExceeded(c, d, f)
	}
	if mtu := c.s.Fabric.MTU; mtu > 0 && p.ip.TotalLen+encap.Overhead(nh.Kind) > mtu {
		return p.fragNeeded(c, d, f, mtu-encap.Overhead(nh.Kind))
	}
	packet.DecTTL(f[packet.EthLen:])
	if nh.Kind == encap.VXLAN { // the inner frame as the remote endpoint expects it
		packet.SetMACs(f, nh.InnerMAC, c.s.MAC)
	}
	base, end, ok := p.chunk(c, d)
	if !ok {
		return Verdict{Reason: EncapError}
	}
	entropy := encap.FlowEntropy(f[packet.EthLen:])
	off, n, err := encap.Encap(c.mem[base:end], int(d.Addr-base), int(d.Len), nh.Kind, nh.Label, &nh.Outer, entropy)
	if err != nil {
		return Verdict{Reason: EncapError}
	}
	d.Addr, d.Len = base+uint64(off), uint32(n)
	return Verdict{Vif: c.s.Fabric.Vif}
}

// fabricIn handles a frame the fabric program redirected: overlay traffic
// for this node is decapsulated and delivered to the local pod its VN's
// table names. The sending vRouter decremented the TTL already.
func (p *Pipeline) fabricIn(c *batchCtx, d *afxdp.Desc) Verdict {
	base, end, ok := p.chunk(c, d)
	if !ok || d.Addr+uint64(d.Len) > end || d.Len < packet.EthLen {
		return Verdict{Reason: InvalidPacket}
	}
	buf := c.mem[base:end]
	dec := &p.dec
	err := encap.Decap(buf, int(d.Addr-base), int(d.Len), dec)
	if errors.Is(err, encap.ErrNotOverlay) || (err != nil && packet.EtherType(buf[d.Addr-base:]) == packet.EtherTypeARP) {
		return p.fabricNative(c, d, c.mem[d.Addr:d.Addr+uint64(d.Len)])
	}
	if err != nil || dec.Dst != c.s.Fabric.IP {
		return Verdict{Reason: DecapError}
	}
	vrf := p.vrfOf(c.s, dec)
	if vrf == nil || vrf.Table == nil {
		return Verdict{Reason: UnknownLabel}
	}
	if v, done := p.overlayL2(c, d, buf, base, vrf); done {
		return v
	}
	off, n := encap.InnerEthernet(buf, dec, [6]byte{}, [6]byte{})
	if n == 0 {
		return Verdict{Reason: DecapError}
	}
	f := buf[off : off+n]
	if r := p.parseIPv4(f); r != Forward {
		return Verdict{Reason: overlayIPReason(r)}
	}
	nh := c.s.localNH(vrf, p.ip.Dst)
	if nh == nil {
		return Verdict{Reason: NoRoute} // no transit through this node
	}
	if r := p.guardIn(c, f, nh); r != Forward {
		return Verdict{Reason: r}
	}
	nh = p.hostReturn(c, vrf, f, nh)
	packet.SetMACs(f, nh.DstMAC, c.s.MAC)
	d.Addr, d.Len = base+uint64(off), uint32(n)
	return Verdict{Vif: nh.Vif}
}

// fragNeeded answers a packet that will not fit the fabric once
// encapsulated: with DF set, ICMP "fragmentation needed" with the MTU that
// fits (RFC 1191), so TCP lowers its segment size; without, a drop.
func (p *Pipeline) fragNeeded(c *batchCtx, d *afxdp.Desc, f []byte, mtu int) Verdict {
	ip := f[packet.EthLen:]
	if ip[6]&0x40 == 0 || !packet.ErrorAllowed(ip, &p.ip) {
		return Verdict{Reason: MTUExceeded}
	}
	if icmpChecksumBad(ip, &p.ip) {
		return Verdict{Reason: ICMPChecksum}
	}
	_, end, ok := p.chunk(c, d)
	if !ok {
		return Verdict{Reason: MTUExceeded}
	}
	n := packet.ICMPError(c.mem[d.Addr:end], len(f), &p.ip, packet.ICMPDestUnreach, 4, uint32(mtu), c.vrf.Gateway, c.s.MAC)
	if n == 0 {
		return Verdict{Reason: MTUExceeded}
	}
	d.Len = uint32(n)
	return Verdict{Vif: c.in, Note: MTUExceeded}
}

// toFabric forwards a pod's packet natively to another node of a
// fabric-forwarded VN: TTL, the remote node's MAC, out of the fabric vif.
func (p *Pipeline) toFabric(c *batchCtx, d *afxdp.Desc, f []byte, nh *NextHop) Verdict {
	switch {
	case !c.s.Fabric.Valid:
		return Verdict{Reason: InvalidNextHop}
	case nh.Outer.DstMAC == [6]byte{}:
		return Verdict{Reason: NoNeighbor}
	case p.ip.TTL <= 1:
		return p.timeExceeded(c, d, f)
	case c.s.Fabric.MTU > 0 && p.ip.TotalLen > c.s.Fabric.MTU:
		return p.fragNeeded(c, d, f, c.s.Fabric.MTU)
	}
	packet.DecTTL(f[packet.EthLen:])
	packet.SetMACs(f, nh.Outer.DstMAC, nh.Outer.SrcMAC)
	return Verdict{Vif: c.s.Fabric.Vif}
}

// fabricNative handles what the fabric program redirected without a tunnel
// header: IPv4 to a local pod of a fabric-forwarded VN, and ARP for one
// (answered with the fabric NIC's MAC).
func (p *Pipeline) fabricNative(c *batchCtx, d *afxdp.Desc, f []byte) Verdict {
	switch packet.EtherType(f) {
	case packet.EtherTypeARP:
		return p.fabricARP(c, d, f)
	case packet.EtherTypeIPv4:
	default:
		return Verdict{Reason: UnknownEtherType}
	}
	if r := p.parseIPv4(f); r != Forward {
		return Verdict{Reason: r}
	}
	if p.ip.Dst == c.s.Fabric.IP && c.s.Flows != nil {
		return p.snatReturn(c, f)
	}
	vrf := c.s.fabricVRF(p.ip.Dst)
	if vrf == nil || vrf.Table == nil {
		return Verdict{Reason: NoRoute}
	}
	nh := c.s.localNH(vrf, p.ip.Dst)
	if nh == nil {
		return Verdict{Reason: NoRoute}
	}
	if r := p.guardIn(c, f, nh); r != Forward {
		return Verdict{Reason: r}
	}
	if p.ip.TTL <= 1 {
		return Verdict{Reason: TTLExceeded}
	}
	packet.DecTTL(f[packet.EthLen:])
	packet.SetMACs(f, nh.DstMAC, c.s.MAC)
	return Verdict{Vif: nh.Vif}
}

// fabricARP answers an ARP request from the fabric for a local pod of a
// fabric-forwarded VN with the fabric NIC's MAC.
func (p *Pipeline) fabricARP(c *batchCtx, d *afxdp.Desc, f []byte) Verdict {
	a := &p.arp
	if !packet.ParseARP(f[packet.EthLen:], a) {
		return Verdict{Reason: InvalidARP}
	}
	vrf := c.s.fabricVRF(a.TPA)
	if a.Op != packet.ARPOpRequest || vrf == nil || vrf.Table == nil {
		return Verdict{Reason: ARPNotMe}
	}
	id, found := vrf.Table.Lookup(a.TPA)
	if nh := c.s.nh(id); !found || nh == nil || nh.Type != NHEncap {
		return Verdict{Reason: ARPNotMe}
	}
	d.Len = uint32(packet.ARPReply(f, a, c.s.Fabric.MAC))
	return Verdict{Vif: c.s.Fabric.Vif}
}

func (p *Pipeline) vrfOf(s *Snapshot, dec *encap.Decapped) *VRF {
	if dec.Kind == encap.MPLSoUDP {
		return s.vrfOfLabel(dec.Label)
	}
	id, ok := s.VNIs[dec.Label]
	if !ok {
		return nil
	}
	return s.vrf(id)
}
