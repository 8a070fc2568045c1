package xdpprog

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Register puts the AF_XDP socket fd, bound to (ifindex, queue), into the
// socket map, giving the device a port slot on first use. Registering again
// replaces the socket. The kernel keeps its own reference to the socket until
// Unregister, Detach or Close.
func (p *Program) Register(ifindex, queue, fd int) error {
	if err := checkQueue(queue); err != nil {
		return err
	}
	if fd < 0 {
		return fmt.Errorf("registering ifindex %d queue %d: invalid fd %d", ifindex, queue, fd)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, known := p.ports[ifindex]
	pt, err := p.port(ifindex)
	if err != nil {
		return err
	}
	if err := p.objs.Xsks.Put(xskKey(pt.slot, queue), uint32(fd)); err != nil {
		if !known {
			_ = p.release(ifindex, pt)
		}
		return fmt.Errorf("registering ifindex %d queue %d: %w", ifindex, queue, err)
	}
	return nil
}

// Unregister removes the socket of (ifindex, queue). Frames of that queue
// are dropped from then on while the device stays attached. Unregistering
// what is not registered is no error.
func (p *Program) Unregister(ifindex, queue int) error {
	if err := checkQueue(queue); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pt, ok := p.ports[ifindex]
	if !ok {
		return nil
	}
	return p.deleteXsk(ifindex, pt.slot, queue)
}

func checkQueue(queue int) error {
	if queue < 0 || queue >= MaxQueues {
		return fmt.Errorf("queue %d out of range [0,%d)", queue, MaxQueues)
	}
	return nil
}

func xskKey(slot uint32, queue int) uint32 {
	return slot*MaxQueues + uint32(queue)
}

// port returns the device's port, allocating a slot and publishing it in the
// ports map on first use. Callers hold p.mu.
func (p *Program) port(ifindex int) (*port, error) {
	if pt, ok := p.ports[ifindex]; ok {
		return pt, nil
	}
	if ifindex < 1 {
		return nil, fmt.Errorf("invalid ifindex %d", ifindex)
	}
	slot, err := p.allocSlot()
	if err != nil {
		return nil, fmt.Errorf("adding ifindex %d: %w", ifindex, err)
	}
	if err := p.resetCount(slot); err != nil {
		p.free = append(p.free, slot)
		return nil, fmt.Errorf("adding ifindex %d: %w", ifindex, err)
	}
	if err := p.objs.Ports.Put(uint32(ifindex), slot); err != nil {
		p.free = append(p.free, slot)
		return nil, fmt.Errorf("adding ifindex %d: %w", ifindex, err)
	}
	pt := &port{slot: slot}
	p.ports[ifindex] = pt
	return pt, nil
}

// errFull is returned when MaxPorts devices are in use.
var errFull = errors.New("all port slots in use")

func (p *Program) allocSlot() (uint32, error) {
	if n := len(p.free); n > 0 {
		slot := p.free[n-1]
		p.free = p.free[:n-1]
		return slot, nil
	}
	if p.next >= MaxPorts {
		return 0, errFull
	}
	p.next++
	return p.next - 1, nil
}

// release empties the device's map entries and frees its slot. Callers hold
// p.mu and have already detached the program.
func (p *Program) release(ifindex int, pt *port) error {
	if err := p.forgetShortcuts(ifindex); err != nil {
		return err
	}
	for q := 0; q < MaxQueues; q++ {
		if err := p.deleteXsk(ifindex, pt.slot, q); err != nil {
			return err
		}
	}
	err := p.objs.Ports.Delete(uint32(ifindex))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("removing ifindex %d: %w", ifindex, err)
	}
	delete(p.ports, ifindex)
	p.free = append(p.free, pt.slot)
	return nil
}

func (p *Program) deleteXsk(ifindex int, slot uint32, queue int) error {
	err := p.objs.Xsks.Delete(xskKey(slot, queue))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unregistering ifindex %d queue %d: %w", ifindex, queue, err)
	}
	return nil
}
