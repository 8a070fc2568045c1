// Package apitest provides an in-memory api.Backend and a helper that serves
// it on a unix socket, for tests of the API server and of its clients
// (xvrctl, the CNI) that need no forwarder and no root.
//
// Only tests may import it. The fake validates like xvrd should (CIDR,
// network existence, IP inside the CIDR, conflicts) but forwards nothing;
// its introspection answers are derived from the ports and routes it holds.
package apitest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/xvr-project/xvr/nad"
	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/api"
)

// Backend is an in-memory api.Backend. The zero value is not usable; call
// NewBackend. It is safe for concurrent use.
type Backend struct {
	mu       sync.Mutex
	networks map[string]api.Network
	ports    map[string]api.Port
	routes   map[string]api.Route
	nextVRF  uint32
	nextVif  uint32

	failFn func(method string) error
	panics bool
	drops  []api.DropStat
	pods   map[string]api.Pod
	flows  []api.Flow
	pol    api.Policies

	// Published lists the pods ("namespace/name") whose network-status
	// PublishNetworkStatus answered, in call order.
	Published []string
}

// SetFail makes every method that can fail call f first with its name
// ("ApplyNetwork", ...) and return a non-nil result as its error; nil undoes it.
func (b *Backend) SetFail(f func(method string) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failFn = f
}

// SetPanic makes every method that can fail panic, to test the server's recovery.
func (b *Backend) SetPanic(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.panics = on
}

// SetDrops sets what DropStats returns.
func (b *Backend) SetDrops(d []api.DropStat) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drops = append([]api.DropStat(nil), d...)
}

var _ api.Backend = (*Backend)(nil)

// NewBackend returns an empty fake backend.
func NewBackend() *Backend {
	return &Backend{
		networks: map[string]api.Network{},
		ports:    map[string]api.Port{},
		routes:   map[string]api.Route{},
		nextVRF:  1,
		nextVif:  1,
	}
}

// Serve serves b on a fresh unix socket in t.TempDir() until the test ends
// and returns the socket's path.
func Serve(t testing.TB, b api.Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "xvrd.sock")
	l, err := api.Listen(sock)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: api.NewServer(b, slog.New(slog.DiscardHandler))}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return sock
}

func (b *Backend) fail(method string) error {
	b.mu.Lock()
	f, panics := b.failFn, b.panics
	b.mu.Unlock()
	if panics {
		panic("apitest: panic requested in " + method)
	}
	if f != nil {
		return f(method)
	}
	return nil
}

// Status implements api.Backend.
func (b *Backend) Status(context.Context) api.Status {
	return api.Status{Version: "test", Pollers: 1, MAC: "02:00:00:00:00:01", Uptime: "1s"}
}

