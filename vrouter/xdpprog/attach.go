package xdpprog

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Mode is how xvr_pod runs on a device.
type Mode uint8

const (
	// ModeNone: not attached by this Program.
	ModeNone Mode = iota
	// ModeDriver: native XDP in the driver's receive path.
	ModeDriver
	// ModeGeneric: XDP on the skb path, for drivers without native XDP.
	ModeGeneric
)

func (m Mode) String() string {
	switch m {
	case ModeDriver:
		return "driver"
	case ModeGeneric:
		return "generic"
	default:
		return "none"
	}
}

// BusyError is returned by Attach when another XDP program holds the device.
type BusyError struct {
	Ifindex int
	ID      uint32 // kernel program id; 0 if several programs are attached
	Name    string // kernel program name
	Why     string // "foreign program", "held by a bpf_link of another process", ...
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("ifindex %d: XDP program id %d %q is in the way: %s", e.Ifindex, e.ID, e.Name, e.Why)
}

// Attach attaches xvr_pod to the device through a bpf_link, in driver mode,
// or in generic mode where the driver has no native XDP (Mode says which).
// A stale xvr_pod attached through netlink is detached first; a foreign
// program, or an xvr_pod held by another bpf_link, gives a *BusyError.
// Attaching an attached device again is a no-op.
func (p *Program) Attach(ifindex int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, known := p.ports[ifindex]
	pt, err := p.port(ifindex)
	if err != nil {
		return err
	}
	if err := p.attach(ifindex, pt); err != nil {
		if !known {
			_ = p.release(ifindex, pt)
		}
		return err
	}
	return nil
}

func (p *Program) attach(ifindex int, pt *port) error {
	if pt.link != nil {
		if cur, err := query(ifindex); err == nil && cur.id == uint32(p.id) {
			return nil
		}
		_ = pt.link.Close() // defunct: the device went away or was reset
		pt.link, pt.mode = nil, ModeNone
	}
	if err := clearStale(ifindex, ProgName); err != nil {
		return err
	}
	l, mode, err := attachXDP(p.objs.XvrPod, ProgName, ifindex)
	if err != nil {
		return err
	}
	pt.link, pt.mode = l, mode
	return nil
}

// attachXDP attaches prog (kernel name name) through a bpf_link in driver
// mode, then in generic mode if and only if the driver does not support
// native XDP. Shared by xvr_pod and xvr_fabric.
func attachXDP(prog *ebpf.Program, name string, ifindex int) (link.Link, Mode, error) {
	opts := link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode}
	l, err := link.AttachXDP(opts)
	if err == nil {
		return l, ModeDriver, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return nil, ModeNone, fmt.Errorf("attaching %s to ifindex %d in driver mode%s: %w", name, ifindex, driverHint(err), err)
	}
	opts.Flags = link.XDPGenericMode
	l, err = link.AttachXDP(opts)
	if err != nil {
		return nil, ModeNone, fmt.Errorf("attaching %s to ifindex %d in generic mode (no driver mode): %w", name, ifindex, err)
	}
	return l, ModeGeneric, nil
}

// driverHint explains the errors veth gives for native XDP, since the
// kernel's own message (netlink extack) does not reach a bpf_link caller.
func driverHint(err error) string {
	switch {
	case errors.Is(err, unix.ERANGE):
		return " (veth: peer MTU too large for native XDP without frags, keep it <= 3498)"
	case errors.Is(err, unix.ENOSPC):
		return " (veth: fewer rx queues than the peer has tx queues)"
	}
	return ""
}

// Mode reports how this Program is attached to the device.
func (p *Program) Mode(ifindex int) Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pt, ok := p.ports[ifindex]; ok {
		return pt.mode
	}
	return ModeNone
}

// Detach detaches xvr_pod from the device and removes the device's sockets
// and port slot from the maps, attached or not. Detaching an unknown device
// is no error.
func (p *Program) Detach(ifindex int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	pt, ok := p.ports[ifindex]
	if !ok {
		return nil
	}
	if pt.link != nil {
		if err := pt.link.Close(); err != nil {
			return fmt.Errorf("detaching ifindex %d: %w", ifindex, err)
		}
		pt.link, pt.mode = nil, ModeNone
	}
	return p.release(ifindex, pt)
}

// Attached reports the XDP program on the device now, whoever attached it:
// id 0 and no error when there is none.
func Attached(ifindex int) (id uint32, name string, err error) {
	cur, err := query(ifindex)
	return cur.id, cur.name, err
}

// attachment is what netlink says is on a device.
type attachment struct {
	dev  netlink.Link
	id   uint32
	name string
	mode uint32 // nl.XDP_ATTACHED_*
}

func query(ifindex int) (attachment, error) {
	dev, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return attachment{}, fmt.Errorf("looking up ifindex %d: %w", ifindex, err)
	}
	cur := attachment{dev: dev}
	xdp := dev.Attrs().Xdp
	if xdp == nil || !xdp.Attached {
		return cur, nil
	}
	cur.id, cur.mode = xdp.ProgId, xdp.AttachMode
	if cur.id == 0 {
		return cur, nil
	}
	cur.name, err = progName(cur.id)
	return cur, err
}

// progName returns the kernel name of a program, "" if it is already gone.
func progName(id uint32) (string, error) {
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("opening program %d: %w", id, err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return "", fmt.Errorf("reading program %d info: %w", id, err)
	}
	return info.Name, nil
}

// clearStale makes the device free for Attach: nothing to do when no
// program is attached, netlink detach for a stale program named name (an
// xvr program left by an older run), a *BusyError otherwise.
func clearStale(ifindex int, name string) error {
	cur, err := query(ifindex)
	if err != nil || cur.mode == nl.XDP_ATTACHED_NONE {
		return err
	}
	busy := &BusyError{Ifindex: ifindex, ID: cur.id, Name: cur.name}
	flags, ok := detachFlags(cur.mode)
	switch {
	case cur.id == 0:
		busy.Why = "several XDP programs attached"
		return busy
	case cur.name != name:
		busy.Why = "foreign program"
		return busy
	case !ok:
		busy.Why = "offloaded to hardware"
		return busy
	}
	err = netlink.LinkSetXdpFdWithFlags(cur.dev, -1, flags)
	if errors.Is(err, unix.EBUSY) {
		busy.Why = "held by another bpf_link (another xvrd?)"
		return busy
	}
	if err != nil {
		return fmt.Errorf("detaching stale %s id %d from ifindex %d: %w", cur.name, cur.id, ifindex, err)
	}
	return nil
}

func detachFlags(mode uint32) (int, bool) {
	switch mode {
	case nl.XDP_ATTACHED_DRV:
		return nl.XDP_FLAGS_DRV_MODE, true
	case nl.XDP_ATTACHED_SKB:
		return nl.XDP_FLAGS_SKB_MODE, true
	default:
		return 0, false
	}
}
