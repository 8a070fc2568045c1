package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/internal/ethtool"
)

// hostSide makes and removes the host ends of pod veths in one netns.
type hostSide struct {
	ns netns.NsHandle
	h  *netlink.Handle
}

func openHostSide(path string) (*hostSide, error) {
	ns, err := openNS(path)
	if err != nil {
		return nil, err
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink in host netns: %w", err)
	}
	return &hostSide{ns: ns, h: h}, nil
}

func (s *hostSide) Close() {
	s.h.Close()
	s.ns.Close()
}

// addVeth creates the veth of a pod interface: the host end named
// HostIfName(containerID, ifname), aliased "containerID/ifname", up with
// IPv6 off; the other end made directly inside podNS as ifname (one
// RTM_NEWLINK: moving a device between namespaces afterwards costs ~20 ms
// of RCU grace period). A stale host end of the same name (a failed earlier
// ADD) is replaced. It returns the host end's MAC.
//
// The kernel ignores IFLA_IFALIAS in RTM_NEWLINK, so the alias is set right
// after; an ADD killed in between leaves a host end without an alias, which
// GC recognises by its name (ownUnaliased) and removes when no port holds it.
func (s *hostSide) addVeth(podNS netns.NsHandle, containerID, ifname string, mtu int) (net.HardwareAddr, error) {
	name := HostIfName(containerID, ifname)
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name, MTU: mtu},
		PeerName:      ifname,
		PeerNamespace: netlink.NsFd(int(podNS)),
		PeerMTU:       uint32(mtu),
	}
	err := s.h.LinkAdd(veth)
	if errors.Is(err, unix.EEXIST) {
		if derr := s.delLink(name); derr != nil {
			return nil, derr
		}
		err = s.h.LinkAdd(veth)
	}
	if err != nil {
		return nil, fmt.Errorf("creating veth %s (%s in the pod): %w", name, ifname, err)
	}
	if alias := attachmentKey(containerID, ifname); len(alias) <= maxAlias {
		if err := s.h.LinkSetAlias(veth, alias); err != nil {
			return nil, fmt.Errorf("setting alias of veth %s: %w", name, err)
		}
	}
	return s.upHostEnd(name)
}

// delLinkIn deletes the link named name through h; a missing link is not
// an error.
func delLinkIn(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("finding %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

func (s *hostSide) upHostEnd(name string) (net.HardwareAddr, error) {
	if err := inNS(s.ns, func() error { return disableIPv6(name) }); err != nil {
		return nil, err
	}
	l, err := s.h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("finding new veth %s: %w", name, err)
	}
	if err := s.h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("setting %s up: %w", name, err)
	}
	return l.Attrs().HardwareAddr, nil
}

// delLink deletes the link named name; a missing link is not an error.
func (s *hostSide) delLink(name string) error { return delLinkIn(s.h, name) }

// exists reports whether the link named name is there.
func (s *hostSide) exists(name string) (bool, error) {
	_, err := s.h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("finding %s: %w", name, err)
	}
	return true, nil
}

// ownLink is a host veth the plugin made, known by its alias.
type ownLink struct {
	name, containerID, ifname string
}

// ownLinks lists the host veths whose alias says the plugin made them.
func (s *hostSide) ownLinks() ([]ownLink, error) {
	links, err := s.linkList()
	if err != nil {
		return nil, err
	}
	var own []ownLink
	for _, l := range links {
		a := l.Attrs()
		if cid, ifn, ok := ownAlias(a.Name, a.Alias); ok {
			own = append(own, ownLink{name: a.Name, containerID: cid, ifname: ifn})
		} else if a.Alias == "" && l.Type() == "veth" && ownName(a.Name) {
			own = append(own, ownLink{name: a.Name}) // an ADD killed before its alias
		}
	}
	return own, nil
}

// dumpRetries bounds how often a link dump that concurrent changes
// interrupted (other pods' veths come and go) is repeated.
const dumpRetries = 20

// linkList dumps the host links, repeating a dump that concurrent changes
// interrupted, so that no link is missed.
func (s *hostSide) linkList() ([]netlink.Link, error) {
	for range dumpRetries {
		links, err := s.h.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			if err != nil {
				return nil, fmt.Errorf("listing host links: %w", err)
			}
			return links, nil
		}
	}
	return nil, fmt.Errorf("listing host links: interrupted %d times by concurrent changes", dumpRetries)
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

// podIf is what a pod interface is configured with.
type podIf struct {
	name         string
	mac          net.HardwareAddr
	addr         netip.Prefix
	gateway      netip.Addr
	defaultRoute bool
}

// configurePod configures the pod ends inside podNS: IPv6 off, MAC, TX
// checksum offload off, address, up; then the default route on the one
// interface that carries it. The subnet route comes with the address.
func configurePod(podNS netns.NsHandle, ifs []podIf) error {
	return inNS(podNS, func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("netlink in pod netns: %w", err)
		}
		defer h.Close()
		for _, pi := range ifs {
			if err := configureIf(h, pi); err != nil {
				return err
			}
		}
		return addDefaultRoute(h, ifs)
	})
}

func configureIf(h *netlink.Handle, pi podIf) error {
	l, err := h.LinkByName(pi.name)
	if err != nil {
		return fmt.Errorf("finding %s in the pod: %w", pi.name, err)
	}
	if err := disableIPv6(pi.name); err != nil {
		return err
	}
	if err := h.LinkSetHardwareAddr(l, pi.mac); err != nil {
		return fmt.Errorf("setting mac %s on %s: %w", pi.mac, pi.name, err)
	}
	if err := ethtool.TxChecksumOff(pi.name); err != nil {
		return err
	}
	if err := h.AddrReplace(l, &netlink.Addr{IPNet: ipNet(pi.addr)}); err != nil {
		return fmt.Errorf("adding %s to %s: %w", pi.addr, pi.name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up: %w", pi.name, err)
	}
	// GRO gives the pod's end the NAPI context that frames redirected by
	// XDP (xvrd's shortcut) need, and coalesces the pod's TCP on receive.
	// Only once the device is up does the kernel (6.18) tell the host end
	// that it may be redirected to.
	if err := ethtool.GROOn(pi.name); err != nil {
		return err
	}
	return setQdisc(h, l, pi.name)
}

// setQdisc gives the pod's end a queue: a veth without one (noqueue, its
// default) drops what the pod sends while the host end's ring is full —
// and the host end, with xvrd's XDP program on it, drains its 256-frame
// ring in NAPI — where with a qdisc the kernel (6.16+) stops the queue
// until the ring has room. pfifo_fast is the kernel's own default qdisc,
// built into every kernel.
func setQdisc(h *netlink.Handle, l netlink.Link, name string) error {
	q := &netlink.GenericQdisc{QdiscType: "pfifo_fast", QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_ROOT, Handle: netlink.MakeHandle(1, 0)}}
	if err := h.QdiscReplace(q); err != nil {
		return fmt.Errorf("setting a pfifo_fast qdisc on %s: %w", name, err)
	}
	return nil
}

func addDefaultRoute(h *netlink.Handle, ifs []podIf) error {
	for _, pi := range ifs {
		if !pi.defaultRoute {
			continue
		}
		l, err := h.LinkByName(pi.name)
		if err != nil {
			return fmt.Errorf("finding %s in the pod: %w", pi.name, err)
		}
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: pi.gateway.AsSlice()}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("adding default route via %s on %s: %w", pi.gateway, pi.name, err)
		}
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
