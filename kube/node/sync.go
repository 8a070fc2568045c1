package node

import (
	"context"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/vrouter/api"
)

// sync makes the agent hold what the cache says: every VirtualNetwork as a
// network, this node's ports' InstanceIPs and no others of this node, a
// route to every other node's pod address, and this node's NodePolicy. Failures are logged and retried
// by the next pass.
func (n *Node) sync(ctx context.Context) {
	var vns v1alpha1.VirtualNetworkList
	var ips v1alpha1.InstanceIPList
	var nodes corev1.NodeList
	if err := n.cache.List(ctx, &vns); err != nil {
		n.log.Error("listing virtual networks from the cache", "err", err)
		return
	}
	if err := n.cache.List(ctx, &ips); err != nil {
		n.log.Error("listing instance ips from the cache", "err", err)
		return
	}
	if err := n.cache.List(ctx, &nodes); err != nil {
		n.log.Error("listing nodes from the cache", "err", err)
		return
	}
	n.syncNetworks(ctx, vns.Items)
	n.syncClaims(ctx, ips.Items) // lists ports after the claims were listed: see syncClaims
	n.syncRoutes(ctx, vns.Items, ips.Items, nodes.Items)
	n.syncPolicies(ctx)
}

// networkOf is the agent's network for a VirtualNetwork.
func networkOf(vn *v1alpha1.VirtualNetwork) api.Network {
	out := api.Network{Namespace: vn.Namespace, Name: vn.Name, CIDR: vn.Spec.CIDR, FabricForwarding: vn.Spec.FabricForwarding,
		FabricSNAT: vn.Spec.FabricSNAT, HostAccess: vn.Spec.HostAccess, CNIType: vn.Spec.CNIType, VNI: vn.Spec.VNI}
	if r := vn.Spec.Ref; r != nil {
		out.Ref = &api.NetworkRef{Domain: r.Domain, Project: r.Project, Name: r.Name}
	}
	return out
}

// syncNetworks applies every VN (those owning an address space first, so
// references resolve) and deletes the agent's networks the cluster no
// longer has (refused while ports use them; retried).
func (n *Node) syncNetworks(ctx context.Context, vns []v1alpha1.VirtualNetwork) {
	sort.SliceStable(vns, func(i, j int) bool { return vns[i].Spec.Ref == nil && vns[j].Spec.Ref != nil })
	want := map[string]bool{}
	for i := range vns {
		want[vns[i].Key()] = true
		if _, err := n.b.ApplyNetwork(ctx, networkOf(&vns[i])); err != nil {
			n.log.Warn("applying virtual network", "network", vns[i].Key(), "err", err)
		}
	}
	have := n.b.ListNetworks(ctx)
	// References before their targets, so the targets can go.
	sort.SliceStable(have, func(i, j int) bool { return have[i].Ref != nil && have[j].Ref == nil })
	for _, h := range have {
		if want[h.Key()] {
			continue
		}
		if err := n.b.DeleteNetwork(ctx, h.Namespace, h.Name); err != nil && !api.IsNotFound(err) {
			n.log.Warn("deleting a network the cluster no longer has", "network", h.Key(), "err", err)
		} else if err == nil {
			n.log.Info("network deleted: gone from the cluster", "network", h.Key())
		}
	}
}

// syncClaims makes this node's InstanceIPs match its ports: a claim of this
// node whose port is gone (a DEL while the API server was unreachable, a
// crash between claim and store) is deleted; a port without one gets it.
//
// The claims were listed before the ports' are: a claim made by an
// ApplyPort still running is then in the list only if that ApplyPort holds
// the agent's lock, and Claims waits for it, so its port is seen.
func (n *Node) syncClaims(ctx context.Context, ips []v1alpha1.InstanceIP) {
	local := map[string]bool{} // InstanceIP names of the local ports
	for _, c := range n.b.Claims() {
		name := v1alpha1.InstanceIPName(c.Network, c.IP)
		local[name] = true
		if !n.isClaimed(name) && !n.isPending(name) {
			if err := n.Claim(ctx, c); err != nil {
				n.log.Error("port without its instance ip could not claim it", "port", c.Port.ID, "ip", c.IP, "err", err)
			}
		}
	}
	for i := range ips {
		ip := &ips[i]
		if ip.Spec.Node == n.cfg.Name && !local[ip.Name] && !n.isPending(ip.Name) {
			n.log.Info("instance ip of no local port: releasing", "instanceip", ip.Name, "port", ip.Spec.Port)
			n.mu.Lock()
			n.pending[ip.Name] = claimKey{port: ip.Spec.Port, node: n.cfg.Name}
			n.mu.Unlock()
			n.schedRelease()
		}
	}
}

