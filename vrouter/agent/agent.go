package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
	"github.com/xvr-project/xvr/vrouter/route"
	"github.com/xvr-project/xvr/vrouter/xdpprog"
)

// Store persists the desired state. vrouter/store implements it.
type Store interface {
	PutNetwork(n api.Network) error
	DeleteNetwork(namespace, name string) error
	Networks() ([]api.Network, error)
	PutPort(p api.Port) error
	DeletePort(id string) error
	Ports() ([]api.Port, error)
	PutRoute(r api.Route) error
	DeleteRoute(network, prefix string) error
	Routes() ([]api.Route, error)
	PutPod(p api.Pod) error
	DeletePod(namespace, name string) error
	Pods() ([]api.Pod, error)
	PutPolicies(p api.Policies) error
	// Policies is the zero Policies when none was stored.
	Policies() (api.Policies, error)
}

// Links finds devices by name (netlink in xvrd).
type Links interface {
	// Lookup returns the device's ifindex and its number of RX queues.
	Lookup(name string) (ifindex, queues int, err error)
	// MAC returns the device's MAC address.
	MAC(name string) (net.HardwareAddr, error)
}

// Attacher puts the pod XDP program on a device and takes it off again
// (vrouter/xdpprog in xvrd).
type Attacher interface {
	Attach(ifindex int) error
	Detach(ifindex int) error
}

// Shortcutter is the XDP shortcut (vrouter/xdpprog's Program, whose maps
// the fabric program shares): the kernel delivers what
// dataplane.Snapshot.Shortcuts lists without the forwarder.
type Shortcutter interface {
	SetShortcuts(ports []xdpprog.ShortcutPort, dests []xdpprog.ShortcutDest, labels []xdpprog.ShortcutLabel) error
	ShortcutCount(ifindex int) (packets, bytes uint64, err error)
	// FabricShortcutCount counts what the fabric program delivered.
	FabricShortcutCount() (packets, bytes uint64, err error)
	// RedirectTarget says whether the kernel takes frames redirected to
	// the device (a pod veth whose pod end has NAPI: GRO on).
	RedirectTarget(ifindex int) (bool, error)
}

// Poller is the part of a dataplane.Poller the agent drives.
type Poller interface {
	Do(ctx context.Context, fn func() error) error
	AddPort(vif uint32, ifindex, queue int, stats *dataplane.VifStats) error
	AddPortWith(vif uint32, ifindex, queue int, stats *dataplane.VifStats, bind dataplane.Binder) error
	RemovePort(vif uint32) error
	DropStats() *dataplane.DropStats
	KernelDrops(ctx context.Context, d *[dataplane.NumReasons]uint64) error
}

// Config is what an Agent needs.
type Config struct {
	Store    Store
	Links    Links
	Attacher Attacher
	Pollers  []Poller
	Current  *dataplane.Current
	// MAC is the vRouter's own MAC: the gateway's ARP answer and the source
	// of every frame it sends to pods.
	MAC net.HardwareAddr
	// DefaultNetwork is the key of the cluster default pod network
	// ("default/cluster-wide-default"), which cannot be deleted and is
	// marked default in network-status. Empty: none.
	DefaultNetwork string
	// Cluster prefixes Contrail names (default "k8s").
	Cluster string
	Log     *slog.Logger
	Version string
	// Fabric is the node's fabric NIC for the overlay; nil: none.
	Fabric *FabricConfig
	// Addresses is the cluster's address book (with Kubernetes); nil:
	// addresses are this node's alone.
	Addresses Addresses
	// Flows is the flow table (network policy verdicts, host-path and
	// fabric SNAT flows); nil: none, and policy is not enforced.
	Flows *flowtable.Table
	// ServiceNets are the cluster's Service CIDRs (IPv4), published in
	// snapshots: a pod's egress to them is checked after the kernel's DNAT.
	ServiceNets []netip.Prefix
	// Shortcut is the XDP shortcut, kept in line with every snapshot; nil:
	// every frame goes through the forwarder.
	Shortcut Shortcutter
}

