package xdpprog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The netdev generic netlink family (include/uapi/linux/netdev.h).
const (
	netdevFamily         = "netdev"
	netdevCmdDevGet      = 1
	netdevADevIfindex    = 1
	netdevADevXDPFeature = 3
	netdevXDPActNdoXmit  = 4
)

var netdevID struct {
	once sync.Once
	id   uint16
	err  error
}

// RedirectTarget says whether the kernel takes frames that XDP redirects
// to the device (NETDEV_XDP_ACT_NDO_XMIT in its xdp-features), in the
// calling thread's netns. A veth is one only while its peer has NAPI: an
// XDP program, or GRO turned on while up. The shortcut must deliver only
// to such devices: the kernel drops what it cannot redirect.
func RedirectTarget(ifindex int) (bool, error) {
	f, err := xdpFeatures(ifindex)
	if err != nil {
		return false, err
	}
	return f&netdevXDPActNdoXmit != 0, nil
}

func xdpFeatures(ifindex int) (uint64, error) {
	netdevID.once.Do(func() {
		fam, err := netlink.GenlFamilyGet(netdevFamily)
		if err != nil {
			netdevID.err = fmt.Errorf("looking up the %s netlink family: %w", netdevFamily, err)
			return
		}
		netdevID.id = fam.ID
	})
	if netdevID.err != nil {
		return 0, netdevID.err
	}
	return devGet(netdevID.id, ifindex)
}

// devGet asks the netdev family (id) for the device's xdp-features over a
// netlink socket of the calling thread's netns. (vishvananda/netlink's
// request path fails with EINVAL here from inside another netns.)
func devGet(family uint16, ifindex int) (uint64, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return 0, fmt.Errorf("generic netlink socket: %w", err)
	}
	defer unix.Close(fd)
	// nlmsghdr, genlmsghdr, one u32 attribute.
	msg := make([]byte, unix.NLMSG_HDRLEN+nl.SizeofGenlmsg+8)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], family)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(msg[8:], 1) // sequence
	msg[16], msg[17] = netdevCmdDevGet, 1
	ne.PutUint16(msg[20:], 8)
	ne.PutUint16(msg[22:], netdevADevIfindex)
	ne.PutUint32(msg[24:], uint32(ifindex))
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("reading xdp-features of ifindex %d: %w", ifindex, err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("reading xdp-features of ifindex %d: %w", ifindex, err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, fmt.Errorf("parsing xdp-features of ifindex %d: %w", ifindex, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR {
			if len(m.Data) >= 4 {
				if e := int32(ne.Uint32(m.Data)); e != 0 {
					return 0, fmt.Errorf("reading xdp-features of ifindex %d: %w", ifindex, syscall.Errno(-e))
				}
			}
			continue
		}
		if m.Header.Type != family || len(m.Data) < nl.SizeofGenlmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m.Data[nl.SizeofGenlmsg:])
		if err != nil {
			return 0, fmt.Errorf("parsing xdp-features of ifindex %d: %w", ifindex, err)
		}
		for _, a := range attrs {
			if a.Attr.Type == netdevADevXDPFeature && len(a.Value) >= 8 {
				return ne.Uint64(a.Value), nil
			}
		}
	}
	return 0, fmt.Errorf("reading xdp-features of ifindex %d: %w", ifindex, errNoFeatures)
}

var errNoFeatures = errors.New("no xdp-features attribute in the kernel's answer")
