package topo

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/xvr-project/xvr/bench/gen"
)

// Kind names a datapath.
type Kind string

// The datapaths xvr-bench compares.
const (
	XVR          Kind = "xvr"
	LinuxRouting Kind = "linux-routing"
	LinuxBridge  Kind = "linux-bridge"
	KernelVXLAN  Kind = "kernel-vxlan"
	OVSAFXDP     Kind = "ovs-afxdp"
	// XVRMPLSoUDP, XVRVXLAN and XVRFabric are xvr across two nodes: over an
	// MPLSoUDP or VXLAN tunnel, or natively on the fabric.
	XVRMPLSoUDP Kind = "xvr-mplsoudp"
	XVRVXLAN    Kind = "xvr-vxlan"
	XVRFabric   Kind = "xvr-fabric"
)

// Kinds lists every datapath in report order.
var Kinds = []Kind{XVR, LinuxRouting, LinuxBridge, OVSAFXDP, KernelVXLAN, XVRMPLSoUDP, XVRVXLAN, XVRFabric}

// AcrossNodes reports whether k is an xvr datapath between two nodes.
func (k Kind) AcrossNodes() bool {
	return k == XVRMPLSoUDP || k == XVRVXLAN || k == XVRFabric
}

// SinkPort is the UDP port of the generator's frames; the sink counts and
// drops those and passes everything else.
const SinkPort = 9

// ErrSkipped wraps the reason a datapath cannot be built on this machine
// (a missing package), as opposed to a failure.
var ErrSkipped = errors.New("skipped")

// Options configure Build. The zero value pins nothing.
type Options struct {
	// BinDir holds xvrd and xvrctl (XVR only).
	BinDir string
	// ForwarderCPU is the CPU for the forwarder: xvrd is started under
	// taskset, kernel datapaths get RPS on the ingress host veth steering
	// their receive processing there. Negative: no pinning.
	ForwarderCPU int
	// Log receives the output of xvrd (and of OVS's daemons); nil
	// discards it.
	Log io.Writer
	// OVSPortType forces the type of OVSAFXDP's ports (OVSPortAFXDP or
	// OVSPortSystem); "" takes afxdp when the installed OVS supports it.
	OVSPortType string
	// XvrdArgs are extra flags for every xvrd (for example "-fill", "1024");
	// they come after the topology's own, so they win.
	XvrdArgs []string
	// ExtraPods (XVR only) adds that many idle pods, ports of the same VN
	// on the one poller, beside A and B.
	ExtraPods int
	// PolicyOnB (XVR only) gives B's interface an allow-all ingress
	// policy, so that every frame to B goes through the flow table.
	PolicyOnB bool
}

// Endpoint is a pod: a namespace with IfName (eth0) attached to a node
// namespace by a veth whose node end is HostIf.
type Endpoint struct {
	NS     *NS
	IfName string
	IP     netip.Prefix
	MAC    net.HardwareAddr
	Node   *NS
	HostIf string
}

// Topology is one datapath between pod A (generator) and pod B (sink).
type Topology struct {
	Kind Kind
	A, B Endpoint
	// DstMAC is the destination MAC of A's generated frames (the next hop).
	DstMAC net.HardwareAddr
	Sink   *gen.Sink
	// Forwarder is xvrd (node 1's across nodes; nil for kernel datapaths).
	Forwarder *Xvrd
	// Forwarders are all the topology's xvrds (both nodes' across nodes).
	Forwarders []*Xvrd
	// OVS is the Open vSwitch instance of OVSAFXDP (nil otherwise).
	OVS *OVS
	// Label names the datapath in the report when it is not Kind: OVS
	// with AF_PACKET ports where the build lacks AF_XDP.
	Label string
	// Notes says how the datapath is set up (for the report).
	Notes string

	restore bool // Source must restore headers on A's host veth
	u       undo
}

// Build creates the topology of kind. On error everything created so far
// is deleted; an error wrapping ErrSkipped means the datapath cannot run
// here (its message says why).
func Build(kind Kind, o Options) (*Topology, error) {
	t := &Topology{Kind: kind}
	err := t.build(o)
	if err == nil {
		err = t.attachSink()
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("build %s: %w", kind, err), t.Close())
	}
	return t, nil
}

func (t *Topology) build(o Options) error {
	switch t.Kind {
	case XVR:
		return t.buildXVR(o)
	case LinuxRouting:
		return t.buildRouting(o)
	case LinuxBridge:
		return t.buildBridge(o)
	case KernelVXLAN:
		return t.buildVXLAN(o)
	case XVRMPLSoUDP, XVRVXLAN, XVRFabric:
		return t.buildOverlay(o)
	case OVSAFXDP:
		return t.buildOVS(o)
	}
	return fmt.Errorf("unknown datapath %q", t.Kind)
}

