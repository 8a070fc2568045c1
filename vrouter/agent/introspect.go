package agent

import (
	"net/netip"
	"time"

	"context"
	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/flowtable"
	"net"
	"sort"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
)

// Vifs lists the forwarder's interfaces with live counters.
func (a *Agent) Vifs(context.Context) []api.Vif {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]api.Vif, 0, len(a.ports)+1)
	if v, ok := a.fabricVif(); ok {
		out = append(out, v)
	}
	for _, p := range a.ports {
		v := p.view()
		typ := api.VifVirtual
		if v.ID == HostPortID {
			typ = api.VifHost
		}
		vif := api.Vif{ID: v.Vif, Name: v.HostIfName, Type: typ, Port: v.ID,
			Network: v.Network, VN: p.net.vn().spec.VNName, VRF: p.net.vn().spec.VRF, MAC: v.MAC, IP: v.IP, State: v.State,
			RXPackets: p.stats.RXPackets.Load(), RXBytes: p.stats.RXBytes.Load(),
			TXPackets: p.stats.TXPackets.Load(), TXBytes: p.stats.TXBytes.Load(), Drops: p.stats.Drops.Load()}
		if sc := a.cfg.Shortcut; sc != nil && p.ifindex > 0 {
			var err error
			if vif.ShortcutPackets, vif.ShortcutBytes, err = sc.ShortcutCount(p.ifindex); err != nil {
				a.cfg.Log.Warn("reading xdp shortcut counters", "vif", v.Vif, "err", err)
			}
		}
		out = append(out, vif)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// RouteTable dumps one network's forwarding table.
func (a *Agent) RouteTable(ctx context.Context, network string) ([]api.RouteEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.nets[network]
	if n == nil {
		return nil, api.NotFound("network %q not found", network)
	}
	static := map[string]bool{}
	for _, r := range a.routes {
		if a.nets[r.Network].vn() == n.vn() {
			static[r.Prefix] = true
		}
	}
	nhs := a.nextHops()
	out := []api.RouteEntry{}
	if t := a.tables.Get(n.vn().spec.VRF); t != nil {
		for p, nh := range t.All() {
			e := api.RouteEntry{Prefix: p.String(), NextHop: nh, Type: api.NextHopDiscard, Static: static[p.String()]}
			if h, ok := nhs[nh]; ok {
				e.Type, e.Vif = h.Type, h.Vif
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// NextHops lists the forwarder's next hops.
func (a *Agent) NextHops(context.Context) []api.NextHop {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []api.NextHop{}
	for _, h := range a.nextHops() {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (a *Agent) nextHops() map[uint32]api.NextHop {
	refs := map[uint32]int{}
	for _, t := range a.nets {
		if t.target == nil {
			if tb := a.tables.Get(t.spec.VRF); tb != nil {
				for _, nh := range tb.All() {
					refs[nh]++
				}
			}
		}
	}
	out := map[uint32]api.NextHop{
		dataplane.NHIDDiscard: {ID: dataplane.NHIDDiscard, Type: api.NextHopDiscard, Refs: refs[dataplane.NHIDDiscard]},
		dataplane.NHIDReceive: {ID: dataplane.NHIDReceive, Type: api.NextHopReceive, Refs: refs[dataplane.NHIDReceive]},
	}
	for _, p := range a.ports {
		out[p.nh] = api.NextHop{ID: p.nh, Type: api.NextHopEncap, VRF: p.net.vn().spec.VRF, Vif: p.spec.Vif,
			SrcMAC: a.cfg.MAC.String(), DstMAC: net.HardwareAddr(p.mac[:]).String(), Refs: refs[p.nh]}
	}
	if f := a.fab; a.snatting() {
		h := api.NextHop{ID: f.snatNH, Type: "snat", Vif: FabricVif, SrcMAC: net.HardwareAddr(f.mac[:]).String(),
			Node: f.cfg.Gateway.String(), Refs: refs[f.snatNH]}
		if f.gwMAC != ([6]byte{}) {
			h.DstMAC = net.HardwareAddr(f.gwMAC[:]).String()
		}
		out[f.snatNH] = h
	}
	for key, t := range a.tunnels {
		typ := api.NextHopTunnel
		if t.kind == 0 {
			typ = api.NextHopFabric
		}
		h := api.NextHop{ID: t.nh, Type: typ, VRF: a.nets[a.routes[key].Network].vn().spec.VRF, Vif: FabricVif,
			SrcMAC: net.HardwareAddr(a.fab.mac[:]).String(), Encap: t.kind.String(), Node: t.node.String(), Refs: refs[t.nh]}
		if t.mac != ([6]byte{}) {
			h.DstMAC = net.HardwareAddr(t.mac[:]).String()
		}
		switch t.kind {
		case encap.VXLAN:
			h.VNI = t.label
		case encap.MPLSoUDP:
			h.Label = t.label
		default:
			h.Encap = ""
		}
		out[t.nh] = h
	}
	return out
}

// DropStats sums the drop counters of every poller, the kernel's counts
// for xvr's sockets included; every reason is listed.
func (a *Agent) DropStats(ctx context.Context) []api.DropStat {
	var sum [dataplane.NumReasons]uint64
	for i, p := range a.cfg.Pollers {
		for r := range sum {
			sum[r] += p.DropStats()[r].Load()
		}
		if err := p.KernelDrops(ctx, &sum); err != nil {
			a.cfg.Log.Warn("reading kernel drop counters", "poller", i, "err", err)
		}
	}
	out := make([]api.DropStat, 0, dataplane.NumReasons-1)
	for r := dataplane.Reason(1); r < dataplane.NumReasons; r++ {
		out = append(out, api.DropStat{Reason: r.String(), Count: sum[r]})
	}
	return out
}

// Flows lists the flow table, both entries of every flow (TF's `flow -l`).
func (a *Agent) Flows(context.Context) []api.Flow {
	out := []api.Flow{}
	if a.cfg.Flows == nil {
		return out
	}
	s := a.cfg.Current.Load()
	now := uint32(time.Now().Unix())
	a.cfg.Flows.Flows(func(f flowtable.FlowInfo) bool {
		out = append(out, flowEntry(s, f.Fwd, f.Rev.Index, now, &f.Fwd.Action), flowEntry(s, f.Rev, f.Fwd.Index, now, &f.Fwd.Action))
		return len(out) < 100000 // bounded: the API answers at most this many
	})
	return out
}

// flowEntry is one entry of a flow; decided is the flow's forward action,
// which holds its policy decision for both entries.
func flowEntry(s *dataplane.Snapshot, e flowtable.EntryInfo, rev, now uint32, decided *flowtable.Action) api.Flow {
	k := e.Key
	f := api.Flow{Index: e.Index, RevIndex: rev, VRF: k.VRF, Proto: k.Proto,
		Src:    netip.AddrPortFrom(netip.AddrFrom4(k.Src), k.SrcPort).String(),
		Dst:    netip.AddrPortFrom(netip.AddrFrom4(k.Dst), k.DstPort).String(),
		Action: e.Action.Kind.String(), Packets: e.Packets, Bytes: e.Bytes, Closed: e.Closed}
	if s != nil {
		f.Verdict, f.Policy = dataplane.FlowPolicy(s, *decided)
	}
	if now > e.LastSeen {
		f.AgeSecs = now - e.LastSeen
	}
	if e.Action.Kind == flowtable.NATSrc || e.Action.Kind == flowtable.NATDst {
		f.NAT = netip.AddrPortFrom(netip.AddrFrom4(e.Action.IP), e.Action.Port).String()
	}
	return f
}
