package agent

import (
	"context"
	"net/http"
	"net/netip"
	"regexp"
	"sort"

	"github.com/xvr-project/xvr/nad"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// ApplyNetwork creates or updates a network (idempotent).
func (a *Agent) ApplyNetwork(ctx context.Context, in api.Network) (api.Network, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, err := a.validateNetwork(in)
	if err != nil {
		return api.Network{}, err
	}
	old := a.nets[in.Key()]
	if old != nil && sameNetwork(old.spec, n.spec) {
		return old.spec, nil
	}
	if err := a.checkNetworkChange(old, n); err != nil {
		return api.Network{}, err
	}
	fresh := false
	switch {
	case n.target != nil: // the VRF is the target's
	case old != nil && old.target == nil:
		n.spec.VRF = old.spec.VRF
	default:
		n.spec.VRF, fresh = a.vrfs.next(), true
	}
	n.spec.Label = labelOf(n)
	if err := a.cfg.Store.PutNetwork(n.spec); err != nil {
		if fresh {
			a.vrfs.release(n.spec.VRF)
		}
		return api.Network{}, api.Errorf(http.StatusInternalServerError, "persisting network %s: %v", in.Key(), err)
	}
	a.installNetwork(old, n)
	a.publish()
	a.syncPrefixes()
	a.cfg.Log.Info("network applied", "network", in.Key(), "vn", n.spec.VNName, "cidr", n.vn().spec.CIDR, "vrf", n.spec.VRF)
	return n.spec, nil
}

// validateNetwork checks in and resolves it into a network (not yet installed).
func (a *Agent) validateNetwork(in api.Network) (*network, error) {
	if !nameRE.MatchString(in.Namespace) || !nameRE.MatchString(in.Name) {
		return nil, api.BadRequest("network namespace %q and name %q must be DNS-1123 names", in.Namespace, in.Name)
	}
	n := &network{spec: api.Network{Namespace: in.Namespace, Name: in.Name, CIDR: in.CIDR,
		FabricForwarding: in.FabricForwarding, FabricSNAT: in.FabricSNAT, HostAccess: in.HostAccess, Ref: in.Ref, CNIType: in.CNIType}}
	n.spec.VNName, n.spec.Project = nad.ContrailNames(a.cfg.Cluster, in.Namespace, in.Name)
	switch {
	case in.Ref != nil && in.CIDR != "":
		return nil, api.BadRequest("network %s: cidr and ref are exclusive", in.Key())
	case in.Ref != nil:
		if err := a.resolveRef(n); err != nil {
			return nil, err
		}
		n.spec.VNI = n.target.spec.VNI
		return n, nil
	case in.CIDR == "":
		return nil, api.BadRequest("network %s: cidr is required (opencontrail.org/cidr)", in.Key())
	}
	p, err := netip.ParsePrefix(in.CIDR)
	if err != nil || !p.Addr().Is4() {
		return nil, api.BadRequest("network %s: cidr %q is not an IPv4 prefix", in.Key(), in.CIDR)
	}
	if err := nad.CheckPrefix(p); err != nil {
		return nil, api.BadRequest("network %s: cidr %v", in.Key(), err)
	}
	n.prefix = p.Masked()
	if n.gw, n.dns, err = nad.Gateway(n.prefix); err != nil {
		return nil, api.BadRequest("network %s: %v", in.Key(), err)
	}
	n.spec.CIDR, n.spec.Gateway, n.spec.DNS = n.prefix.String(), n.gw.String(), n.dns.String()
	return n, a.setVNI(n, in.VNI)
}

func (a *Agent) resolveRef(n *network) error {
	r := n.spec.Ref
	for _, t := range a.nets {
		if t.target == nil && t.spec.VNName == r.Name && t.spec.Project == r.Project {
			n.target = t
			n.spec.VRF, n.spec.Gateway, n.spec.DNS = t.spec.VRF, t.spec.Gateway, t.spec.DNS
			return nil
		}
	}
	return api.Errorf(http.StatusUnprocessableEntity, "network %s: referenced network %s:%s:%s does not exist",
		n.spec.Key(), r.Domain, r.Project, r.Name)
}

// checkNetworkChange refuses changes that would strand ports or references.
func (a *Agent) checkNetworkChange(old, n *network) error {
	if old == nil {
		return nil
	}
	if users := a.portsOn(old); users > 0 && (old.vn() != n.vn() && n.target != nil ||
		old.target != nil && n.target == nil || old.prefix != n.prefix && n.target == nil) {
		return api.Conflict("network %s has %d ports: its cidr or reference cannot change", n.spec.Key(), users)
	}
	if refs := a.refsTo(old); refs > 0 && n.target != nil {
		return api.Conflict("network %s is referenced by %d networks: it cannot become a reference", n.spec.Key(), refs)
	}
	return nil
}

func sameNetwork(a, b api.Network) bool {
	eqRef := (a.Ref == nil) == (b.Ref == nil) && (a.Ref == nil || *a.Ref == *b.Ref)
	return eqRef && a.CIDR == b.CIDR && a.FabricForwarding == b.FabricForwarding &&
		a.FabricSNAT == b.FabricSNAT && a.HostAccess == b.HostAccess && a.CNIType == b.CNIType && a.VNI == b.VNI
}

// installNetwork puts n in place of old in memory and the route tables.
func (a *Agent) installNetwork(old, n *network) {
	key := n.spec.Key()
	a.nets[key] = n
	if old != nil {
		for _, p := range a.ports {
			if p.net == old {
				p.net = n
			}
		}
		for _, t := range a.nets {
			if t.target == old {
				t.target = n
			}
		}
		if old.target == nil && n.target != nil {
			a.vrfs.release(old.spec.VRF)
			a.tables.Remove(old.spec.VRF)
		}
	}
	if n.target == nil {
		a.rebuildTable(n)
	}
}

// DeleteNetwork removes a network that no port or reference uses.
func (a *Agent) DeleteNetwork(ctx context.Context, namespace, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := namespace + "/" + name
	n := a.nets[key]
	if n == nil {
		return api.NotFound("network %s not found", key)
	}
	if key == a.cfg.DefaultNetwork {
		return api.Conflict("network %s is the cluster default pod network and cannot be deleted", key)
	}
	if users := a.portsOn(n); users > 0 {
		return api.Conflict("network %s has %d ports; delete them first", key, users)
	}
	if refs := a.refsTo(n); refs > 0 {
		return api.Conflict("network %s is referenced by %d networks; delete them first", key, refs)
	}
	if err := a.cfg.Store.DeleteNetwork(namespace, name); err != nil {
		return api.Errorf(http.StatusInternalServerError, "deleting network %s from the store: %v", key, err)
	}
	for rk, r := range a.routes {
		if r.Network == key {
			delete(a.routes, rk)
			a.dropTunnel(rk)
		}
	}
	delete(a.nets, key)
	if n.target == nil {
		a.vrfs.release(n.spec.VRF)
		a.tables.Remove(n.spec.VRF)
	}
	a.publish()
	a.syncPrefixes()
	a.cfg.Log.Info("network deleted", "network", key)
	return nil
}

// GetNetwork returns one network.
func (a *Agent) GetNetwork(ctx context.Context, namespace, name string) (api.Network, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.nets[namespace+"/"+name]
	if n == nil {
		return api.Network{}, api.NotFound("network %s/%s not found", namespace, name)
	}
	return n.spec, nil
}

// ListNetworks returns every network, sorted by key.
func (a *Agent) ListNetworks(context.Context) []api.Network {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]api.Network, 0, len(a.nets))
	for _, n := range a.nets {
		out = append(out, n.spec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

func (a *Agent) portsOn(n *network) int {
	c := 0
	for _, p := range a.ports {
		if p.net == n {
			c++
		}
	}
	return c
}

func (a *Agent) refsTo(n *network) int {
	c := 0
	for _, t := range a.nets {
		if t.target == n {
			c++
		}
	}
	return c
}

// labelOf is the MPLS label under which this node receives n's VN.
func labelOf(n *network) uint32 {
	return dataplane.LabelBase + n.vn().spec.VRF
}
