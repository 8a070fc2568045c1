package agent

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"sort"
	"strings"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
)

// ApplyPort attaches a pod veth to a network (idempotent). A port whose
// device cannot be opened yet is kept with State "down: <reason>" and
// retried by Reconcile. Re-applying an unchanged port reopens it when its
// device is not the one its sockets are on (see refreshPort).
func (a *Agent) ApplyPort(ctx context.Context, in api.Port) (api.Port, error) {
	if in.ID == HostPortID {
		return api.Port{}, api.BadRequest("port id %q is reserved for the node's host interface", in.ID)
	}
	return a.applyPort(ctx, in)
}

func (a *Agent) applyPort(ctx context.Context, in api.Port) (api.Port, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.ports[in.ID]
	p, err := a.validatePort(in, old)
	if err != nil {
		return api.Port{}, err
	}
	if old != nil && samePort(old.spec, p.spec) {
		a.refreshPort(ctx, old)
		return old.view(), nil
	}
	kept := old != nil && old.net.vn() == p.net.vn() && old.ip == p.ip // the claim is old's
	if err := a.claim(ctx, p, in.IP == "" && !kept); err != nil {
		return api.Port{}, err
	}
	if old != nil {
		a.closePort(ctx, old)
		p.spec.Vif, p.nh, p.stats = old.spec.Vif, old.nh, old.stats
	} else {
		p.spec.Vif, p.nh, p.stats = a.vifs.next(), a.nhs.next(), new(dataplane.VifStats)
	}
	if err := a.cfg.Store.PutPort(p.spec); err != nil {
		if old == nil {
			a.vifs.release(p.spec.Vif)
			a.nhs.release(p.nh)
		} else {
			a.openPort(ctx, old)
		}
		if !kept {
			a.release(p)
		}
		return api.Port{}, api.Errorf(http.StatusInternalServerError, "persisting port %s: %v", in.ID, err)
	}
	if old != nil && !kept {
		a.release(old)
	}
	a.seq++
	p.seq = a.seq
	a.installPort(ctx, old, p)
	return p.view(), nil
}

func (a *Agent) installPort(ctx context.Context, old, p *port) {
	a.ports[p.spec.ID] = p
	if old != nil {
		a.delRoute(old.net.vn(), netip.PrefixFrom(old.ip, 32))
	}
	a.dropLearned(p.net.vn(), netip.PrefixFrom(p.ip, 32))
	a.setRoute(p.net.vn(), netip.PrefixFrom(p.ip, 32), p.nh)
	a.repointStatic(p.spec.ID)
	if p.spec.ID == HostPortID {
		a.rebuildHostTables(old) // its default route, the host-access VNs' route to it
	}
	a.publish()
	a.openPort(ctx, p)
	a.cfg.Log.Info("port applied", "port", p.spec.ID, "vif", p.spec.Vif, "dev", p.spec.HostIfName,
		"network", p.spec.Network, "ip", p.spec.IP, "state", p.view().State)
}

// validatePort checks in against the state and resolves it into a port (not
// yet installed): an empty IP or MAC is the existing port's, else allocated.
func (a *Agent) validatePort(in api.Port, old *port) (*port, error) {
	if in.ID == "" || len(in.ID) > 256 || strings.ContainsAny(in.ID, " \t\n") {
		return nil, api.BadRequest("port id %q must be 1-256 characters without spaces", in.ID)
	}
	if in.HostIfName == "" || len(in.HostIfName) > 15 || strings.ContainsAny(in.HostIfName, "/ \t\n:") {
		return nil, api.BadRequest("port %s: hostIfName %q is not a valid device name", in.ID, in.HostIfName)
	}
	if len(in.IfName) > 15 || len(in.ContainerID) > 256 || in.Index < 0 {
		return nil, api.BadRequest("port %s: ifName, containerID or index out of range", in.ID)
	}
	n := a.nets[in.Network]
	if n == nil {
		return nil, api.NotFound("port %s: network %q not found", in.ID, in.Network)
	}
	p := &port{spec: api.Port{ID: in.ID, Network: in.Network, HostIfName: in.HostIfName, Pod: in.Pod,
		ContainerID: in.ContainerID, IfName: in.IfName, Index: in.Index, DefaultRoute: in.DefaultRoute}, net: n}
	if old != nil && old.net.vn() == n.vn() {
		in.IP = cmp.Or(in.IP, old.spec.IP)
		in.MAC = cmp.Or(in.MAC, old.spec.MAC)
	}
	if err := a.validateAddrs(in, p); err != nil {
		return nil, err
	}
	return p, a.checkUnique(p)
}

