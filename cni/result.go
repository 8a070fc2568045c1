package cni

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/xvr-project/xvr/vrouter/api"
)

// iface is one pod interface as made: its veth's host end and the pod end.
type iface struct {
	hostName string
	hostMAC  net.HardwareAddr
	pod      podIf
	network  string
}

// buildResult makes the ADD result. It lists, per pod
// interface in order, the host end then the pod end (Sandbox = netns), one
// IP per pod end pointing at it, and the default route.
func buildResult(cniVersion, sandbox string, ifs []iface) *types100.Result {
	r := &types100.Result{CNIVersion: cniVersion}
	for _, f := range ifs {
		r.Interfaces = append(r.Interfaces,
			&types100.Interface{Name: f.hostName, Mac: f.hostMAC.String()},
			&types100.Interface{Name: f.pod.name, Mac: f.pod.mac.String(), Sandbox: sandbox})
		r.IPs = append(r.IPs, &types100.IPConfig{
			Interface: types100.Int(len(r.Interfaces) - 1),
			Address:   *ipNet(f.pod.addr),
			Gateway:   f.pod.gateway.AsSlice(),
		})
		if f.pod.defaultRoute {
			r.Routes = append(r.Routes, &types.Route{
				Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
				GW:  f.pod.gateway.AsSlice(),
			})
		}
	}
	return r
}

// podIfFromPort checks xvrd's answer for a against what a asked for and
// returns the pod end's settings.
func podIfFromPort(a Attachment, p api.Port) (podIf, error) {
	pi := podIf{name: a.IfName, defaultRoute: a.DefaultRoute}
	var err error
	if pi.addr, pi.gateway, pi.mac, err = parsePort(p); err != nil {
		return pi, fmt.Errorf("xvrd's answer for port %s: %w", p.ID, err)
	}
	return pi, honoured(a, pi)
}

// parsePort parses the address, gateway and MAC xvrd set on a port.
func parsePort(p api.Port) (netip.Prefix, netip.Addr, net.HardwareAddr, error) {
	ip, err := netip.ParseAddr(p.IP)
	if err != nil || !ip.Is4() {
		return netip.Prefix{}, netip.Addr{}, nil, fmt.Errorf("ip %q is not IPv4", p.IP)
	}
	pfx, err := ip.Prefix(p.PrefixLen)
	if err != nil || p.PrefixLen == 0 {
		return netip.Prefix{}, netip.Addr{}, nil, fmt.Errorf("prefix length %d", p.PrefixLen)
	}
	gw, err := netip.ParseAddr(p.Gateway)
	if err != nil || !pfx.Contains(gw) {
		return netip.Prefix{}, netip.Addr{}, nil, fmt.Errorf("gateway %q is not in %s", p.Gateway, pfx.Masked())
	}
	mac, err := net.ParseMAC(p.MAC)
	if err != nil || len(mac) != 6 {
		return netip.Prefix{}, netip.Addr{}, nil, fmt.Errorf("mac %q", p.MAC)
	}
	return netip.PrefixFrom(ip, p.PrefixLen), gw, mac, nil
}

// honoured refuses an answer that differs from a static request.
func honoured(a Attachment, pi podIf) error {
	switch {
	case a.IP.IsValid() && a.IP != pi.addr.Addr():
		return invalid("%s: asked for ip %s, xvrd gave %s", a.IfName, a.IP, pi.addr.Addr())
	case a.PrefixLen != 0 && a.PrefixLen != pi.addr.Bits():
		return invalid("%s: ips asks for /%d, network %s is %s", a.IfName, a.PrefixLen, a.Network, pi.addr.Masked())
	case a.MAC != nil && a.MAC.String() != pi.mac.String():
		return invalid("%s: asked for mac %s, xvrd gave %s", a.IfName, a.MAC, pi.mac)
	case a.Gateway.IsValid() && a.Gateway != pi.gateway:
		return invalid("%s: default-route gateway %s is not network %s's gateway %s", a.IfName, a.Gateway, a.Network, pi.gateway)
	}
	return nil
}
