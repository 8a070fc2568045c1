package xdpprog

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// MaxShortcuts is how many (VRF, pod address) deliveries the shortcut maps
// hold (bpf/pod.c's XVR_MAX_SHORTCUTS).
const MaxShortcuts = 65536

// ShortcutPort lets frames received on a device take the shortcut.
type ShortcutPort struct {
	Ifindex int
	VRF     uint32
	// RouterMAC is the vRouter's MAC: a frame's destination to be taken,
	// the source of the frame delivered.
	RouterMAC [6]byte
}

// ShortcutDest is one pod the shortcut delivers to: IPv4 to Addr in VRF
// leaves on Ifindex (the pod's host-side veth) to MAC.
type ShortcutDest struct {
	VRF     uint32
	Addr    [4]byte
	Ifindex int
	MAC     [6]byte
}

// shortcuts is what the kernel's shortcut maps hold, as last set.
type shortcuts struct {
	ports map[int]podShortPort
	dests map[podShortKey]podShortDst
	tx    map[int]bool
}

// SetShortcuts makes the shortcut maps hold exactly ports and dests. It
// changes only what differs, in an order that never leaves a frame
// redirected to a device the maps do not hold: redirect targets first,
// then destinations, then ports; removals the other way round. On an error
// the maps hold a mix of old and new entries, each of them valid; calling
// again with the same arguments finishes the job.
func (p *Program) SetShortcuts(ports []ShortcutPort, dests []ShortcutDest) error {
	want := shortcuts{ports: map[int]podShortPort{}, dests: map[podShortKey]podShortDst{}, tx: map[int]bool{}}
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
		if d.Ifindex < 1 {
			return fmt.Errorf("shortcut to %v in VRF %d: invalid ifindex %d", d.Addr, d.VRF, d.Ifindex)
		}
		want.dests[shortKey(d.VRF, d.Addr)] = podShortDst{Ifindex: uint32(d.Ifindex), Mac: d.MAC}
		want.tx[d.Ifindex] = true
	}
	if len(want.dests) > MaxShortcuts {
		return fmt.Errorf("%d shortcut destinations, at most %d", len(want.dests), MaxShortcuts)
	}
	if len(want.tx) > MaxPorts {
		return fmt.Errorf("%d shortcut devices, at most %d", len(want.tx), MaxPorts)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.setShortcuts(want)
}

func (p *Program) setShortcuts(want shortcuts) error {
	have := &p.short
	if have.ports == nil {
		*have = shortcuts{ports: map[int]podShortPort{}, dests: map[podShortKey]podShortDst{}, tx: map[int]bool{}}
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
	want := shortcuts{ports: map[int]podShortPort{}, dests: map[podShortKey]podShortDst{}, tx: map[int]bool{}}
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
	var per []podShortCount
	if err := p.objs.ShortStats.Lookup(pt.slot, &per); err != nil {
		return 0, 0, fmt.Errorf("reading shortcut counters of ifindex %d: %w", ifindex, err)
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

func shortKey(vrf uint32, a [4]byte) podShortKey {
	// Addr is the address in network order as the program reads it from
	// the header: its bytes in memory are a's.
	return podShortKey{Vrf: vrf, Addr: uint32(a[0]) | uint32(a[1])<<8 | uint32(a[2])<<16 | uint32(a[3])<<24}
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
