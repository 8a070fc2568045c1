package xdpprog

import (
	"errors"
	"fmt"
	"maps"

	"github.com/cilium/ebpf"
)

// Sizes and slots compiled into bpf/short.h.
const (
	// MaxShortcuts is how many (VRF, pod address) deliveries the shortcut
	// maps hold (XVR_MAX_SHORTCUTS).
	MaxShortcuts = 65536
	// MaxShortcutLabels is how many MPLS labels and VNIs the fabric's
	// shortcut decapsulates (XVR_MAX_LABELS).
	MaxShortcutLabels = 8192
	// fabricSlot is short_stats' slot of the fabric's shortcut.
	fabricSlot = MaxPorts
	// NativeVRF is the VRF of ShortcutDests reached natively from the
	// fabric: the pods of fabric-forwarded VNs, which arrive without a
	// label (XVR_SHORT_NATIVE_VRF).
	NativeVRF = 0xffffffff
)

// ShortcutKind is how the shortcut reaches a destination (short_dst.kind).
type ShortcutKind uint8

// Shortcut kinds.
const (
	ShortLocal    ShortcutKind = iota // a local pod: its veth, its MAC
	ShortFabric                       // another node, natively on the fabric
	ShortMPLSoUDP                     // another node, in MPLSoUDP
	ShortVXLAN                        // another node, in VXLAN
)

// ShortcutPort lets frames received on a device take the shortcut.
type ShortcutPort struct {
	Ifindex int
	VRF     uint32
	// RouterMAC is the vRouter's MAC: a frame's destination to be taken,
	// the source of the frame delivered.
	RouterMAC [6]byte
}

// ShortcutDest is one pod the shortcut delivers to: IPv4 to Addr in VRF
// leaves on Ifindex to MAC, from SrcMAC. For a local pod (ShortLocal)
// Ifindex is its host-side veth, MAC its MAC and SrcMAC the vRouter's; for
// a pod on another node Ifindex is the fabric NIC, MAC the next hop's
// underlay MAC and SrcMAC the fabric NIC's, and a tunnel adds the outer
// IPv4 header Src to Dst (TTL, DF) with Label (MPLS label or VNI), VXLAN
// with InnerMAC as the inner destination. A packet whose IPv4 length
// (plus the tunnel's overhead) is above a non-zero MTU goes to the
// forwarder.
type ShortcutDest struct {
	VRF      uint32
	Addr     [4]byte
	Kind     ShortcutKind
	Ifindex  int
	MAC      [6]byte
	SrcMAC   [6]byte
	MTU      uint16
	Src, Dst [4]byte
	TTL      uint8
	DF       bool
	Label    uint32
	InnerMAC [6]byte
}

// ShortcutLabel is an MPLS label (Kind ShortMPLSoUDP) or VNI (ShortVXLAN)
// the fabric's shortcut decapsulates into VRF; RouterMAC is the vRouter's
// (the inner destination of VXLAN frames).
type ShortcutLabel struct {
	Kind      ShortcutKind
	Label     uint32
	VRF       uint32
	RouterMAC [6]byte
}

// shortcuts is what the kernel's shortcut maps hold, as last set.
type shortcuts struct {
	ports  map[int]podShortPort
	dests  map[podShortKey]podShortDst
	labels map[podShortLabelKey]podShortLabel
	tx     map[int]bool
}

func newShortcuts() shortcuts {
	return shortcuts{ports: map[int]podShortPort{}, dests: map[podShortKey]podShortDst{},
		labels: map[podShortLabelKey]podShortLabel{}, tx: map[int]bool{}}
}