func (a *Agent) validateAddrs(in api.Port, p *port) error {
	vn := p.net.vn()
	ip, err := a.portIP(in, vn)
	if err != nil {
		return err
	}
	if !vn.prefix.Contains(ip) || ip == vn.prefix.Addr() || ip == lastAddr(vn.prefix) || ip == vn.gw || ip == vn.dns {
		return api.BadRequest("port %s: ip %s is not a usable host address of %s (gateway %s, dns %s reserved)",
			in.ID, ip, vn.prefix, vn.gw, vn.dns)
	}
	mac, err := a.portMAC(in)
	if err != nil {
		return err
	}
	p.ip = ip
	copy(p.mac[:], mac)
	p.spec.IP, p.spec.MAC = ip.String(), mac.String()
	return nil
}

// portIP is the requested address, or the VN's lowest free one.
func (a *Agent) portIP(in api.Port, vn *network) (netip.Addr, error) {
	if in.IP == "" {
		return a.allocIP(in.ID, vn, nil)
	}
	ip, err := netip.ParseAddr(in.IP)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, api.BadRequest("port %s: ip %q is not an IPv4 address", in.ID, in.IP)
	}
	return ip, nil
}

// allocIP returns the lowest host address of vn that no port holds, skipping
// the network, broadcast, gateway and DNS addresses, those in skip and those
// the cluster's address book says other nodes hold.
// The host port takes the highest free one instead, so that it does not
// shift the addresses pods get.
func (a *Agent) allocIP(id string, vn *network, skip map[netip.Addr]bool) (netip.Addr, error) {
	used := map[netip.Addr]bool{vn.gw: true, vn.dns: true}
	for ip := range skip {
		used[ip] = true
	}
	for _, q := range a.ports {
		if q.net.vn() == vn && q.spec.ID != id {
			used[q.ip] = true
		}
	}
	first, last := vn.prefix.Addr().Next(), lastAddr(vn.prefix)
	key := vn.spec.Key()
	free := func(ip netip.Addr) bool {
		return !used[ip] && (a.cfg.Addresses == nil || !a.cfg.Addresses.Taken(key, ip))
	}
	if id == HostPortID {
		for ip := last.Prev(); ip.IsValid() && !ip.Less(first); ip = ip.Prev() {
			if free(ip) {
				return ip, nil
			}
		}
	}
	for ip := first; ip.IsValid() && ip.Less(last); ip = ip.Next() {
		if free(ip) {
			return ip, nil
		}
	}
	return netip.Addr{}, api.Conflict("port %s: network %s (%s) has no free address", id, vn.spec.Key(), vn.prefix)
}

