package xdpprog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Sizes compiled into bpf/fabric.c; LoadFabric checks the maps against them.
const (
	// MaxFabricQueues is how many rx queues of the fabric NIC can have a
	// socket. Frames on a higher queue pass to the host.
	MaxFabricQueues = 64
	// MaxFabricPrefixes is how many fabric-forwarded subnets fit.
	MaxFabricPrefixes = 4096
)

// FabricProgName is the kernel name of the fabric program; Attach treats a
// program of this name on the device as a stale xvr attachment.
const FabricProgName = "xvr_fabric"

// TF's fabric SNAT port pools, the defaults of FabricConfig.
var (
	DefaultSNATTCPPorts = [2]uint16{56000, 57023}
	DefaultSNATUDPPorts = [2]uint16{57024, 58047}
)

// Overlay UDP destination ports xvr_fabric takes when sent to the node IP.
const (
	PortMPLSoUDP = 6635 // RFC 7510
	PortVXLAN    = 4789 // RFC 7348
)

// fabric_config.flags in bpf/fabric.c.
const (
	fabricFlagOverlay = 1
	fabricFlagSNAT    = 2
)

// FabricConfig is what xvr_fabric needs to know about the node.
type FabricConfig struct {
	// NodeIP is the node's IPv4 address on the fabric. The zero Addr means
	// not known yet: overlay and SNAT return traffic then pass to the host
	// until SetNodeIP.
	NodeIP netip.Addr
	// TCPPorts and UDPPorts are the SNAT pools as inclusive [lo, hi]
	// ranges; the zero value means TF's (DefaultSNATTCPPorts,
	// DefaultSNATUDPPorts). ICMP echo identifiers come from UDPPorts.
	TCPPorts, UDPPorts [2]uint16
	// Shortcut is the pod program whose shortcut maps the fabric program
	// shares: it then delivers what arrives for the pods those maps list
	// without the forwarder. nil: no shortcut.
	Shortcut *Program
}

// Fabric is the loaded fabric program and its maps, for the one fabric NIC
// of a node. Its methods are safe for concurrent use; none of them is meant
// for the packet path.
type Fabric struct {
	mu       sync.Mutex
	objs     fabricObjects
	id       ebpf.ProgramID
	cfg      fabricFabricConfig
	prefixes map[netip.Prefix]struct{}
	ifindex  int    // the device, fixed by the first Attach or Register; 0: none
	queues   uint64 // bit q: a socket is registered for queue q
	link     link.Link
	mode     Mode
}

// LoadFabric loads xvr_fabric and its maps into the kernel with cfg.
func LoadFabric(cfg FabricConfig) (*Fabric, error) {
	kcfg, err := fabricKernelConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("removing memlock rlimit: %w", err)
	}
	f := &Fabric{cfg: kcfg, prefixes: make(map[netip.Prefix]struct{})}
	var opts *ebpf.CollectionOptions
	if p := cfg.Shortcut; p != nil {
		opts = &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
			"short_out": p.objs.ShortOut, "short_tx": p.objs.ShortTx,
			"short_labels": p.objs.ShortLabels, "short_stats": p.objs.ShortStats}}
	}
	if err := loadFabricObjects(&f.objs, opts); err != nil {
		return nil, fmt.Errorf("loading %s: %w", FabricProgName, err)
	}
	if err := f.init(); err != nil {
		_ = f.objs.Close()
		return nil, err
	}
	return f, nil
}

// fabricKernelConfig validates cfg and turns it into the map value.
func fabricKernelConfig(cfg FabricConfig) (fabricFabricConfig, error) {
	var k fabricFabricConfig
	tcp, err := portRange("tcp", cfg.TCPPorts, DefaultSNATTCPPorts)
	if err != nil {
		return k, err
	}
	udp, err := portRange("udp", cfg.UDPPorts, DefaultSNATUDPPorts)
	if err != nil {
		return k, err
	}
	k.TcpLo, k.TcpHi, k.UdpLo, k.UdpHi = tcp[0], tcp[1], udp[0], udp[1]
	if err := setNodeIP(&k, cfg.NodeIP); err != nil {
		return k, err
	}
	return k, nil
}

func portRange(proto string, r, def [2]uint16) ([2]uint16, error) {
	if r == [2]uint16{} {
		return def, nil
	}
	if r[0] > r[1] {
		return r, fmt.Errorf("snat %s ports [%d, %d]: low above high", proto, r[0], r[1])
	}
	return r, nil
}

