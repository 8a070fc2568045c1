package main

import (
	"context"
	"os"
	"strings"
	"time"

	"fmt"
	"github.com/xvr-project/xvr/flowtable"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// firstIPv4 is the first IPv4 address of a device: the node IP by default.
func firstIPv4(dev string) (netip.Addr, error) {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding fabric device %s: %w", dev, err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listing addresses of %s: %w", dev, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("fabric device %s has no IPv4 address: give -node-ip", dev)
}

// kernelNeighbors resolves underlay MACs from the kernel's neighbour table,
// which the host keeps for its own traffic on the fabric.
type kernelNeighbors struct{}

// Resolve finds the MAC of ip's next hop (ip itself when on-link, else the
// route's gateway). When the kernel has none yet it sends one UDP datagram
// to ip's discard port, which makes the kernel resolve it, and reports not
// ok; the agent asks again on its next reconcile.
func (kernelNeighbors) Resolve(ip netip.Addr) (net.HardwareAddr, bool, error) {
	routes, err := netlink.RouteGet(ip.AsSlice())
	if err != nil || len(routes) == 0 {
		return nil, false, fmt.Errorf("no route to node %s: %w", ip, err)
	}
	hop, link := net.IP(ip.AsSlice()), routes[0].LinkIndex
	if routes[0].Gw != nil {
		hop = routes[0].Gw
	}
	neighs, err := netlink.NeighList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, false, fmt.Errorf("listing neighbours: %w", err)
	}
	for _, n := range neighs {
		usable := n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) != 0
		if n.IP.Equal(hop) && usable && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr, true, nil
		}
	}
	return nil, false, probe(hop)
}

// probe sends one byte to hop's discard port (9) so the kernel resolves it.
func probe(hop net.IP) error {
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: hop, Port: 9})
	if err != nil {
		return fmt.Errorf("probing %s: %w", hop, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0}); err != nil {
		return fmt.Errorf("probing %s: %w", hop, err)
	}
	return nil
}

// linkMTU is a device's MTU.
func linkMTU(dev string) (int, error) {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return 0, fmt.Errorf("finding fabric device %s: %w", dev, err)
	}
	return l.Attrs().MTU, nil
}

// DefaultGateway is the gateway of the node's IPv4 default route.
func (kernelNeighbors) DefaultGateway() (netip.Addr, bool) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{}, 0)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil {
			if gw, ok := netip.AddrFromSlice(r.Gw.To4()); ok {
				return gw, true
			}
		}
	}
	return netip.Addr{}, false
}

// reservePorts adds ports to net.ipv4.ip_local_reserved_ports so that the
// host never picks an SNAT pool port for its own connections (their replies
// would be steered to xvrd).
func reservePorts(ports string) error {
	const f = "/proc/sys/net/ipv4/ip_local_reserved_ports"
	cur, err := os.ReadFile(f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", f, err)
	}
	have := strings.TrimSpace(string(cur))
	for _, r := range strings.Split(have, ",") {
		if r == ports {
			return nil
		}
	}
	if have != "" {
		ports = have + "," + ports
	}
	if err := os.WriteFile(f, []byte(ports), 0o644); err != nil {
		return fmt.Errorf("reserving the SNAT ports in %s: %w", f, err)
	}
	return nil
}

// agePieces is how many steps one sweep of the flow table takes (see
// flowtable.Sweeper): xvrd's goroutines share the pollers' CPUs.
const agePieces = 64

// ageFlows removes idle flows, sweeping the table once a second in
// agePieces steps, until ctx is done.
func ageFlows(ctx context.Context, flows *flowtable.Table) {
	t := time.NewTicker(time.Second / agePieces)
	defer t.Stop()
	sw := flows.NewSweeper(agePieces)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			sw.Step(uint32(now.Unix()))
		}
	}
}
