package agent

import (
	"context"
	"hash/fnv"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
)

// FabricVif is the fabric NIC's vif (Tungsten Fabric's vif 0/0).
const FabricVif = 0

// FabricConfig is the node's fabric NIC, which xvrd owns for overlay
// traffic. Without one, tunnel routes are refused.
type FabricConfig struct {
	IfName string
	NodeIP netip.Addr
	// MTU is the fabric NIC's MTU (0: no check).
	MTU int
	// Encap is the encapsulation priority (default MPLSoUDP, VXLAN).
	Encap []encap.Kind
	// Program steers the fabric NIC's queues to xvrd (vrouter/xdpprog's Fabric).
	Program FabricProgram
	// Neighbors resolves remote nodes' underlay MACs.
	Neighbors Neighbors
	// SNAT is the node IP's port pools for fabric SNAT (the flow table,
	// Config.Flows, must have been made with them); Gateway is where
	// source-NATed traffic leaves (the node's default gateway). Without
	// SNAT or Config.Flows fabric SNAT VNs get no default route.
	SNAT    *flowtable.SNAT
	Gateway netip.Addr
}

// FabricProgram is the fabric XDP program: the pod program's Attacher and
// the poller's Binder.
type FabricProgram interface {
	Attach(ifindex int) error
	dataplane.Binder
	// AddPrefix and DeletePrefix say which subnets (of fabric-forwarded
	// VNs) arrive natively and are steered to xvrd.
	AddPrefix(p netip.Prefix) error
	DeletePrefix(p netip.Prefix) error
}

// Neighbors finds the underlay MAC to send to a remote node through.
type Neighbors interface {
	// Resolve returns the MAC of ip's next hop on the fabric, or ok false
	// while it is being resolved (a probe was sent).
	Resolve(ip netip.Addr) (mac net.HardwareAddr, ok bool, err error)
	// DefaultGateway is the node's default gateway, if it has one now.
	DefaultGateway() (netip.Addr, bool)
}

// fabric is the agent's view of the fabric port.
type fabric struct {
	cfg      FabricConfig
	snatNH   uint32                // next hop id of source-NATed traffic
	gwMAC    [6]byte               // the gateway's MAC, zero while unresolved
	prefixes map[netip.Prefix]bool // steered by the program now
	ifindex  int
	target   bool // the kernel takes frames redirected to it (the shortcut's)
	mac      [6]byte
	queues   int
	stats    *dataplane.VifStats
	reason   string
}

// tunnel is the next hop of one tunnel route.
type tunnel struct {
	inner [6]byte // VXLAN inner destination MAC
	nh    uint32
	kind  encap.Kind
	label uint32 // MPLS label or VNI, per kind
	node  netip.Addr
	mac   [6]byte // zero while unresolved
}

// openFabric opens the fabric NIC's queues on the pollers and attaches the
// fabric program; a failure leaves it down, retried by Reconcile.
func (a *Agent) openFabric(ctx context.Context) {
	f := a.fab
	if f == nil || f.ifindex != 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	err := a.tryOpenFabric(ctx, f)
	if err != nil {
		a.closeFabric(ctx)
		if f.reason != err.Error() {
			a.cfg.Log.Warn("fabric down", "dev", f.cfg.IfName, "err", err)
		}
		f.reason = err.Error()
		return
	}
	f.reason = ""
	a.syncPrefixes()
	a.cfg.Log.Info("fabric up", "dev", f.cfg.IfName, "node_ip", f.cfg.NodeIP, "queues", f.queues)
	a.checkTargets()
	a.publish()
}

func (a *Agent) tryOpenFabric(ctx context.Context, f *fabric) error {
	ifindex, queues, err := a.cfg.Links.Lookup(f.cfg.IfName)
	if err != nil {
		return err
	}
	mac, err := a.cfg.Links.MAC(f.cfg.IfName)
	if err != nil {
		return err
	}
	copy(f.mac[:], mac)
	f.ifindex = ifindex
	np := len(a.cfg.Pollers)
	for q := 0; q < queues; q++ {
		pl := a.cfg.Pollers[q%np]
		if err := pl.Do(ctx, func() error { return pl.AddPortWith(FabricVif, ifindex, q, f.stats, f.cfg.Program) }); err != nil {
			return err
		}
		f.queues = q + 1
	}
	return f.cfg.Program.Attach(ifindex)
}

func (a *Agent) closeFabric(ctx context.Context) {
	f := a.fab
	for q := 0; q < min(f.queues, len(a.cfg.Pollers)); q++ {
		pl := a.cfg.Pollers[q]
		if err := pl.Do(ctx, func() error { return pl.RemovePort(FabricVif) }); err != nil {
			a.cfg.Log.Warn("closing fabric socket", "queue", q, "err", err)
		}
	}
	f.queues, f.ifindex, f.target = 0, 0, false
}

// vniOf is a VN's VXLAN identifier: the same on every node without
// coordination, a hash of its Contrail name into 1..2^24-1.
func vniOf(project, vn string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(project + ":" + vn))
	return h.Sum32()%encap.MaxVNI + 1
}