// setNodeIP writes ip into k and turns the node-IP classes on, or off for
// the zero Addr.
func setNodeIP(k *fabricFabricConfig, ip netip.Addr) error {
	if !ip.IsValid() {
		k.NodeIp, k.Flags = 0, 0
		return nil
	}
	ip = ip.Unmap()
	if !ip.Is4() || ip.IsUnspecified() {
		return fmt.Errorf("node ip %v: not an IPv4 unicast address", ip)
	}
	a := ip.As4()
	k.NodeIp = binary.NativeEndian.Uint32(a[:]) // bytes in network order
	k.Flags = fabricFlagOverlay | fabricFlagSNAT
	return nil
}

// init checks the loaded maps against the Go constants, writes the config
// and records the program's kernel id.
func (f *Fabric) init() error {
	if n := f.objs.Xsks.MaxEntries(); n != MaxFabricQueues {
		return fmt.Errorf("fabric xsks has %d entries, want %d: regenerate", n, MaxFabricQueues)
	}
	if n := f.objs.Prefixes.MaxEntries(); n != MaxFabricPrefixes {
		return fmt.Errorf("fabric prefixes has %d entries, want %d: regenerate", n, MaxFabricPrefixes)
	}
	if err := f.writeConfig(f.cfg); err != nil {
		return err
	}
	id, err := progID(f.objs.XvrFabric, FabricProgName)
	f.id = id
	return err
}

func progID(prog *ebpf.Program, name string) (ebpf.ProgramID, error) {
	info, err := prog.Info()
	if err != nil {
		return 0, fmt.Errorf("reading %s info: %w", name, err)
	}
	id, ok := info.ID()
	if !ok {
		return 0, fmt.Errorf("reading %s id: %w", name, ebpf.ErrNotSupported)
	}
	return id, nil
}

func (f *Fabric) writeConfig(k fabricFabricConfig) error {
	if err := f.objs.Config.Put(uint32(0), k); err != nil {
		return fmt.Errorf("writing fabric config: %w", err)
	}
	return nil
}

// ID is the kernel id of the loaded xvr_fabric, as Attached reports it.
func (f *Fabric) ID() uint32 { return uint32(f.id) }

// SetNodeIP changes the node IP; the zero Addr turns the overlay and SNAT
// classes off. An address inside an added prefix is refused.
func (f *Fabric) SetNodeIP(ip netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.cfg
	if err := setNodeIP(&k, ip); err != nil {
		return err
	}
	if p, ok := f.covering(ip.Unmap()); ok {
		return fmt.Errorf("node ip %v is inside fabric prefix %v", ip, p)
	}
	if err := f.writeConfig(k); err != nil {
		return err
	}
	f.cfg = k
	return nil
}

// covering returns an added prefix holding ip. Callers hold f.mu.
func (f *Fabric) covering(ip netip.Addr) (netip.Prefix, bool) {
	for p := range f.prefixes {
		if ip.IsValid() && p.Contains(ip) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// nodeIP is the configured node IP, the zero Addr if none. Callers hold f.mu.
func (f *Fabric) nodeIP() netip.Addr {
	if f.cfg.Flags == 0 {
		return netip.Addr{}
	}
	var a [4]byte
	binary.NativeEndian.PutUint32(a[:], f.cfg.NodeIp)
	return netip.AddrFrom4(a)
}

// AddPrefix makes IPv4 to p, and ARP for addresses in p, xvr's. Adding an
// added prefix is no error. A prefix holding the node IP is refused: it
// would say the node's own address is a pod's.
func (f *Fabric) AddPrefix(p netip.Prefix) error {
	p, key, err := lpmKey(p)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if ip := f.nodeIP(); ip.IsValid() && p.Contains(ip) {
		return fmt.Errorf("fabric prefix %v holds the node ip %v", p, ip)
	}
	if err := f.objs.Prefixes.Put(key, uint8(1)); err != nil {
		return fmt.Errorf("adding fabric prefix %v: %w", p, err)
	}
	f.prefixes[p] = struct{}{}
	return nil
}

// DeletePrefix undoes AddPrefix; deleting what is not there is no error.
func (f *Fabric) DeletePrefix(p netip.Prefix) error {
	p, key, err := lpmKey(p)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err = f.objs.Prefixes.Delete(key)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("deleting fabric prefix %v: %w", p, err)
	}
	delete(f.prefixes, p)
	return nil
}

// lpmKey validates p and returns it masked with its trie key.
func lpmKey(p netip.Prefix) (netip.Prefix, fabricFabricLpmKey, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return p, fabricFabricLpmKey{}, fmt.Errorf("fabric prefix %v: not an IPv4 prefix", p)
	}
	p = p.Masked()
	return p, fabricFabricLpmKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}, nil
}

