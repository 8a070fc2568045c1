package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/xvr-project/xvr/vrouter/agent"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/hostif"
)

// hostIf keeps the node's host interface (vrouter/hostif): the veth pair,
// its port on the cluster default network, and the kernel end's address,
// route and masquerade. keep runs at start and on every reconcile tick and
// is idempotent, so what is removed under xvrd comes back.
type hostIf struct {
	cfg       hostif.Config
	masq      bool
	routerMAC net.HardwareAddr
	log       *slog.Logger
	last      string // the last error logged, to log changes only
	up        bool
}

func newHostIf(o options, mac net.HardwareAddr, log *slog.Logger) *hostIf {
	if o.hostIf == "" {
		return nil
	}
	return &hostIf{cfg: hostif.Config{Name: o.hostIf, Peer: o.hostPeer}, masq: o.hostMasq, routerMAC: mac, log: log}
}

func (h *hostIf) keep(ctx context.Context, ag *agent.Agent, defNet string) {
	if h == nil {
		return
	}
	err := h.apply(ctx, ag, defNet)
	if err != nil {
		if msg := err.Error(); msg != h.last {
			h.log.Warn("host interface not ready", "dev", h.cfg.Name, "err", err)
			h.last = msg
		}
		h.up = false
		return
	}
	if !h.up {
		h.log.Info("host interface up", "dev", h.cfg.Name, "vif_dev", h.cfg.Peer)
	}
	h.up, h.last = true, ""
}

func (h *hostIf) apply(ctx context.Context, ag *agent.Agent, defNet string) error {
	ns, name, _ := strings.Cut(defNet, "/")
	n, err := ag.GetNetwork(ctx, ns, name)
	if err != nil {
		return fmt.Errorf("the cluster default network: %w", err)
	}
	h.cfg.MTU = ag.Status(ctx).PodMTU
	kmac, err := hostif.Ensure(h.cfg)
	if err != nil {
		return err
	}
	p, err := ag.ApplyHost(ctx, agent.HostPort{IfName: h.cfg.Peer, Peer: h.cfg.Name, MAC: kmac.String()})
	if err != nil {
		return err
	}
	if !strings.HasPrefix(p.State, "up") {
		return fmt.Errorf("port %s: %s", p.ID, p.State)
	}
	addr, err1 := netip.ParseAddr(p.IP)
	gw, err2 := netip.ParseAddr(n.Gateway)
	pfx, err3 := netip.ParsePrefix(n.CIDR)
	if err1 != nil || err2 != nil || err3 != nil {
		return fmt.Errorf("host port %s / gateway %q / network %q: unparsable", p.IP, n.Gateway, n.CIDR)
	}
	return hostif.Configure(h.cfg, hostif.Net{Addr: addr, Gateway: gw, Prefix: pfx, RouterMAC: h.routerMAC,
		Masquerade: h.masq, Extra: hostAccess(ag.ListNetworks(ctx), pfx)})
}

// hostAccess is the subnets of the VNs that opted in to host access; one
// that overlaps def or an earlier one is left out (a kernel route would
// take the other's traffic).
func hostAccess(nets []api.Network, def netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range nets {
		p, err := netip.ParsePrefix(n.CIDR)
		if !n.HostAccess || n.Ref != nil || err != nil || p.Overlaps(def) || slices.ContainsFunc(out, p.Overlaps) {
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

// uninstall removes the host interface's kernel state (xvrd -uninstall).
func uninstall(o options) error {
	if o.hostIf == "" {
		return nil
	}
	return hostif.Remove(hostif.Config{Name: o.hostIf, Peer: o.hostPeer})
}