// ApplyNetwork implements api.Backend.
func (b *Backend) ApplyNetwork(_ context.Context, n api.Network) (api.Network, error) {
	if err := b.fail("ApplyNetwork"); err != nil {
		return api.Network{}, err
	}
	if n.Namespace == "" || n.Name == "" {
		return api.Network{}, api.BadRequest("network namespace and name are required")
	}
	if err := b.fillNetwork(&n); err != nil {
		return api.Network{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.networks[n.Key()]; ok {
		if old.CIDR != n.CIDR {
			return api.Network{}, api.Conflict("network %s exists with cidr %s", n.Key(), old.CIDR)
		}
		n.VRF = old.VRF
	} else if n.Ref == nil {
		n.VRF = b.nextVRF
		b.nextVRF++
	}
	if n.Ref != nil { // like xvrd: a reference shares its target's VRF
		for _, t := range b.networks {
			if t.Ref == nil && t.VNName == n.Ref.Name && t.Project == n.Ref.Project {
				n.VRF, n.Gateway, n.DNS = t.VRF, t.Gateway, t.DNS
			}
		}
	}
	b.networks[n.Key()] = n
	return n, nil
}

// fillNetwork validates n and sets the fields xvrd sets.
func (b *Backend) fillNetwork(n *api.Network) error {
	n.VNName, n.Project = nad.ContrailNames(nad.DefaultCluster, n.Namespace, n.Name) // a reference's own, as xvrd
	if n.Ref != nil {
		return nil
	}
	p, err := netip.ParsePrefix(n.CIDR)
	if err != nil {
		return api.BadRequest("network %s: cidr: %v", n.Key(), err)
	}
	gw, dns, err := nad.Gateway(p)
	if err != nil {
		return api.BadRequest("network %s: cidr: %v", n.Key(), err)
	}
	n.CIDR = p.Masked().String()
	n.Gateway, n.DNS = gw.String(), dns.String()
	return nil
}

// DeleteNetwork implements api.Backend.
func (b *Backend) DeleteNetwork(_ context.Context, namespace, name string) error {
	if err := b.fail("DeleteNetwork"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key := namespace + "/" + name
	if _, ok := b.networks[key]; !ok {
		return api.NotFound("network %s not found", key)
	}
	for _, p := range b.ports {
		if p.Network == key {
			return api.Conflict("network %s has port %s", key, p.ID)
		}
	}
	delete(b.networks, key)
	return nil
}

// GetNetwork implements api.Backend.
func (b *Backend) GetNetwork(_ context.Context, namespace, name string) (api.Network, error) {
	if err := b.fail("GetNetwork"); err != nil {
		return api.Network{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.networks[namespace+"/"+name]
	if !ok {
		return api.Network{}, api.NotFound("network %s/%s not found", namespace, name)
	}
	return n, nil
}

// ListNetworks implements api.Backend.
func (b *Backend) ListNetworks(context.Context) []api.Network {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sorted(b.networks)
}

// ApplyPort implements api.Backend.
func (b *Backend) ApplyPort(_ context.Context, p api.Port) (api.Port, error) {
	if err := b.fail("ApplyPort"); err != nil {
		return api.Port{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.checkPort(p); err != nil {
		return api.Port{}, err
	}
	if old, ok := b.ports[p.ID]; ok {
		p.Vif = old.Vif
	} else {
		p.Vif = b.nextVif
		b.nextVif++
	}
	p.State = "up"
	b.ports[p.ID] = p
	return p, nil
}

func (b *Backend) checkPort(p api.Port) error {
	if p.ID == "" || p.HostIfName == "" {
		return api.BadRequest("port id and hostIfName are required")
	}
	n, ok := b.networks[p.Network]
	if !ok {
		return api.NotFound("port %s: network %q not found", p.ID, p.Network)
	}
	ip, err := netip.ParseAddr(p.IP)
	if err != nil {
		return api.BadRequest("port %s: ip: %v", p.ID, err)
	}
	if pfx, err := netip.ParsePrefix(n.CIDR); err == nil && !pfx.Contains(ip) {
		return api.BadRequest("port %s: ip %s is not in %s", p.ID, ip, n.CIDR)
	}
	if _, err := net.ParseMAC(p.MAC); err != nil {
		return api.BadRequest("port %s: mac: %v", p.ID, err)
	}
	for _, o := range b.ports {
		if o.ID != p.ID && o.Network == p.Network && o.IP == p.IP {
			return api.Conflict("port %s: ip %s is used by port %s", p.ID, p.IP, o.ID)
		}
	}
	return nil
}

// DeletePort implements api.Backend.
func (b *Backend) DeletePort(_ context.Context, id string) error {
	if err := b.fail("DeletePort"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.ports[id]; !ok {
		return api.NotFound("port %s not found", id)
	}
	delete(b.ports, id)
	return nil
}

// GetPort implements api.Backend.
func (b *Backend) GetPort(_ context.Context, id string) (api.Port, error) {
	if err := b.fail("GetPort"); err != nil {
		return api.Port{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.ports[id]
	if !ok {
		return api.Port{}, api.NotFound("port %s not found", id)
	}
	return p, nil
}

// ListPorts implements api.Backend.
func (b *Backend) ListPorts(context.Context) []api.Port {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sorted(b.ports)
}

// ApplyRoute implements api.Backend.
func (b *Backend) ApplyRoute(_ context.Context, r api.Route) (api.Route, error) {
	if err := b.fail("ApplyRoute"); err != nil {
		return api.Route{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.networks[r.Network]; !ok {
		return api.Route{}, api.NotFound("route: network %q not found", r.Network)
	}
	p, err := netip.ParsePrefix(r.Prefix)
	if err != nil || !p.Addr().Is4() {
		return api.Route{}, api.BadRequest("route: prefix %q is not an IPv4 prefix", r.Prefix)
	}
	r.Prefix = p.Masked().String()
	if err := b.checkNextHop(r.NextHop); err != nil {
		return api.Route{}, err
	}
	b.routes[r.Network+"|"+r.Prefix] = r
	return r, nil
}

func (b *Backend) checkNextHop(nh api.RouteNextHop) error {
	switch nh.Type {
	case api.NextHopDiscard:
		return nil
	case api.NextHopPort:
		if _, ok := b.ports[nh.Port]; !ok {
			return api.NotFound("route: port %q not found", nh.Port)
		}
		return nil
	default:
		return api.BadRequest("route: next hop type %q is not port or discard", nh.Type)
	}
}

// DeleteRoute implements api.Backend.
func (b *Backend) DeleteRoute(_ context.Context, network, prefix string) error {
	if err := b.fail("DeleteRoute"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key := network + "|" + prefix
	if _, ok := b.routes[key]; !ok {
		return api.NotFound("route %s in %s not found", prefix, network)
	}
	delete(b.routes, key)
	return nil
}

// ListRoutes implements api.Backend.
func (b *Backend) ListRoutes(context.Context) []api.Route {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sorted(b.routes)
}

// Vifs implements api.Backend: vif 0 is the fabric, then one per port with
// counters derived from its vif number.
func (b *Backend) Vifs(context.Context) []api.Vif {
	b.mu.Lock()
	defer b.mu.Unlock()
	vifs := []api.Vif{{ID: 0, Name: "eth0", Type: "fabric", State: "up", MAC: "02:00:00:00:00:01"}}
	for _, p := range sorted(b.ports) {
		n := b.networks[p.Network]
		c := uint64(p.Vif)
		vifs = append(vifs, api.Vif{
			ID: p.Vif, Name: p.HostIfName, Type: api.VifVirtual, Port: p.ID, Network: p.Network,
			VN: n.VNName, VRF: n.VRF, MAC: p.MAC, IP: p.IP, State: p.State,
			RXPackets: 10 * c, RXBytes: 1000 * c, TXPackets: 20 * c, TXBytes: 2000 * c, Drops: c, ShortcutPackets: 30 * c, ShortcutBytes: 3000 * c,
		})
	}
	return vifs
}

// RouteTable implements api.Backend: a /32 per local port, the gateway as
// receive, and the static routes.
func (b *Backend) RouteTable(_ context.Context, network string) ([]api.RouteEntry, error) {
	if err := b.fail("RouteTable"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.networks[network]
	if !ok {
		return nil, api.NotFound("network %s not found", network)
	}
	var rt []api.RouteEntry
	if n.Gateway != "" {
		rt = append(rt, api.RouteEntry{Prefix: n.Gateway + "/32", NextHop: 1, Type: api.NextHopReceive})
	}
	for _, p := range sorted(b.ports) {
		if p.Network == network {
			rt = append(rt, api.RouteEntry{Prefix: p.IP + "/32", NextHop: 10 + p.Vif, Type: api.NextHopEncap, Vif: p.Vif})
		}
	}
	for _, r := range sorted(b.routes) {
		if r.Network == network {
			rt = append(rt, b.staticEntry(r))
		}
	}
	return rt, nil
}

func (b *Backend) staticEntry(r api.Route) api.RouteEntry {
	if r.NextHop.Type == api.NextHopDiscard {
		return api.RouteEntry{Prefix: r.Prefix, NextHop: 0, Type: api.NextHopDiscard, Static: true}
	}
	vif := b.ports[r.NextHop.Port].Vif
	return api.RouteEntry{Prefix: r.Prefix, NextHop: 10 + vif, Type: api.NextHopEncap, Vif: vif, Static: true}
}

// NextHops implements api.Backend: discard (0), receive (1) and one encap
// next hop per port (10+vif).
func (b *Backend) NextHops(context.Context) []api.NextHop {
	b.mu.Lock()
	defer b.mu.Unlock()
	nhs := []api.NextHop{{ID: 0, Type: api.NextHopDiscard, Refs: 1}, {ID: 1, Type: api.NextHopReceive, Refs: 1}}
	for _, p := range sorted(b.ports) {
		nhs = append(nhs, api.NextHop{
			ID: 10 + p.Vif, Type: api.NextHopEncap, VRF: b.networks[p.Network].VRF, Vif: p.Vif,
			SrcMAC: "02:00:00:00:00:01", DstMAC: p.MAC, Refs: 1,
		})
	}
	return nhs
}

// DropStats implements api.Backend.
func (b *Backend) DropStats(context.Context) []api.DropStat {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]api.DropStat(nil), b.drops...)
}

// sorted returns m's values ordered by key.
func sorted[V any](m map[string]V) []V {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]V, 0, len(keys))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

// ApplyPod implements api.Backend.
func (b *Backend) ApplyPod(_ context.Context, p api.Pod) (api.Pod, error) {
	if err := b.fail("ApplyPod"); err != nil {
		return api.Pod{}, err
	}
	if p.Namespace == "" || p.Name == "" {
		return api.Pod{}, api.BadRequest("pod namespace and name are required")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pods == nil {
		b.pods = map[string]api.Pod{}
	}
	b.pods[p.Key()] = p
	return p, nil
}

// DeletePod implements api.Backend.
func (b *Backend) DeletePod(_ context.Context, namespace, name string) error {
	if err := b.fail("DeletePod"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.pods[namespace+"/"+name]; !ok {
		return api.NotFound("pod %s/%s not found", namespace, name)
	}
	delete(b.pods, namespace+"/"+name)
	return nil
}

// GetPod implements api.Backend.
func (b *Backend) GetPod(_ context.Context, namespace, name string) (api.Pod, error) {
	if err := b.fail("GetPod"); err != nil {
		return api.Pod{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.pods[namespace+"/"+name]
	if !ok {
		return api.Pod{}, api.NotFound("pod %s/%s not found", namespace, name)
	}
	return p, nil
}

// ListPods implements api.Backend.
func (b *Backend) ListPods(context.Context) []api.Pod {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]api.Pod, 0, len(b.pods))
	for _, p := range b.pods {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// PublishNetworkStatus implements api.Backend: PodNetworkStatus, recorded
// in Published.
func (b *Backend) PublishNetworkStatus(ctx context.Context, namespace, name string) ([]api.NetworkStatus, error) {
	if err := b.fail("PublishNetworkStatus"); err != nil {
		return nil, err
	}
	st, err := b.PodNetworkStatus(ctx, namespace, name)
	if err == nil {
		b.mu.Lock()
		b.Published = append(b.Published, namespace+"/"+name)
		b.mu.Unlock()
	}
	return st, err
}

// PodNetworkStatus implements api.Backend: the pod's ports in index order.
func (b *Backend) PodNetworkStatus(_ context.Context, namespace, name string) ([]api.NetworkStatus, error) {
	if err := b.fail("PodNetworkStatus"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var ports []api.Port
	for _, p := range b.ports {
		if p.Pod != nil && p.Pod.Namespace == namespace && p.Pod.Name == name {
			ports = append(ports, p)
		}
	}
	if len(ports) == 0 {
		return nil, api.NotFound("pod %s/%s has no interfaces", namespace, name)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].Index < ports[j].Index })
	out := make([]api.NetworkStatus, 0, len(ports))
	for _, p := range ports {
		out = append(out, api.NetworkStatus{Name: p.Network, Interface: p.IfName, IPs: []string{p.IP}, Mac: p.MAC,
			Default: p.Index == 0})
	}
	return out, nil
}

// GC implements api.Backend.
func (b *Backend) GC(_ context.Context, req api.GCRequest) (api.GCResult, error) {
	if err := b.fail("GC"); err != nil {
		return api.GCResult{}, err
	}
	valid := map[string]bool{}
	for _, v := range req.ValidAttachments {
		valid[v.ContainerID] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	res := api.GCResult{Removed: []string{}}
	for id, p := range b.ports {
		if p.ContainerID != "" && !valid[p.ContainerID] {
			delete(b.ports, id)
			res.Removed = append(res.Removed, id)
		}
	}
	sort.Strings(res.Removed)
	return res, nil
}

// SetFlows sets what Flows returns.
func (b *Backend) SetFlows(f []api.Flow) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flows = append([]api.Flow(nil), f...)
}

// Flows implements api.Backend: the flows set by SetFlows.
func (b *Backend) Flows(context.Context) []api.Flow {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]api.Flow{}, b.flows...)
}

// SetPolicies implements api.Backend: every entry must compile, as xvrd's.
func (b *Backend) SetPolicies(_ context.Context, p api.Policies) error {
	if err := b.fail("SetPolicies"); err != nil {
		return err
	}
	for i, e := range p.Interfaces {
		if _, err := policy.Compile(&e.Policy); err != nil {
			return api.BadRequest("interfaces[%d] (pod %s/%s network %s): %v", i, e.Pod.Namespace, e.Pod.Name, e.Network, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pol = p
	return nil
}

// Policies implements api.Backend.
func (b *Backend) Policies(context.Context) api.Policies {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pol
}