// portMAC is the requested MAC, or a random locally administered unicast
// one that no port holds.
func (a *Agent) portMAC(in api.Port) (net.HardwareAddr, error) {
	if in.MAC != "" {
		mac, err := net.ParseMAC(in.MAC)
		if err != nil || len(mac) != 6 || mac[0]&1 == 1 || mac.String() == "00:00:00:00:00:00" {
			return nil, api.BadRequest("port %s: mac %q is not a unicast Ethernet MAC", in.ID, in.MAC)
		}
		if mac.String() == a.cfg.MAC.String() {
			return nil, api.BadRequest("port %s: mac %s is the vRouter's own", in.ID, mac)
		}
		return mac, nil
	}
	for range 16 {
		mac := make(net.HardwareAddr, 6)
		if _, err := rand.Read(mac[1:]); err != nil {
			return nil, api.Errorf(http.StatusInternalServerError, "port %s: generating a mac: %v", in.ID, err)
		}
		mac[0] = 0x02
		if !a.macUsed([6]byte(mac), in.ID) && mac.String() != a.cfg.MAC.String() {
			return mac, nil
		}
	}
	return nil, api.Errorf(http.StatusInternalServerError, "port %s: no unused mac after 16 tries", in.ID)
}

func (a *Agent) macUsed(m [6]byte, id string) bool {
	for _, q := range a.ports {
		if q.mac == m && q.spec.ID != id {
			return true
		}
	}
	return false
}

func (a *Agent) checkUnique(p *port) error {
	for _, q := range a.ports {
		if q.spec.ID == p.spec.ID {
			continue
		}
		switch {
		case q.net.vn() == p.net.vn() && q.ip == p.ip:
			return api.Conflict("port %s: ip %s is already used by port %s", p.spec.ID, p.ip, q.spec.ID)
		case q.mac == p.mac:
			return api.Conflict("port %s: mac %s is already used by port %s", p.spec.ID, p.spec.MAC, q.spec.ID)
		case q.spec.HostIfName == p.spec.HostIfName:
			return api.Conflict("port %s: device %s is already port %s", p.spec.ID, p.spec.HostIfName, q.spec.ID)
		}
	}
	return nil
}

