package cni

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/vishvananda/netlink"

	"github.com/xvr-project/xvr/vrouter/api"
)

// cmdCheck verifies, for each of the sandbox's ports in xvrd, that the pod
// interface exists with its MAC and address (and the default route where it
// belongs), and that the host veth exists.
func cmdCheck(args *skel.CmdArgs) error {
	return withXvrd(args, func(ctx context.Context, conf *Config, c *api.Client) error {
		ports, err := sandboxPorts(ctx, c, args.ContainerID)
		if err != nil {
			return err
		}
		if len(ports) == 0 {
			return mismatch("xvrd has no port for container %s", args.ContainerID)
		}
		if err := checkPod(args.Netns, ports); err != nil {
			return err
		}
		return checkHost(conf.HostNetns, args.ContainerID, ports)
	})
}

func checkPod(netnsPath string, ports []api.Port) error {
	podNS, err := openNS(netnsPath)
	if err != nil {
		return err
	}
	defer podNS.Close()
	h, err := netlink.NewHandleAt(podNS)
	if err != nil {
		return fmt.Errorf("netlink in pod netns: %w", err)
	}
	defer h.Close()
	for _, p := range ports {
		if err := checkIf(h, p); err != nil {
			return err
		}
	}
	return nil
}

func checkIf(h *netlink.Handle, p api.Port) error {
	want, gw, mac, err := parsePort(p)
	if err != nil {
		return fmt.Errorf("xvrd's port %s: %w", p.ID, err)
	}
	l, err := h.LinkByName(p.IfName)
	if err != nil {
		if isNotFound(err) {
			return mismatch("interface %s (network %s) is missing in the pod", p.IfName, p.Network)
		}
		return fmt.Errorf("finding %s in the pod: %w", p.IfName, err)
	}
	if got := l.Attrs().HardwareAddr.String(); got != mac.String() {
		return mismatch("interface %s has mac %s, xvrd has %s", p.IfName, got, mac)
	}
	if err := checkAddr(h, l, p.IfName, want); err != nil {
		return err
	}
	if p.DefaultRoute {
		return checkDefaultRoute(h, l, p.IfName, gw)
	}
	return nil
}

func checkAddr(h *netlink.Handle, l netlink.Link, name string, want netip.Prefix) error {
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip == want.Addr() && ones == want.Bits() {
			return nil
		}
	}
	return mismatch("address %s is missing on %s", want, name)
}

func checkDefaultRoute(h *netlink.Handle, l netlink.Link, name string, gw netip.Addr) error {
	routes, err := h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("listing routes of %s: %w", name, err)
	}
	for _, r := range routes {
		isDefault := r.Dst == nil || r.Dst.IP.IsUnspecified() && r.Dst.Mask != nil && maskLen(r) == 0
		if g, ok := netip.AddrFromSlice(r.Gw.To4()); ok && isDefault && g == gw {
			return nil
		}
	}
	return mismatch("default route via %s is missing on %s", gw, name)
}

func maskLen(r netlink.Route) int {
	ones, _ := r.Dst.Mask.Size()
	return ones
}

func checkHost(hostNetns, containerID string, ports []api.Port) error {
	host, err := openHostSide(hostNetns)
	if err != nil {
		return err
	}
	defer host.Close()
	for _, p := range ports {
		name := HostIfName(containerID, p.IfName)
		ok, err := host.exists(name)
		if err != nil {
			return err
		}
		if !ok {
			return mismatch("host veth %s of %s is missing", name, p.IfName)
		}
	}
	return nil
}