// setVNI gives n its VNI (requested or hashed) and refuses one another VN has.
func (a *Agent) setVNI(n *network, requested uint32) error {
	if requested > encap.MaxVNI {
		return api.BadRequest("network %s: vni %d above %d", n.spec.Key(), requested, encap.MaxVNI)
	}
	n.spec.VNI = requested
	if n.spec.VNI == 0 {
		n.spec.VNI = vniOf(n.spec.Project, n.spec.VNName)
	}
	for _, o := range a.nets {
		if o.target == nil && o.spec.Key() != n.spec.Key() && o.spec.VNI == n.spec.VNI {
			return api.Conflict("network %s: vni %d is network %s's; set a vni", n.spec.Key(), n.spec.VNI, o.spec.Key())
		}
	}
	return nil
}

// validateTunnel checks a tunnel next hop and picks its encapsulation.
func (a *Agent) validateTunnel(r *api.Route, vn *network) (*tunnel, error) {
	f := a.fab
	if f == nil {
		return nil, api.Conflict("route %s: xvrd has no fabric (-fabric-if): no tunnel routes", r.Prefix)
	}
	nh := &r.NextHop
	node, err := netip.ParseAddr(nh.Node)
	if err != nil || !node.Is4() || node == f.cfg.NodeIP {
		return nil, api.BadRequest("route %s: %s node %q is not another node's IPv4 address", r.Prefix, nh.Type, nh.Node)
	}
	nh.Port = ""
	if nh.Type == api.NextHopFabric {
		if !vn.spec.FabricForwarding {
			return nil, api.BadRequest("route %s: network %s does not use fabric forwarding (opencontrail.org/ip_fabric_forwarding)", r.Prefix, vn.spec.Key())
		}
		nh.Label, nh.VNI, nh.Encaps = 0, 0, nil
		return &tunnel{node: node}, nil
	}
	accepted, err := encap.ParsePriority(strings.Join(nh.Encaps, ","))
	if err != nil {
		return nil, api.BadRequest("route %s: encaps: %v", r.Prefix, err)
	}
	if nh.Label != 0 && (nh.Label < encap.MinLabel || nh.Label > encap.MaxLabel) {
		return nil, api.BadRequest("route %s: label %d outside %d..%d", r.Prefix, nh.Label, encap.MinLabel, encap.MaxLabel)
	}
	if nh.VNI == 0 {
		nh.VNI = vn.spec.VNI
	}
	if nh.VNI > encap.MaxVNI {
		return nil, api.BadRequest("route %s: vni %d above %d", r.Prefix, nh.VNI, encap.MaxVNI)
	}
	if nh.Label == 0 { // MPLSoUDP needs the remote's label
		accepted = without(accepted, encap.MPLSoUDP)
	}
	kind, ok := encap.Choose(f.cfg.Encap, accepted)
	if !ok {
		return nil, api.BadRequest("route %s: no encapsulation both this node (%v) and the remote (%v) accept",
			r.Prefix, f.cfg.Encap, nh.Encaps)
	}
	t := &tunnel{kind: kind, label: nh.Label, node: node}
	copy(t.inner[:], a.cfg.MAC)
	if nh.MAC != "" {
		mac, err := net.ParseMAC(nh.MAC)
		if err != nil || len(mac) != 6 || mac[0]&1 == 1 {
			return nil, api.BadRequest("route %s: mac %q is not a unicast Ethernet MAC", r.Prefix, nh.MAC)
		}
		nh.MAC = mac.String()
		copy(t.inner[:], mac)
	}
	if kind == encap.VXLAN {
		t.label = nh.VNI
	}
	return t, nil
}

func without(kinds []encap.Kind, k encap.Kind) []encap.Kind {
	out := kinds[:0:0]
	for _, x := range kinds {
		if x != k {
			out = append(out, x)
		}
	}
	return out
}

