package agent

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
)

// Load restores the stored state — networks, then ports, then routes — with
// the VRF, vif and next-hop ids they had, and opens every port it can. It is
// called once, before serving. A stored object that no longer validates is
// logged and skipped, never dropped from the store.
func (a *Agent) Load(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	nets, err := a.cfg.Store.Networks()
	if err != nil {
		return fmt.Errorf("loading networks: %w", err)
	}
	a.loadNetworks(nets)
	ports, err := a.cfg.Store.Ports()
	if err != nil {
		return fmt.Errorf("loading ports: %w", err)
	}
	a.loadPorts(ports)
	routes, err := a.cfg.Store.Routes()
	if err != nil {
		return fmt.Errorf("loading routes: %w", err)
	}
	a.loadRoutes(routes)
	pods, err := a.cfg.Store.Pods()
	if err != nil {
		return fmt.Errorf("loading pods: %w", err)
	}
	for _, p := range pods {
		a.pods[p.Key()] = p
	}
	if err := a.loadPolicies(); err != nil {
		return err
	}
	a.publish()
	for _, p := range a.ports {
		a.openPort(ctx, p)
	}
	a.reconcileFabric(ctx)
	a.cfg.Log.Info("state restored", "networks", len(a.nets), "ports", len(a.ports), "routes", len(a.routes))
	return nil
}

func (a *Agent) loadNetworks(nets []api.Network) {
	// Networks that own a VRF first, so references resolve.
	for pass := 0; pass < 2; pass++ {
		for _, in := range nets {
			if (in.Ref == nil) != (pass == 0) {
				continue
			}
			n, err := a.validateNetwork(in)
			if err == nil && n.target == nil && !a.vrfs.take(in.VRF) {
				err = fmt.Errorf("vrf %d is taken", in.VRF)
			}
			if err != nil {
				a.cfg.Log.Error("stored network skipped", "network", in.Key(), "err", err)
				continue
			}
			if n.target == nil {
				n.spec.VRF = in.VRF
			}
			n.spec.Label = labelOf(n)
			a.nets[in.Key()] = n
			if n.target == nil {
				a.rebuildTable(n)
			}
		}
	}
}

func (a *Agent) loadPorts(ports []api.Port) {
	for _, in := range ports {
		p, err := a.validatePort(in, nil)
		if err == nil && !a.vifs.take(in.Vif) {
			err = fmt.Errorf("vif %d is taken", in.Vif)
		}
		if err != nil {
			a.cfg.Log.Error("stored port skipped", "port", in.ID, "err", err)
			continue
		}
		p.spec.Vif, p.nh, p.stats = in.Vif, a.nhs.next(), new(dataplane.VifStats)
		p.reason = "not opened yet"
		a.seq++
		p.seq = a.seq
		a.ports[in.ID] = p
		a.setRoute(p.net.vn(), netip.PrefixFrom(p.ip, 32), p.nh)
	}
	if h := a.ports[HostPortID]; h != nil {
		a.rebuildHostTables(nil)
	}
}

func (a *Agent) loadRoutes(routes []api.Route) {
	for _, in := range routes {
		r, n, t, err := a.validateRoute(in)
		if err != nil {
			a.cfg.Log.Error("stored route skipped", "network", in.Network, "prefix", in.Prefix, "err", err)
			continue
		}
		a.installRoute(r, n, t)
	}
}

var _ api.Backend = (*Agent)(nil)
