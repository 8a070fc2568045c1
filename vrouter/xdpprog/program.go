package xdpprog

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Sizes compiled into bpf/pod.c; Load checks the maps against them.
const (
	// MaxPorts is how many devices one Program can serve at once.
	MaxPorts = 4096
	// MaxQueues is how many rx queues per device can have a socket.
	MaxQueues = 8
)

// ProgName is the kernel name of the pod program; Attach treats a program of
// this name on a device as a stale xvr attachment.
const ProgName = "xvr_pod"

// Program is the loaded pod program and its maps. Its methods are safe for
// concurrent use; none of them is meant for the packet path.
type Program struct {
	mu    sync.Mutex
	objs  podObjects
	id    ebpf.ProgramID
	ports map[int]*port // by ifindex
	free  []uint32      // released port slots, reused first
	next  uint32        // next never-used port slot
	short shortcuts     // the shortcut maps' contents
}

// port is one device known to the Program: its slot in the maps and, once
// attached, its link.
type port struct {
	slot uint32
	link link.Link
	mode Mode
}

// Load loads xvr_pod and its maps into the kernel.
func Load() (*Program, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("removing memlock rlimit: %w", err)
	}
	p := &Program{ports: make(map[int]*port)}
	if err := loadPodObjects(&p.objs, nil); err != nil {
		return nil, fmt.Errorf("loading %s: %w", ProgName, err)
	}
	if err := p.init(); err != nil {
		_ = p.objs.Close()
		return nil, err
	}
	return p, nil
}

// init checks the loaded maps against the Go constants and records the
// program's kernel id.
func (p *Program) init() error {
	if n := p.objs.Xsks.MaxEntries(); n != MaxPorts*MaxQueues {
		return fmt.Errorf("xsks has %d entries, want %d: regenerate", n, MaxPorts*MaxQueues)
	}
	for _, m := range []struct {
		name string
		m    *ebpf.Map
		want uint32
	}{{"ports", p.objs.Ports, MaxPorts}, {"short_in", p.objs.ShortIn, MaxPorts}, {"short_tx", p.objs.ShortTx, MaxPorts},
		{"short_stats", p.objs.ShortStats, MaxPorts + 1}, {"short_out", p.objs.ShortOut, MaxShortcuts},
		{"short_labels", p.objs.ShortLabels, MaxShortcutLabels}} {
		if n := m.m.MaxEntries(); n != m.want {
			return fmt.Errorf("%s has %d entries, want %d: regenerate", m.name, n, m.want)
		}
	}
	info, err := p.objs.XvrPod.Info()
	if err != nil {
		return fmt.Errorf("reading %s info: %w", ProgName, err)
	}
	id, ok := info.ID()
	if !ok {
		return fmt.Errorf("reading %s id: %w", ProgName, ebpf.ErrNotSupported)
	}
	p.id = id
	return nil
}

// ID is the kernel id of the loaded xvr_pod, as Attached reports it.
func (p *Program) ID() uint32 { return uint32(p.id) }

// Close detaches every device this Program attached, then closes the
// program and maps. The Program must not be used afterwards.
func (p *Program) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for ifindex, pt := range p.ports {
		if pt.link != nil {
			if err := pt.link.Close(); err != nil {
				errs = append(errs, fmt.Errorf("detaching ifindex %d: %w", ifindex, err))
			}
		}
		delete(p.ports, ifindex)
	}
	if err := p.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing objects: %w", err))
	}
	return errors.Join(errs...)
}
