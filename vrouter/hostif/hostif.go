// Package hostif is the node's side of xvr's host interface: the veth pair
// whose xvr end ("xvr-net") is a vif like a pod's host veth and whose other
// end ("xvr-host") stays in the node's kernel with an address of the cluster
// default network. Through it the kernel reaches every pod (kubelet's
// probes, hostNetwork pods, NodePort after kube-proxy), and pods reach the
// kernel (Services through kube-proxy, the node's addresses, the outside
// after the node's masquerade). It is TF's vhost0 role, Cilium's
// cilium_host/cilium_net pair, OVN-Kubernetes' ovn-k8s-mp0.
//
// Everything here is an OS side effect in the calling process's network
// namespace (netlink, /proc/sys, iptables); every call is idempotent, so
// xvrd re-applies it on every reconcile and repairs what was removed under
// it. The kernel state is left in place when xvrd stops, so routes to pods
// survive a restart; Remove (xvrd -uninstall) takes it all away.
//
// Importers: cmd/xvrd.
package hostif

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/internal/ethtool"
)

// Default device names.
const (
	DefaultName = "xvr-host" // the kernel's end: the address, the routes
	DefaultPeer = "xvr-net"  // xvr's end: the vif
)

// RouteProtocol marks the kernel routes xvrd installs (`ip route show
// proto 157`), so that they are found and removed by what they are.
const RouteProtocol = 157

// Config names the pair.
type Config struct {
	// Name is the kernel's end, Peer xvr's end (at most 15 bytes each).
	Name, Peer string
	// MTU of both ends: the pod MTU, so the kernel's packets to pods on
	// other nodes fit the fabric once encapsulated. 0 keeps the default.
	MTU int
	// Sysctl is the root of the sysctl tree ("/proc/sys" when empty).
	Sysctl string
}

func (c *Config) sysctl(path string) string {
	root := c.Sysctl
	if root == "" {
		root = "/proc/sys"
	}
	return filepath.Join(root, path)
}

func (c *Config) validate() error {
	for _, n := range []string{c.Name, c.Peer} {
		if n == "" || len(n) > unix.IFNAMSIZ-1 || strings.ContainsAny(n, "/ \t\n:") {
			return fmt.Errorf("host interface: %q is not a device name", n)
		}
	}
	if c.Name == c.Peer {
		return fmt.Errorf("host interface: both ends are named %q", c.Name)
	}
	return nil
}

// Ensure makes the pair if it is missing (an existing one is kept, with its
// MAC) and brings both ends up with IPv6 off and transmit checksum offload
// off on the kernel's end. It returns the kernel end's MAC, which xvr sends
// the kernel's traffic to.
func Ensure(cfg Config) (net.HardwareAddr, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l, err := netlink.LinkByName(cfg.Name)
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("host interface: looking up %s: %w", cfg.Name, err)
	}
	if l == nil {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: cfg.Name, MTU: cfg.MTU}, PeerName: cfg.Peer, PeerMTU: uint32(cfg.MTU)}
		if err := netlink.LinkAdd(veth); err != nil {
			return nil, fmt.Errorf("host interface: creating veth %s/%s: %w", cfg.Name, cfg.Peer, err)
		}
		if l, err = netlink.LinkByName(cfg.Name); err != nil {
			return nil, fmt.Errorf("host interface: looking up %s: %w", cfg.Name, err)
		}
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return nil, fmt.Errorf("host interface: %s exists and is a %s, not a veth", cfg.Name, l.Type())
	}
	peer, err := netlink.LinkByName(cfg.Peer)
	if err != nil {
		return nil, fmt.Errorf("host interface: %s exists but its peer %s does not: %w", cfg.Name, cfg.Peer, err)
	}
	for _, d := range []netlink.Link{l, peer} {
		if err := cfg.setup(d); err != nil {
			return nil, err
		}
	}
	if err := ethtool.TxChecksumOff(cfg.Name); err != nil {
		return nil, fmt.Errorf("host interface: %w", err)
	}
	return l.Attrs().HardwareAddr, nil
}