// SetShortcuts makes the shortcut maps hold exactly ports, dests and
// labels. It changes only what differs, in an order that never leaves a
// frame redirected to a device the maps do not hold: redirect targets
// first, then destinations, then labels and ports; removals the other way
// round. On an error the maps hold a mix of old and new entries, each of
// them valid; calling again with the same arguments finishes the job.
func (p *Program) SetShortcuts(ports []ShortcutPort, dests []ShortcutDest, labels []ShortcutLabel) error {
	want := newShortcuts()
	for _, sp := range ports {
		if sp.Ifindex < 1 {
			return fmt.Errorf("shortcut port: invalid ifindex %d", sp.Ifindex)
		}
		want.ports[sp.Ifindex] = podShortPort{Vrf: sp.VRF, Mac: sp.RouterMAC}
	}
	if len(want.ports) > MaxPorts {
		return fmt.Errorf("%d shortcut ports, at most %d", len(want.ports), MaxPorts)
	}
	for _, d := range dests {
		v, err := kernelDest(d)
		if err != nil {
			return err
		}
		want.dests[shortKey(d.VRF, d.Addr)] = v
		want.tx[d.Ifindex] = true
	}
	if len(want.dests) > MaxShortcuts {
		return fmt.Errorf("%d shortcut destinations, at most %d", len(want.dests), MaxShortcuts)
	}
	if len(want.tx) > MaxPorts {
		return fmt.Errorf("%d shortcut devices, at most %d", len(want.tx), MaxPorts)
	}
	for _, l := range labels {
		if !tunnelLabel(l.Kind, l.Label) {
			return fmt.Errorf("shortcut label %d of kind %d: not an MPLS label or VNI", l.Label, l.Kind)
		}
		want.labels[podShortLabelKey{Kind: uint32(l.Kind), Label: l.Label}] = podShortLabel{Vrf: l.VRF, Mac: l.RouterMAC}
	}
	if len(want.labels) > MaxShortcutLabels {
		return fmt.Errorf("%d shortcut labels, at most %d", len(want.labels), MaxShortcutLabels)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.setShortcuts(want)
}

// kernelDest checks d and turns it into short_out's value.
func kernelDest(d ShortcutDest) (podShortDst, error) {
	if d.Ifindex < 1 {
		return podShortDst{}, fmt.Errorf("shortcut to %v in VRF %d: invalid ifindex %d", d.Addr, d.VRF, d.Ifindex)
	}
	v := podShortDst{Ifindex: uint32(d.Ifindex), Mac: d.MAC, Kind: uint8(d.Kind), SrcMac: d.SrcMAC, Mtu: d.MTU}
	switch d.Kind {
	case ShortLocal, ShortFabric:
		return v, nil
	case ShortMPLSoUDP, ShortVXLAN:
	default:
		return v, fmt.Errorf("shortcut to %v in VRF %d: unknown kind %d", d.Addr, d.VRF, d.Kind)
	}
	if !tunnelLabel(d.Kind, d.Label) {
		return v, fmt.Errorf("shortcut to %v in VRF %d: label %d out of range", d.Addr, d.VRF, d.Label)
	}
	v.Ttl, v.Saddr, v.Daddr, v.Label, v.InnerMac = d.TTL, netOrder(d.Src), netOrder(d.Dst), d.Label, d.InnerMAC
	if v.Ttl == 0 {
		v.Ttl = 64 // encap.Outer's default
	}
	if d.DF {
		v.Df = 1
	}
	return v, nil
}

func (p *Program) setShortcuts(want shortcuts) error {
	have := &p.short
	if have.ports == nil {
		*have = newShortcuts()
	}
	for ifindex := range want.tx {
		if !have.tx[ifindex] {
			if err := p.objs.ShortTx.Put(uint32(ifindex), uint32(ifindex)); err != nil {
				return fmt.Errorf("adding shortcut device %d: %w", ifindex, err)
			}
			have.tx[ifindex] = true
		}
	}
	for k, v := range want.dests {
		if old, ok := have.dests[k]; !ok || old != v {
			if err := p.objs.ShortOut.Put(k, v); err != nil {
				return fmt.Errorf("adding shortcut to %s in VRF %d: %w", addrString(k.Addr), k.Vrf, err)
			}
			have.dests[k] = v
		}
	}
	for k, v := range want.labels {
		if old, ok := have.labels[k]; !ok || old != v {
			if err := p.objs.ShortLabels.Put(k, v); err != nil {
				return fmt.Errorf("adding shortcut label %d of kind %d: %w", k.Label, k.Kind, err)
			}
			have.labels[k] = v
		}
	}
	for ifindex, v := range want.ports {
		if old, ok := have.ports[ifindex]; !ok || old != v {
			if err := p.objs.ShortIn.Put(uint32(ifindex), v); err != nil {
				return fmt.Errorf("adding shortcut port %d: %w", ifindex, err)
			}
			have.ports[ifindex] = v
		}
	}
	for ifindex := range have.ports {
		if _, ok := want.ports[ifindex]; !ok {
			if err := deleteKey(p.objs.ShortIn, uint32(ifindex)); err != nil {
				return fmt.Errorf("removing shortcut port %d: %w", ifindex, err)
			}
			delete(have.ports, ifindex)
		}
	}
	for k := range have.labels {
		if _, ok := want.labels[k]; !ok {
			if err := deleteKey(p.objs.ShortLabels, k); err != nil {
				return fmt.Errorf("removing shortcut label %d of kind %d: %w", k.Label, k.Kind, err)
			}
			delete(have.labels, k)
		}
	}
	for k := range have.dests {
		if _, ok := want.dests[k]; !ok {
			if err := deleteKey(p.objs.ShortOut, k); err != nil {
				return fmt.Errorf("removing shortcut to %s in VRF %d: %w", addrString(k.Addr), k.Vrf, err)
			}
			delete(have.dests, k)
		}
	}
	for ifindex := range have.tx {
		if !want.tx[ifindex] {
			if err := deleteKey(p.objs.ShortTx, uint32(ifindex)); err != nil {
				return fmt.Errorf("removing shortcut device %d: %w", ifindex, err)
			}
			delete(have.tx, ifindex)
		}
	}
	return nil
}

// forgetShortcuts removes every shortcut entry that names ifindex, as a
// device leaves. Callers hold p.mu.
func (p *Program) forgetShortcuts(ifindex int) error {
	if p.short.ports == nil {
		return nil
	}
	want := newShortcuts()
	maps.Copy(want.labels, p.short.labels)
	for i, v := range p.short.ports {
		if i != ifindex {
			want.ports[i] = v
		}
	}
	for k, v := range p.short.dests {
		if int(v.Ifindex) != ifindex {
			want.dests[k] = v
			want.tx[int(v.Ifindex)] = true
		}
	}
	return p.setShortcuts(want)
}

// ShortcutCount is how many frames, and bytes, the shortcut has taken in
// on the device since it got its port slot.
func (p *Program) ShortcutCount(ifindex int) (packets, bytes uint64, err error) {
	p.mu.Lock()
	pt, ok := p.ports[ifindex]
	p.mu.Unlock()
	if !ok {
		return 0, 0, nil
	}
	packets, bytes, err = p.slotCount(pt.slot)
	if err != nil {
		return 0, 0, fmt.Errorf("reading shortcut counters of ifindex %d: %w", ifindex, err)
	}
	return packets, bytes, nil
}

// FabricShortcutCount is how many frames, and bytes, the fabric program's
// shortcut has delivered to pods since the Program was loaded.
func (p *Program) FabricShortcutCount() (packets, bytes uint64, err error) {
	packets, bytes, err = p.slotCount(fabricSlot)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the fabric's shortcut counters: %w", err)
	}
	return packets, bytes, nil
}