// resolveNow resolves t's underlay MAC, waiting a little (bounded) for the
// kernel to answer the probe, so that a new route's first packets are not
// dropped; Reconcile retries what is still unresolved.
func (a *Agent) resolveNow(t *tunnel) {
	for i := 0; i < 20 && t.mac == ([6]byte{}); i++ {
		if a.resolve(t) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resolve looks the tunnel's underlay MAC up; it reports whether it changed.
func (a *Agent) resolve(t *tunnel) bool {
	mac, ok, err := a.fab.cfg.Neighbors.Resolve(t.node)
	if err != nil {
		a.cfg.Log.Warn("resolving underlay neighbour", "node", t.node, "err", err)
		return false
	}
	if !ok || len(mac) != 6 || [6]byte(mac) == t.mac {
		return false
	}
	t.mac = [6]byte(mac)
	return true
}

// reconcileFabric reopens a fabric that is down and resolves tunnels whose
// underlay MAC is unknown.
func (a *Agent) reconcileFabric(ctx context.Context) {
	if a.fab == nil {
		return
	}
	a.openFabric(ctx)
	changed := false
	for _, t := range a.tunnels {
		if t.mac == ([6]byte{}) && a.resolve(t) {
			changed = true
		}
	}
	if f := a.fab; !f.cfg.Gateway.IsValid() {
		f.cfg.Gateway, _ = f.cfg.Neighbors.DefaultGateway() // until there is one, SNAT drops with no_neighbor
	}
	if f := a.fab; f.gwMAC == ([6]byte{}) && f.cfg.Gateway.IsValid() {
		gw := &tunnel{node: f.cfg.Gateway}
		if a.resolve(gw) {
			f.gwMAC, changed = gw.mac, true
		}
	}
	if changed {
		a.publish()
	}
	a.syncPrefixes()
}

// publishFabric adds the fabric and the tunnel next hops to s.
func (a *Agent) publishFabric(s *dataplane.Snapshot) {
	f := a.fab
	if f == nil {
		return
	}
	if f.ifindex != 0 {
		s.Fabric = dataplane.Fabric{Valid: true, Vif: FabricVif, IP: f.cfg.NodeIP.As4(), MAC: f.mac, MTU: f.cfg.MTU}
		for len(s.Vifs) <= FabricVif {
			s.Vifs = append(s.Vifs, dataplane.Vif{})
		}
		s.Vifs[FabricVif] = dataplane.Vif{Valid: true}
	}
	for _, t := range a.tunnels {
		for int(t.nh) >= len(s.NextHops) {
			s.NextHops = append(s.NextHops, dataplane.NextHop{Type: dataplane.NHDiscard})
		}
		typ := dataplane.NHTunnel
		if t.kind == 0 {
			typ = dataplane.NHFabric
		}
		s.NextHops[t.nh] = dataplane.NextHop{Type: typ, Vif: FabricVif, Kind: t.kind, Label: t.label, InnerMAC: t.inner,
			Outer: encap.Outer{SrcMAC: f.mac, DstMAC: t.mac, Src: f.cfg.NodeIP.As4(), Dst: t.node.As4()}}
	}
	for _, n := range a.nets {
		if n.target == nil && n.spec.FabricForwarding {
			s.FabricVRFs = append(s.FabricVRFs, n.spec.VRF)
		}
	}
	if a.cfg.Flows != nil && f.cfg.SNAT != nil {
		s.SNAT = f.cfg.SNAT
		for int(f.snatNH) >= len(s.NextHops) {
			s.NextHops = append(s.NextHops, dataplane.NextHop{Type: dataplane.NHDiscard})
		}
		s.NextHops[f.snatNH] = dataplane.NextHop{Type: dataplane.NHSNAT, Vif: FabricVif,
			Outer: encap.Outer{SrcMAC: f.mac, DstMAC: f.gwMAC}}
	}
}

// fabricVif describes the fabric port for introspection.
func (a *Agent) fabricVif() (api.Vif, bool) {
	f := a.fab
	if f == nil {
		return api.Vif{}, false
	}
	v := api.Vif{ID: FabricVif, Name: f.cfg.IfName, Type: "fabric", IP: f.cfg.NodeIP.String(), State: "up",
		MAC:       net.HardwareAddr(f.mac[:]).String(),
		RXPackets: f.stats.RXPackets.Load(), RXBytes: f.stats.RXBytes.Load(),
		TXPackets: f.stats.TXPackets.Load(), TXBytes: f.stats.TXBytes.Load(), Drops: f.stats.Drops.Load()}
	if f.ifindex == 0 {
		v.State = "down: " + f.reason
	}
	if sc := a.cfg.Shortcut; sc != nil {
		var err error
		if v.ShortcutPackets, v.ShortcutBytes, err = sc.FabricShortcutCount(); err != nil {
			a.cfg.Log.Warn("reading the fabric's xdp shortcut counters", "err", err)
		}
	}
	return v, true
}

func encapNames(kinds []encap.Kind) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.String()
	}
	return out
}

// syncPrefixes makes the fabric program steer exactly the subnets of the
// fabric-forwarded VNs; errors are logged and retried on the next change or
// reconcile.
func (a *Agent) syncPrefixes() {
	f := a.fab
	if f == nil || f.ifindex == 0 {
		return
	}
	want := map[netip.Prefix]bool{}
	for _, n := range a.nets {
		if n.target == nil && n.spec.FabricForwarding {
			want[n.prefix] = true
		}
	}
	if f.prefixes == nil {
		f.prefixes = map[netip.Prefix]bool{}
	}
	for p := range f.prefixes {
		if !want[p] {
			if err := f.cfg.Program.DeletePrefix(p); err != nil {
				a.cfg.Log.Warn("fabric program: deleting prefix", "prefix", p, "err", err)
				continue
			}
			delete(f.prefixes, p)
		}
	}
	for p := range want {
		if !f.prefixes[p] {
			if err := f.cfg.Program.AddPrefix(p); err != nil {
				a.cfg.Log.Warn("fabric program: adding prefix", "prefix", p, "err", err)
				continue
			}
			f.prefixes[p] = true
		}
	}
}

// snatting reports whether fabric SNAT works: a fabric, its port pools and
// the flow table.
func (a *Agent) snatting() bool { return a.fab != nil && a.fab.cfg.SNAT != nil && a.cfg.Flows != nil }
