package agent

import (
	"context"
	"net/http"
	"net/netip"
	"reflect"
	"sort"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
	"github.com/xvr-project/xvr/vrouter/route"
)

func routeKey(network, prefix string) string { return network + "|" + prefix }

// ApplyRoute adds or replaces a static route in a network (idempotent).
func (a *Agent) ApplyRoute(ctx context.Context, in api.Route) (api.Route, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, n, t, err := a.validateRoute(in)
	if err != nil {
		return api.Route{}, err
	}
	key := routeKey(r.Network, r.Prefix)
	if old, ok := a.routes[key]; ok && reflect.DeepEqual(old, r) {
		return r, nil
	}
	if err := a.cfg.Store.PutRoute(r); err != nil {
		return api.Route{}, api.Errorf(http.StatusInternalServerError, "persisting route %s in %s: %v", r.Prefix, r.Network, err)
	}
	a.installRoute(r, n, t)
	a.cfg.Log.Info("route applied", "network", r.Network, "prefix", r.Prefix, "nexthop", r.NextHop.Type, "port", r.NextHop.Port)
	return r, nil
}

func (a *Agent) validateRoute(in api.Route) (api.Route, *network, *tunnel, error) {
	r, n, err := a.validateRouteBase(in)
	if err != nil || (r.NextHop.Type != api.NextHopTunnel && r.NextHop.Type != api.NextHopFabric) {
		return r, n, nil, err
	}
	t, err := a.validateTunnel(&r, n.vn())
	return r, n, t, err
}

// installRoute puts a validated route in place: its tunnel next hop (the
// old one's id reused), the table entry, and a new snapshot for tunnels.
func (a *Agent) installRoute(r api.Route, n *network, t *tunnel) {
	key := routeKey(r.Network, r.Prefix)
	if old := a.tunnels[key]; old != nil && t != nil {
		t.nh = old.nh
	} else if old != nil {
		a.dropTunnel(key)
	} else if t != nil {
		t.nh = a.nhs.next()
	}
	if t != nil {
		a.tunnels[key] = t
		a.resolveNow(t)
	}
	a.routes[key] = r
	a.publish()
	a.setRoute(n.vn(), netip.MustParsePrefix(r.Prefix), a.staticNH(r))
	// The shortcut reads routes from the table, which has the route only
	// now (after the snapshot that holds its next hop).
	a.publishShortcuts(a.cfg.Current.Load())
}

// dropTunnel forgets the tunnel next hop of a route, if it had one.
func (a *Agent) dropTunnel(key string) {
	if t := a.tunnels[key]; t != nil {
		delete(a.tunnels, key)
		a.nhs.release(t.nh)
	}
}

func (a *Agent) validateRouteBase(in api.Route) (api.Route, *network, error) {
	n := a.nets[in.Network]
	if n == nil {
		return api.Route{}, nil, api.NotFound("route: network %q not found", in.Network)
	}
	pfx, err := netip.ParsePrefix(in.Prefix)
	if err != nil || !pfx.Addr().Is4() {
		return api.Route{}, nil, api.BadRequest("route: prefix %q is not an IPv4 prefix", in.Prefix)
	}
	pfx = pfx.Masked()
	vn := n.vn()
	if pfx.Bits() == 32 && (pfx.Addr() == vn.gw || pfx.Addr() == vn.dns) {
		return api.Route{}, nil, api.Conflict("route: %s is the network's gateway or DNS address", pfx)
	}
	for _, p := range a.ports {
		if p.net.vn() == vn && pfx == netip.PrefixFrom(p.ip, 32) {
			return api.Route{}, nil, api.Conflict("route: %s is port %s's address", pfx, p.spec.ID)
		}
	}
	if in.Source != "" && in.Source != api.RouteSourceKube {
		return api.Route{}, nil, api.BadRequest("route: source %q is not empty or %q", in.Source, api.RouteSourceKube)
	}
	r := api.Route{Network: in.Network, Prefix: pfx.String(), NextHop: in.NextHop, Source: in.Source}
	switch in.NextHop.Type {
	case api.NextHopDiscard:
		r.NextHop.Port = ""
	case api.NextHopPort:
		p := a.ports[in.NextHop.Port]
		if p == nil {
			return api.Route{}, nil, api.NotFound("route: port %q not found", in.NextHop.Port)
		}
		if p.net.vn() != vn {
			return api.Route{}, nil, api.BadRequest("route: port %s is on network %s, not %s", p.spec.ID, p.spec.Network, in.Network)
		}
	case api.NextHopTunnel, api.NextHopFabric: // validateTunnel
	default:
		return api.Route{}, nil, api.BadRequest("route: next hop type %q is not %q, %q or %q",
			in.NextHop.Type, api.NextHopPort, api.NextHopTunnel, api.NextHopDiscard)
	}
	return r, n, nil
}

// staticNH is the next hop id a static route resolves to now: its port's, or
// discard while the port is missing.
func (a *Agent) staticNH(r api.Route) uint32 {
	if t := a.tunnels[routeKey(r.Network, r.Prefix)]; t != nil {
		return t.nh
	}
	if r.NextHop.Type == api.NextHopPort {
		if p := a.ports[r.NextHop.Port]; p != nil {
			return p.nh
		}
	}
	return dataplane.NHIDDiscard
}