func (p *Program) slotCount(slot uint32) (packets, bytes uint64, err error) {
	var per []podShortCount
	if err := p.objs.ShortStats.Lookup(slot, &per); err != nil {
		return 0, 0, err
	}
	for _, c := range per {
		packets += c.Packets
		bytes += c.Bytes
	}
	return packets, bytes, nil
}

// resetCount zeroes a port slot's shortcut counters as the slot is handed
// out. Callers hold p.mu.
func (p *Program) resetCount(slot uint32) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("resetting shortcut counters: %w", err)
	}
	zero := make([]podShortCount, n)
	if err := p.objs.ShortStats.Put(slot, zero); err != nil {
		return fmt.Errorf("resetting shortcut counters of slot %d: %w", slot, err)
	}
	return nil
}

// tunnelLabel reports whether label is an MPLS label (16..2^20-1) for
// ShortMPLSoUDP or a VNI (0..2^24-1) for ShortVXLAN.
func tunnelLabel(k ShortcutKind, label uint32) bool {
	switch k {
	case ShortMPLSoUDP:
		return label >= 16 && label <= 1<<20-1
	case ShortVXLAN:
		return label <= 1<<24-1
	}
	return false
}

func shortKey(vrf uint32, a [4]byte) podShortKey {
	return podShortKey{Vrf: vrf, Addr: netOrder(a)}
}

// netOrder is a as a __be32 the program compares with a header's: its
// bytes in memory are a's.
func netOrder(a [4]byte) uint32 {
	return uint32(a[0]) | uint32(a[1])<<8 | uint32(a[2])<<16 | uint32(a[3])<<24
}

func addrString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d.%d", byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

func deleteKey(m *ebpf.Map, key any) error {
	if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// RedirectTarget is the package's RedirectTarget, for the agent's seam.
func (p *Program) RedirectTarget(ifindex int) (bool, error) { return RedirectTarget(ifindex) }