// Close detaches the program, then closes it and its maps. The Fabric must
// not be used afterwards.
func (f *Fabric) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := []error{f.detach()}
	if err := f.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing fabric objects: %w", err))
	}
	return errors.Join(errs...)
}

// Attach attaches xvr_fabric to the fabric NIC through a bpf_link, in
// driver mode, or in generic mode where the driver has no native XDP. A
// stale xvr_fabric attached through netlink is replaced; a foreign program,
// or an xvr_fabric held by another bpf_link, gives a *BusyError. Attaching
// the attached device again is a no-op; another device is refused (one
// Fabric serves one NIC; Detach first).
func (f *Fabric) Attach(ifindex int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.bind(ifindex); err != nil {
		return err
	}
	if f.link != nil {
		if cur, err := query(ifindex); err == nil && cur.id == uint32(f.id) {
			return nil
		}
		_ = f.link.Close() // defunct: the device went away or was reset
		f.link, f.mode = nil, ModeNone
	}
	if err := clearStale(ifindex, FabricProgName); err != nil {
		return err
	}
	l, mode, err := attachXDP(f.objs.XvrFabric, FabricProgName, ifindex)
	if err != nil {
		return err
	}
	f.link, f.mode = l, mode
	return nil
}

// bind fixes the Fabric's device on first use. Callers hold f.mu.
func (f *Fabric) bind(ifindex int) error {
	if ifindex < 1 {
		return fmt.Errorf("invalid ifindex %d", ifindex)
	}
	if f.ifindex != 0 && f.ifindex != ifindex {
		return fmt.Errorf("ifindex %d: the fabric program serves ifindex %d", ifindex, f.ifindex)
	}
	f.ifindex = ifindex
	return nil
}

// Mode reports how xvr_fabric is attached (ModeNone when it is not).
func (f *Fabric) Mode() Mode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mode
}

// Detach detaches xvr_fabric, removes every socket from its map and frees
// the Fabric for another device. Prefixes and config stay.
func (f *Fabric) Detach() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.detach()
}

func (f *Fabric) detach() error {
	if f.link != nil {
		if err := f.link.Close(); err != nil {
			return fmt.Errorf("detaching %s from ifindex %d: %w", FabricProgName, f.ifindex, err)
		}
		f.link, f.mode = nil, ModeNone
	}
	for q := 0; q < MaxFabricQueues; q++ {
		if err := f.unregister(q); err != nil {
			return err
		}
	}
	f.ifindex = 0
	return nil
}

// Register puts the AF_XDP socket fd, bound to (ifindex, queue) of the
// fabric NIC, into the socket map; registering again replaces it. ifindex
// must be the attached device (or, before Attach, fixes it). It is one half
// of dataplane.Binder.
func (f *Fabric) Register(ifindex, queue, fd int) error {
	if err := checkFabricQueue(queue); err != nil {
		return err
	}
	if fd < 0 {
		return fmt.Errorf("registering ifindex %d queue %d: invalid fd %d", ifindex, queue, fd)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.bind(ifindex); err != nil {
		return err
	}
	if err := f.objs.Xsks.Put(uint32(queue), uint32(fd)); err != nil {
		if f.queues == 0 && f.link == nil {
			f.ifindex = 0 // a failed first Register fixes no device
		}
		return fmt.Errorf("registering ifindex %d queue %d: %w", ifindex, queue, err)
	}
	f.queues |= 1 << queue
	return nil
}

// Unregister removes the socket of (ifindex, queue): that queue's frames
// pass to the host from then on, xvr's included. Unregistering what is not
// registered, or a device the Fabric does not serve, is no error.
func (f *Fabric) Unregister(ifindex, queue int) error {
	if err := checkFabricQueue(queue); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if ifindex != f.ifindex {
		return nil
	}
	return f.unregister(queue)
}

func (f *Fabric) unregister(queue int) error {
	err := f.objs.Xsks.Delete(uint32(queue))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unregistering ifindex %d queue %d: %w", f.ifindex, queue, err)
	}
	f.queues &^= 1 << queue
	return nil
}

func checkFabricQueue(queue int) error {
	if queue < 0 || queue >= MaxFabricQueues {
		return fmt.Errorf("queue %d out of range [0,%d)", queue, MaxFabricQueues)
	}
	return nil
}