func (n *Node) schedRelease() {
	select {
	case n.relKick <- struct{}{}:
	default:
	}
}

// isClaimed reports whether the cache (or a claim made since) has the InstanceIP.
func (n *Node) isClaimed(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.taken[name]
	return ok
}

// syncRoutes programs a route to every pod address on another live node,
// and removes the learned routes nothing calls for any more. Without a
// fabric there is nowhere to route to.
func (n *Node) syncRoutes(ctx context.Context, vns []v1alpha1.VirtualNetwork, ips []v1alpha1.InstanceIP, nodes []corev1.Node) {
	if n.cfg.NodeIP == "" {
		return
	}
	want := desiredRoutes(n.cfg.Name, vns, ips, nodes)
	have := map[string]api.Route{}
	for _, r := range n.b.ListRoutes(ctx) {
		if r.Source == api.RouteSourceKube {
			have[r.Network+"|"+r.Prefix] = r
		}
	}
	for k, r := range want {
		if h, ok := have[k]; ok && sameRoute(h, r) {
			continue
		}
		if _, err := n.b.ApplyRoute(ctx, r); err != nil {
			n.log.Warn("applying a learned route", "network", r.Network, "prefix", r.Prefix, "node", r.NextHop.Node, "err", err)
		}
	}
	for k, h := range have {
		if _, ok := want[k]; ok {
			continue
		}
		if err := n.b.DeleteRoute(ctx, h.Network, h.Prefix); err != nil && !api.IsNotFound(err) {
			n.log.Warn("deleting a learned route", "network", h.Network, "prefix", h.Prefix, "err", err)
		}
	}
}

// desiredRoutes is one /32 per InstanceIP of another node that exists:
// a tunnel route with that node's label and the VN's VNI, or a fabric
// route for VNs with fabric forwarding.
func desiredRoutes(self string, vns []v1alpha1.VirtualNetwork, ips []v1alpha1.InstanceIP, nodes []corev1.Node) map[string]api.Route {
	vnByKey := map[string]*v1alpha1.VirtualNetwork{}
	for i := range vns {
		vnByKey[vns[i].Key()] = &vns[i]
	}
	alive := map[string]bool{}
	for i := range nodes {
		if nodes[i].DeletionTimestamp == nil {
			alive[nodes[i].Name] = true
		}
	}
	out := map[string]api.Route{}
	for i := range ips {
		s := &ips[i].Spec
		vn := vnByKey[s.Network]
		ip, err := s.ParseIP()
		if s.Node == self || !alive[s.Node] || vn == nil || err != nil || s.NodeIP == "" {
			continue
		}
		r := api.Route{Network: s.Network, Prefix: netip.PrefixFrom(ip, 32).String(), Source: api.RouteSourceKube,
			NextHop: api.RouteNextHop{Type: api.NextHopTunnel, Node: s.NodeIP, Label: s.Label, VNI: vn.Spec.VNI}}
		if vn.Spec.FabricForwarding {
			r.NextHop = api.RouteNextHop{Type: api.NextHopFabric, Node: s.NodeIP}
		}
		out[r.Network+"|"+r.Prefix] = r
	}
	return out
}

func sameRoute(a, b api.Route) bool {
	return a.Network == b.Network && a.Prefix == b.Prefix && a.Source == b.Source &&
		a.NextHop.Type == b.NextHop.Type && a.NextHop.Node == b.NextHop.Node &&
		a.NextHop.Label == b.NextHop.Label && a.NextHop.VNI == b.NextHop.VNI
}