func samePort(a, b api.Port) bool {
	a.Vif, b.Vif = 0, 0
	return reflect.DeepEqual(a, b)
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (p *port) view() api.Port {
	v := p.spec
	vn := p.net.vn()
	v.PrefixLen, v.Gateway = vn.prefix.Bits(), vn.spec.Gateway
	v.State = "up"
	if p.ifindex == 0 {
		v.State = "down: " + p.reason
	}
	return v
}

// openPort attaches the XDP program and opens one socket per poller queue.
// Failure leaves the port down with the reason; Reconcile retries.
func (a *Agent) openPort(ctx context.Context, p *port) {
	ctx = context.WithoutCancel(ctx) // half-opened ports must not be left behind by a hung-up client
	// Sockets are registered before the program is attached, so that no
	// frame of an attached device finds its queue without a socket.
	ifindex, queues, err := a.cfg.Links.Lookup(p.spec.HostIfName)
	if err == nil {
		p.ifindex = ifindex
		err = a.openQueues(ctx, p, queues)
	}
	if err == nil {
		err = a.cfg.Attacher.Attach(ifindex)
	}
	if err != nil {
		a.closePort(ctx, p)
		if p.reason != err.Error() { // Reconcile retries: log changes only
			a.cfg.Log.Warn("port down", "port", p.spec.ID, "dev", p.spec.HostIfName, "err", err)
		}
		p.reason = err.Error()
		return
	}
	p.reason = ""
	// The snapshot went live before the device was known: now the
	// shortcut can name it.
	a.checkTargets()
	a.publishShortcuts(a.cfg.Current.Load())
}

// openQueues opens every queue of the device: queue q on poller q mod N, so
// that no queue's frames meet an empty XSKMAP slot (the program drops them).
func (a *Agent) openQueues(ctx context.Context, p *port, queues int) error {
	np := len(a.cfg.Pollers)
	if np == 0 {
		return errors.New("no poller can serve the device")
	}
	for q := 0; q < queues; q++ {
		pl := a.cfg.Pollers[q%np]
		err := pl.Do(ctx, func() error { return pl.AddPort(p.spec.Vif, p.ifindex, q, p.stats) })
		if err != nil {
			return err
		}
		p.queues = q + 1
	}
	return nil
}

// refreshPort reopens p when it is down, or when its device now has another
// ifindex or queue count than the one its sockets and program are on (the
// veth was deleted, and maybe made again, under it) or is gone; it reports
// whether it reopened. A port whose device is gone ends up down with the
// reason, and Reconcile retries it.
func (a *Agent) refreshPort(ctx context.Context, p *port) bool {
	if p.ifindex != 0 {
		ifindex, queues, err := a.cfg.Links.Lookup(p.spec.HostIfName)
		if err == nil && ifindex == p.ifindex && queues == p.queues {
			return false
		}
		a.cfg.Log.Warn("port device changed", "port", p.spec.ID, "dev", p.spec.HostIfName,
			"ifindex", p.ifindex, "now", ifindex, "queues", p.queues, "now_queues", queues, "err", err)
		a.closePort(ctx, p)
	}
	a.openPort(ctx, p)
	return true
}

// closePort closes the port's sockets and detaches the program; errors are
// logged: the port is going away or being retried either way.
func (a *Agent) closePort(ctx context.Context, p *port) {
	ctx = context.WithoutCancel(ctx) // a socket left open would serve a reused vif id
	for q := 0; q < min(p.queues, len(a.cfg.Pollers)); q++ {
		pl := a.cfg.Pollers[q]
		if err := pl.Do(ctx, func() error { return pl.RemovePort(p.spec.Vif) }); err != nil {
			a.cfg.Log.Warn("closing port socket", "port", p.spec.ID, "queue", q, "err", err)
		}
	}
	p.queues = 0
	if p.ifindex != 0 {
		if err := a.cfg.Attacher.Detach(p.ifindex); err != nil {
			a.cfg.Log.Warn("detaching xdp program", "port", p.spec.ID, "err", err)
		}
	}
	p.ifindex = 0
}

// DeletePort detaches and forgets a port.
func (a *Agent) DeletePort(ctx context.Context, id string) error {
	if id == HostPortID {
		return api.Conflict("port %q is the node's host interface: xvrd -uninstall removes it", id)
	}
	return a.deletePort(ctx, id)
}

func (a *Agent) deletePort(ctx context.Context, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.ports[id]
	if p == nil {
		return api.NotFound("port %s not found", id)
	}
	if err := a.cfg.Store.DeletePort(id); err != nil {
		return api.Errorf(http.StatusInternalServerError, "deleting port %s from the store: %v", id, err)
	}
	a.closePort(ctx, p)
	delete(a.ports, id)
	a.release(p)
	a.vifs.release(p.spec.Vif)
	a.nhs.release(p.nh)
	a.delRoute(p.net.vn(), netip.PrefixFrom(p.ip, 32))
	a.repointStatic(id)
	if id == HostPortID {
		a.rebuildHostTables(p)
	}
	a.publish()
	a.cfg.Log.Info("port deleted", "port", id, "vif", p.spec.Vif)
	return nil
}

// GetPort returns one port with its state.
func (a *Agent) GetPort(ctx context.Context, id string) (api.Port, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.ports[id]
	if p == nil {
		return api.Port{}, api.NotFound("port %s not found", id)
	}
	return p.view(), nil
}

// ListPorts returns every port, sorted by vif.
func (a *Agent) ListPorts(context.Context) []api.Port {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]api.Port, 0, len(a.ports))
	for _, p := range a.ports {
		out = append(out, p.view())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Vif < out[j].Vif })
	return out
}

// Reconcile retries every port that is down and reopens every port whose
// device was replaced or removed under it. xvrd calls it periodically.
func (a *Agent) Reconcile(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reconcileFabric(ctx)
	for _, p := range a.ports {
		if a.refreshPort(ctx, p) && p.ifindex != 0 {
			a.cfg.Log.Info("port up", "port", p.spec.ID, "vif", p.spec.Vif, "ifindex", p.ifindex)
		}
	}
	if a.checkTargets() {
		a.publishShortcuts(a.cfg.Current.Load())
	}
}