// Close stops xvrd, detaches programs and deletes every link and namespace
// the topology made, by name.
func (t *Topology) Close() error {
	return t.u.run()
}

// ForwarderCPU returns the CPU time of all the topology's xvrds, or of
// ovs-vswitchd (0 for kernel datapaths).
func (t *Topology) ForwarderCPU() (time.Duration, error) {
	procs := make([]*daemon, 0, len(t.Forwarders)+1)
	for _, x := range t.Forwarders {
		procs = append(procs, x.daemon)
	}
	if t.OVS != nil && t.OVS.vswitchd != nil {
		procs = append(procs, t.OVS.vswitchd)
	}
	var sum time.Duration
	for _, p := range procs {
		d, err := p.CPUTime()
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// addPod creates a pod namespace attached to node with ip and mac, a
// default route via gw (onlink; none if gw is invalid), transmit checksum
// offload off (partial checksums break TCP through XDP paths) and IPv6 off.
func (t *Topology) addPod(node *NS, ip netip.Prefix, mac net.HardwareAddr, gw netip.Addr) (Endpoint, error) {
	ns, err := newNS("xbp", &t.u)
	if err != nil {
		return Endpoint{}, err
	}
	host, err := Name("xbh")
	if err != nil {
		return Endpoint{}, err
	}
	p := Endpoint{NS: ns, IfName: "eth0", IP: ip, MAC: mac, Node: node, HostIf: host}
	if err := node.addLink(&t.u, host, "type", "veth", "peer", "name", "eth0", "netns", ns.Name); err != nil {
		return p, err
	}
	if err := upNoIPv6(node, host); err != nil {
		return p, err
	}
	return p, p.configure(gw)
}

func (p Endpoint) configure(gw netip.Addr) error {
	err := p.NS.runAll(
		[]string{"sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"},
		[]string{"ip", "link", "set", "eth0", "address", p.MAC.String()},
		[]string{"ethtool", "-K", "eth0", "tx", "off"},
		[]string{"ip", "addr", "add", p.IP.String(), "dev", "eth0"},
		[]string{"ip", "link", "set", "eth0", "up"},
		// GRO on every datapath's pods alike: NAPI on the pod's end, which
		// frames XDP redirects to it need (xvr's shortcut), and TCP
		// coalesced on receive. Once up: only then does the kernel mark
		// the host end as a redirect target.
		[]string{"ethtool", "-K", "eth0", "gro", "on"},
		// A qdisc on every datapath's pods alike, as xvr-cni gives its
		// pods: with one, a full host-end ring (a veth whose host end runs
		// XDP in NAPI) pushes back instead of dropping what the pod sends.
		[]string{"tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "pfifo_fast"})
	if err != nil || !gw.IsValid() {
		return err
	}
	_, err = p.NS.Run("ip", "route", "add", "default", "via", gw.String(), "dev", "eth0", "onlink")
	return err
}

func upNoIPv6(ns *NS, dev string) error {
	return ns.runAll(
		[]string{"sysctl", "-qw", "net.ipv6.conf." + dev + ".disable_ipv6=1"},
		[]string{"ip", "link", "set", dev, "up"})
}

// attachSink attaches the counting UDP sink to B's eth0.
func (t *Topology) attachSink() error {
	err := gen.InNetNS(t.B.NS.Name, func() error {
		ifi, err := net.InterfaceByName(t.B.IfName)
		if err != nil {
			return fmt.Errorf("find %s: %w", t.B.IfName, err)
		}
		t.Sink, err = gen.AttachUDPSink(ifi.Index, SinkPort)
		return err
	})
	if err != nil {
		return fmt.Errorf("sink in %s: %w", t.B.NS.Name, err)
	}
	t.u.push(t.Sink.Close)
	return nil
}

// steerRPS sends the receive processing of dev in ns to cpu (RPS), so a
// kernel datapath forwards on a core other than the generator's.
func steerRPS(ns *NS, dev string, cpu int) error {
	if cpu < 0 {
		return nil
	}
	mask := strconv.FormatUint(1<<uint(cpu), 16)
	_, err := ns.Run("sh", "-c", "echo "+mask+" > /sys/class/net/"+dev+"/queues/rx-0/rps_cpus")
	return err
}

func joinErrs(errs []error) error { return errors.Join(errs...) }