// repointStatic re-resolves the static routes through port id after it came or went.
func (a *Agent) repointStatic(id string) {
	for _, r := range a.routes {
		if r.NextHop.Type == api.NextHopPort && r.NextHop.Port == id {
			a.setRoute(a.nets[r.Network].vn(), netip.MustParsePrefix(r.Prefix), a.staticNH(r))
		}
	}
}

// DeleteRoute removes a static route.
func (a *Agent) DeleteRoute(ctx context.Context, network, prefix string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	pfx, err := netip.ParsePrefix(prefix)
	if err != nil {
		return api.BadRequest("route: prefix %q is not an IPv4 prefix", prefix)
	}
	key := routeKey(network, pfx.Masked().String())
	r, ok := a.routes[key]
	if !ok {
		return api.NotFound("route %s in network %s not found", prefix, network)
	}
	if err := a.cfg.Store.DeleteRoute(r.Network, r.Prefix); err != nil {
		return api.Errorf(http.StatusInternalServerError, "deleting route %s from the store: %v", r.Prefix, err)
	}
	delete(a.routes, key)
	a.delRoute(a.nets[network].vn(), pfx.Masked())
	a.dropTunnel(key)
	a.publish()
	return nil
}

// dropLearned forgets the learned routes of vn for prefix p, which a local
// port now holds (the cluster's news of the address's old owner may lag).
// The table entry is the caller's to set.
func (a *Agent) dropLearned(vn *network, p netip.Prefix) {
	for key, r := range a.routes {
		if r.Source != api.RouteSourceKube || r.Prefix != p.String() || a.nets[r.Network].vn() != vn {
			continue
		}
		if err := a.cfg.Store.DeleteRoute(r.Network, r.Prefix); err != nil {
			a.cfg.Log.Error("deleting a learned route from the store", "network", r.Network, "prefix", r.Prefix, "err", err)
		}
		delete(a.routes, key)
		a.dropTunnel(key)
		a.cfg.Log.Info("learned route replaced by a local port", "network", r.Network, "prefix", r.Prefix)
	}
}

// ListRoutes returns the static routes, sorted.
func (a *Agent) ListRoutes(context.Context) []api.Route {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]api.Route, 0, len(a.routes))
	for _, r := range a.routes {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		return routeKey(out[i].Network, out[i].Prefix) < routeKey(out[j].Network, out[j].Prefix)
	})
	return out
}

// setRoute and delRoute change one prefix of a VN's table (published at once).
func (a *Agent) setRoute(vn *network, p netip.Prefix, nh uint32) {
	if err := a.tables.Ensure(vn.spec.VRF).Insert(p, nh); err != nil {
		a.cfg.Log.Error("route table insert", "vrf", vn.spec.VRF, "prefix", p, "err", err)
	}
}

func (a *Agent) delRoute(vn *network, p netip.Prefix) {
	if t := a.tables.Get(vn.spec.VRF); t != nil {
		if _, err := t.Delete(p); err != nil {
			a.cfg.Log.Error("route table delete", "vrf", vn.spec.VRF, "prefix", p, "err", err)
		}
	}
}

// rebuildTable makes vn's table hold exactly the routes its state implies,
// changing only what differs, in one published batch.
func (a *Agent) rebuildTable(vn *network) {
	want := map[netip.Prefix]uint32{
		netip.PrefixFrom(vn.gw, 32):  dataplane.NHIDReceive,
		netip.PrefixFrom(vn.dns, 32): dataplane.NHIDReceive,
	}
	for _, p := range a.ports {
		if p.net.vn() == vn {
			want[netip.PrefixFrom(p.ip, 32)] = p.nh
		}
	}
	if vn.spec.FabricSNAT && a.snatting() {
		want[netip.PrefixFrom(netip.IPv4Unspecified(), 0)] = a.fab.snatNH // static routes may override it
	}
	if h := a.ports[HostPortID]; h != nil && h.net.vn() == vn {
		want[netip.PrefixFrom(netip.IPv4Unspecified(), 0)] = h.nh // to the node's kernel, before fabric SNAT
	} else if h != nil && vn.spec.HostAccess {
		want[netip.PrefixFrom(h.ip, 32)] = h.nh // the VN's pods answer the kernel
	}
	for _, r := range a.routes {
		if a.nets[r.Network].vn() == vn {
			want[netip.MustParsePrefix(r.Prefix)] = a.staticNH(r)
		}
	}
	t := a.tables.Ensure(vn.spec.VRF)
	var changes []route.Change
	for p, nh := range t.All() {
		if w, ok := want[p]; !ok {
			changes = append(changes, route.Change{Prefix: p, Delete: true})
		} else if w == nh {
			delete(want, p)
		}
	}
	for p, nh := range want {
		changes = append(changes, route.Change{Prefix: p, NextHop: nh})
	}
	if err := t.Apply(changes); err != nil {
		a.cfg.Log.Error("route table rebuild", "vrf", vn.spec.VRF, "err", err)
	}
}