func (c *Config) setup(l netlink.Link) error {
	name := l.Attrs().Name
	if err := writeSysctl(c.sysctl("net/ipv6/conf/"+name+"/disable_ipv6"), "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("host interface: %w", err)
	}
	if c.MTU > 0 && l.Attrs().MTU != c.MTU {
		if err := netlink.LinkSetMTU(l, c.MTU); err != nil {
			return fmt.Errorf("host interface: setting the mtu of %s: %w", name, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("host interface: bringing %s up: %w", name, err)
	}
	return nil
}

// Net is what the kernel end is configured with.
type Net struct {
	// Addr is the kernel end's address in the default network; Prefix is
	// that network, routed through Gateway (the network's gateway, whose
	// MAC is RouterMAC: xvr's).
	Addr, Gateway netip.Addr
	Prefix        netip.Prefix
	RouterMAC     net.HardwareAddr
	// Extra are the subnets of the VNs that opted in to host access,
	// routed like Prefix.
	Extra []netip.Prefix
	// Masquerade: pods' packets of Prefix leaving the node through any
	// other device get the node's address (iptables MASQUERADE).
	Masquerade bool
}

func (n *Net) validate() error {
	switch {
	case !n.Addr.Is4() || !n.Gateway.Is4() || !n.Prefix.Addr().Is4():
		return fmt.Errorf("host interface: address %s, gateway %s and network %s must be IPv4", n.Addr, n.Gateway, n.Prefix)
	case !n.Prefix.Contains(n.Addr) || !n.Prefix.Contains(n.Gateway):
		return fmt.Errorf("host interface: %s or gateway %s is not in %s", n.Addr, n.Gateway, n.Prefix)
	case len(n.RouterMAC) != 6:
		return fmt.Errorf("host interface: router mac %q is not 6 bytes", n.RouterMAC)
	}
	return nil
}

// Configure gives the kernel end its address (a /32: the network is
// routed, not on-link, so the kernel keeps one neighbour, the gateway, and
// sends no ICMP redirects for packets it forwards back into xvr), a
// permanent neighbour entry for the gateway with xvr's MAC, the route to the
// network through the gateway (RouteProtocol) and IPv4 forwarding; with
// Masquerade, the egress rule. Other addresses and xvr-marked routes on the
// device that are not these are removed.
func Configure(cfg Config, n Net) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if err := n.validate(); err != nil {
		return err
	}
	l, err := netlink.LinkByName(cfg.Name)
	if err != nil {
		return fmt.Errorf("host interface: looking up %s: %w", cfg.Name, err)
	}
	if err := setAddr(l, n.Addr); err != nil {
		return err
	}
	neigh := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: n.Gateway.AsSlice(), HardwareAddr: n.RouterMAC}
	if err := netlink.NeighSet(neigh); err != nil {
		return fmt.Errorf("host interface: neighbour %s on %s: %w", n.Gateway, cfg.Name, err)
	}
	if err := setRoutes(l, n); err != nil {
		return err
	}
	for path, v := range map[string]string{
		"net/ipv4/ip_forward":                           "1",
		"net/ipv4/conf/" + cfg.Name + "/send_redirects": "0",
	} {
		if err := writeSysctl(cfg.sysctl(path), v); err != nil {
			return fmt.Errorf("host interface: %w", err)
		}
	}
	if n.Masquerade {
		return ensureMasquerade(cfg.Name, n.Prefix)
	}
	return removeMasquerade()
}

func setAddr(l netlink.Link, a netip.Addr) error {
	want := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	addrs, err := netlink.AddrList(l, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("host interface: listing addresses of %s: %w", l.Attrs().Name, err)
	}
	have := false
	for _, x := range addrs {
		if x.IPNet.String() == want.IPNet.String() {
			have = true
			continue
		}
		if err := netlink.AddrDel(l, &x); err != nil {
			return fmt.Errorf("host interface: removing %s from %s: %w", x.IPNet, l.Attrs().Name, err)
		}
	}
	if have {
		return nil
	}
	if err := netlink.AddrAdd(l, want); err != nil {
		return fmt.Errorf("host interface: adding %s to %s: %w", want.IPNet, l.Attrs().Name, err)
	}
	return nil
}

func setRoutes(l netlink.Link, n Net) error {
	want := map[string]bool{}
	for _, p := range append([]netip.Prefix{n.Prefix}, n.Extra...) {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(p), Gw: n.Gateway.AsSlice(),
			Src: n.Addr.AsSlice(), Flags: int(netlink.FLAG_ONLINK), Protocol: RouteProtocol, Scope: netlink.SCOPE_UNIVERSE}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("host interface: route %s via %s dev %s: %w", p, n.Gateway, l.Attrs().Name, err)
		}
		want[r.Dst.String()] = true
	}
	routes, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{LinkIndex: l.Attrs().Index, Protocol: RouteProtocol},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("host interface: listing routes of %s: %w", l.Attrs().Name, err)
	}
	for _, r := range routes {
		if r.Dst != nil && !want[r.Dst.String()] {
			if err := netlink.RouteDel(&r); err != nil {
				return fmt.Errorf("host interface: removing route %s: %w", r.Dst, err)
			}
		}
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}

// Remove deletes the pair (its address and routes go with it) and the
// masquerade rule. What is already gone is not an error.
func Remove(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	var errs []error
	if l, err := netlink.LinkByName(cfg.Name); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("host interface: deleting %s: %w", cfg.Name, err))
		}
	} else if !isNotFound(err) {
		errs = append(errs, fmt.Errorf("host interface: looking up %s: %w", cfg.Name, err))
	}
	forgetMasquerade()
	return errors.Join(append(errs, deleteMasquerade())...)
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

func writeSysctl(path, v string) error {
	cur, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(cur)) == v {
		return nil
	}
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