// Agent is the node's control plane. It is safe for concurrent use.
type Agent struct {
	cfg     Config
	started time.Time

	mu     sync.Mutex
	nets   map[string]*network // by namespace/name
	ports  map[string]*port    // by id
	routes map[string]api.Route
	tables route.Tables
	vrfs   *ids
	vifs   *ids
	nhs    *ids
	pods   map[string]api.Pod
	seq    uint64 // counts port changes: orders a pod's sandboxes

	fab     *fabric            // nil without a fabric
	tunnels map[string]*tunnel // by route key

	pol         policies
	lastPol     map[uint32]*policy.Compiled // vif policies last published
	polGen      uint32
	polStats    dataplane.PolicyStats // flows decided by policy, counted by the pipeline
	serviceNets []dataplane.Prefix4
}

type network struct {
	spec   api.Network // as stored, with the xvrd-set fields
	prefix netip.Prefix
	gw     netip.Addr
	dns    netip.Addr
	target *network // the VN a reference network names; nil if it is one itself
}

// vn is the network that owns the VRF: the target of a reference, or n.
func (n *network) vn() *network {
	if n.target != nil {
		return n.target
	}
	return n
}

type port struct {
	spec    api.Port
	net     *network
	ip      netip.Addr
	mac     [6]byte
	nh      uint32
	stats   *dataplane.VifStats
	seq     uint64 // when it was applied (Agent.seq)
	ifindex int    // 0 while down
	target  bool   // the kernel takes frames redirected to the device (the shortcut may deliver to it)
	queues  int    // sockets opened (one per poller and queue)
	reason  string
}

// New makes an agent; call Load before serving.
func New(cfg Config) (*Agent, error) {
	if cfg.Store == nil || cfg.Links == nil || cfg.Attacher == nil || cfg.Current == nil {
		return nil, errors.New("agent config needs Store, Links, Attacher and Current")
	}
	if len(cfg.MAC) != 6 {
		return nil, fmt.Errorf("vrouter mac %q is not a 6-byte MAC", cfg.MAC)
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "k8s"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	a := &Agent{cfg: cfg, started: time.Now(),
		nets: map[string]*network{}, ports: map[string]*port{}, routes: map[string]api.Route{}, pods: map[string]api.Pod{},
		vrfs: newIDs(1), vifs: newIDs(1), nhs: newIDs(2), tunnels: map[string]*tunnel{}, polGen: 1}
	for _, p := range cfg.ServiceNets {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("service CIDR %s is not IPv4", p)
		}
		p = p.Masked()
		a.serviceNets = append(a.serviceNets, dataplane.Prefix4{Net: be32(p.Addr().As4()), Mask: maskOf(p.Bits())})
	}
	if f := cfg.Fabric; f != nil {
		if f.IfName == "" || !f.NodeIP.Is4() || f.Program == nil || f.Neighbors == nil {
			return nil, errors.New("fabric config needs IfName, an IPv4 NodeIP, Program and Neighbors")
		}
		if len(f.Encap) == 0 {
			f.Encap = encap.DefaultPriority()
		}
		a.fab = &fabric{cfg: *f, stats: new(dataplane.VifStats), snatNH: a.nhs.next()}
	}
	return a, nil
}

// Status describes the agent.
func (a *Agent) Status(context.Context) api.Status {
	st := api.Status{Version: a.cfg.Version, Pollers: len(a.cfg.Pollers),
		MAC: a.cfg.MAC.String(), Uptime: time.Since(a.started).Round(time.Second).String()}
	if f := a.cfg.Fabric; f != nil {
		st.FabricIf, st.NodeIP, st.Encap = f.IfName, f.NodeIP.String(), encapNames(a.fab.cfg.Encap)
		if f.MTU > 0 {
			st.PodMTU = encap.PodMTU(f.MTU, a.fab.cfg.Encap)
		}
	}
	return st
}
