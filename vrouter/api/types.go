// Package api is xvrd's local API: the JSON resource types exchanged over the
// root-only unix socket, the HTTP server that maps them onto a Backend, and the
// client used by xvr-cni and xvrctl.
//
// Every mutating call sets desired state and is idempotent: PUTting the same
// object twice is a no-op the second time. Bad input is answered with a 4xx
// status and a message (see Error); the server never panics on a request.
//
// Importers: cmd/xvrd (server), cmd/xvrctl and cni (client), vrouter/agent
// (implements Backend). This package imports nothing of xvr's.
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/xvr-project/xvr/policy"
)

// DefaultSocket is where xvrd listens unless told otherwise.
const DefaultSocket = "/run/xvr/xvrd.sock"

// Well-known names.
const (
	// NetworksAnnotation selects a pod's extra networks.
	NetworksAnnotation = "k8s.v1.cni.cncf.io/networks"
	// NetworkStatusAnnotation lists a pod's interfaces.
	NetworkStatusAnnotation = "k8s.v1.cni.cncf.io/network-status"
	// DefaultNetworkName is the cluster default pod network every pod gets as eth0.
	DefaultNetworkName = "cluster-wide-default"
)

// Network is a virtual network (VN) as declared by a NetworkAttachmentDefinition.
// It is keyed by the NAD's Namespace and Name.
type Network struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// CIDR is opencontrail.org/cidr, e.g. "198.18.10.0/24". Required unless Ref is set.
	CIDR string `json:"cidr,omitempty"`
	// FabricForwarding is opencontrail.org/ip_fabric_forwarding.
	FabricForwarding bool `json:"fabricForwarding,omitempty"`
	// FabricSNAT is opencontrail.org/ip_fabric_snat.
	FabricSNAT bool `json:"fabricSNAT,omitempty"`
	// HostAccess is xvr.io/host-access: the node's kernel reaches the VN's
	// pods through the host interface (the default network always has it).
	HostAccess bool `json:"hostAccess,omitempty"`
	// Ref is opencontrail.org/network: this NAD names an existing VN instead
	// of creating one.
	Ref *NetworkRef `json:"ref,omitempty"`
	// CNIType is the NAD's spec.config "type" ("xvr" or "contrail-k8s-cni"), kept for display.
	CNIType string `json:"cniType,omitempty"`

	// Fields below are set by xvrd and ignored on input.

	// VNName is the Contrail name, <cluster>-<name>-pod-network.
	VNName string `json:"vnName,omitempty"`
	// Project is the Contrail project, <cluster>-<namespace>.
	Project string `json:"project,omitempty"`
	// VRF is the forwarder's table index for this VN.
	VRF uint32 `json:"vrf,omitempty"`
	// Gateway is the VN's gateway address (last usable address), answered by proxy ARP.
	Gateway string `json:"gateway,omitempty"`
	// DNS is the address before the gateway, reserved for DNS.
	DNS string `json:"dns,omitempty"`
	// VNI is the VN's VXLAN network identifier, the same on every node: a
	// hash of the Contrail name unless the input sets one (1..2^24-1).
	VNI uint32 `json:"vni,omitempty"`
	// Label is the MPLS label under which this node receives the VN's
	// MPLSoUDP traffic (remote nodes put it in their tunnel routes).
	Label uint32 `json:"label,omitempty"`
}

// Key is "namespace/name", the form ports and routes use to name a network.
func (n Network) Key() string { return n.Namespace + "/" + n.Name }

// NetworkRef names an existing VN (opencontrail.org/network).
type NetworkRef struct {
	Domain  string `json:"domain"`
	Project string `json:"project"`
	Name    string `json:"name"`
}

// Port is a pod interface: the host side of a veth attached to a VN.
type Port struct {
	// ID is chosen by the caller and unique on the node (the CNI uses
	// <containerID>/<ifname>).
	ID string `json:"id"`
	// Network is the VN's key, "namespace/name".
	Network string `json:"network"`
	// HostIfName is the host-side veth, which xvrd opens with AF_XDP.
	HostIfName string `json:"hostIfName"`
	// IP is the pod's IPv4 address on this interface (inside the VN's CIDR).
	// Empty asks xvrd's IPAM for the lowest free address of the VN; an
	// address, once given, stays the port's for its lifetime.
	IP string `json:"ip"`
	// MAC is the pod-side MAC address, unicast. Empty asks xvrd for a
	// locally administered one (02:…), unique on the node.
	MAC string `json:"mac"`

	// Pod, ContainerID, IfName and Index say whose interface this is; the
	// CNI sets them, hand-made ports may leave them empty.
	Pod *PodRef `json:"pod,omitempty"`
	// ContainerID is the sandbox (CNI_CONTAINERID) the port was made for;
	// GC and DEL work by it.
	ContainerID string `json:"containerID,omitempty"`
	// IfName is the interface name inside the pod (eth0, eth1, …).
	IfName string `json:"ifName,omitempty"`
	// Index orders the pod's interfaces (eth0 is 0) in its network-status.
	Index int `json:"index,omitempty"`
	// DefaultRoute marks the interface that carries the pod's default route.
	DefaultRoute bool `json:"defaultRoute,omitempty"`

	// Fields below are set by xvrd and ignored on input.

	// Vif is the forwarder's interface index.
	Vif uint32 `json:"vif,omitempty"`
	// State is "up", or "down: <reason>" while the veth cannot be opened.
	State string `json:"state,omitempty"`
	// PrefixLen and Gateway are the VN's, for configuring the pod side.
	PrefixLen int    `json:"prefixLen,omitempty"`
	Gateway   string `json:"gateway,omitempty"`
}

// PodRef names the Kubernetes pod a port belongs to.
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// Pod is what xvrd knows of a pod besides its ports: its annotations, of
// which k8s.v1.cni.cncf.io/networks selects the pod's extra networks. In
// standalone mode `xvrctl pod apply -f pod.yaml` sets it from the pod's
// manifest; with Kubernetes the controller keeps it in sync.
type Pod struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	UID         string            `json:"uid,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Key is "namespace/name".
func (p Pod) Key() string { return p.Namespace + "/" + p.Name }

// NetworkStatus is one entry of the k8s.v1.cni.cncf.io/network-status
// annotation (multi-network spec v1.3, §4.1.2).
type NetworkStatus struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface"`
	IPs       []string `json:"ips"`
	Mac       string   `json:"mac"`
	Default   bool     `json:"default"`
	DNS       struct{} `json:"dns"`
}

// Attachment is one element of CNI GC's cni.dev/valid-attachments.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// GCRequest asks xvrd to delete every CNI-made port whose container has no
// valid attachment (one attachment makes all of a pod's interfaces).
type GCRequest struct {
	ValidAttachments []Attachment `json:"validAttachments"`
}

// GCResult lists the ports GC deleted.
type GCResult struct {
	Removed []string `json:"removed"`
}

// Route is a static route in a VN. Routes to local ports are implicit (a
// port's /32) and not listed here.
type Route struct {
	// Network is the VN's key, "namespace/name".
	Network string `json:"network"`
	// Prefix is an IPv4 prefix, e.g. "198.18.40.0/24".
	Prefix string `json:"prefix"`
	// NextHop says where matching packets go.
	NextHop RouteNextHop `json:"nextHop"`
	// Source is who made the route: "" by hand (xvrctl, the API), or
	// RouteSourceKube, learned from the cluster (another node's pod); xvrd
	// replaces and removes learned routes as the cluster changes.
	Source string `json:"source,omitempty"`
}

// RouteSourceKube marks a route learned from the Kubernetes API server.
const RouteSourceKube = "kube"

// RouteNextHop is the next hop of a static route.
type RouteNextHop struct {
	// Type is "port" (deliver to Port), "tunnel" (to another node),
	// "fabric" (to another node without a tunnel, for VNs with fabric
	// forwarding) or "discard".
	Type string `json:"type"`
	// Port is the ID of the port for Type "port".
	Port string `json:"port,omitempty"`
	// Node is the remote node's IP on the fabric, for Types "tunnel" and "fabric".
	Node string `json:"node,omitempty"`
	// Label is the remote node's MPLS label for the VN (its Network.Label).
	Label uint32 `json:"label,omitempty"`
	// VNI is the VN's VXLAN identifier (Network.VNI; default this node's).
	VNI uint32 `json:"vni,omitempty"`
	// Encaps are the encapsulations the remote node accepts, e.g.
	// ["MPLSoUDP","VXLAN"] (default both); xvrd picks the first of its own
	// priority (xvrd -encap) that the remote accepts. MPLSoUDP needs Label.
	Encaps []string `json:"encaps,omitempty"`
	// MAC is the remote endpoint's MAC (as an EVPN type-2 route carries it):
	// the inner destination of VXLAN frames, which a standard VTEP (a Linux
	// VXLAN device) requires. Default: the vRouter MAC, which xvr accepts.
	MAC string `json:"mac,omitempty"`
}

// Next hop and vif types as shown by introspection.
const (
	NextHopDiscard = "discard"
	NextHopReceive = "receive"
	NextHopEncap   = "encap"  // deliver to a local vif, rewriting MACs
	NextHopPort    = "port"   // RouteNextHop.Type for a local port
	NextHopTunnel  = "tunnel" // to another node, MPLSoUDP or VXLAN
	NextHopFabric  = "fabric" // to another node natively (ip_fabric_forwarding VNs)

	VifVirtual = "virtual"
	VifHost    = "host" // the node's host interface (xvr-host's peer)
)

// Vif is one forwarder interface with its live counters (TF's `vif --list`).
type Vif struct {
	ID   uint32 `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Port string `json:"port,omitempty"`
	// Network is the port's network, "namespace/name" (two NADs of one name
	// in two namespaces differ here); VN is its Contrail VN name.
	Network   string `json:"network,omitempty"`
	VN        string `json:"vn,omitempty"`
	VRF       uint32 `json:"vrf"`
	MAC       string `json:"mac,omitempty"`
	IP        string `json:"ip,omitempty"`
	State     string `json:"state"`
	RXPackets uint64 `json:"rxPackets"`
	RXBytes   uint64 `json:"rxBytes"`
	TXPackets uint64 `json:"txPackets"`
	TXBytes   uint64 `json:"txBytes"`
	Drops     uint64 `json:"drops"`
	// ShortcutPackets and ShortcutBytes count the frames received on the
	// vif that the XDP shortcut delivered in the kernel (not in RXPackets:
	// the forwarder never saw them): to a local pod or, encapsulated, to
	// another node; on the fabric vif, those it delivered to local pods.
	ShortcutPackets uint64 `json:"shortcutPackets,omitempty"`
	ShortcutBytes   uint64 `json:"shortcutBytes,omitempty"`
}

// RouteEntry is one entry of a VN's forwarding table (TF's `rt --dump`).
type RouteEntry struct {
	Prefix  string `json:"prefix"`
	NextHop uint32 `json:"nextHop"`
	Type    string `json:"type"`
	Vif     uint32 `json:"vif,omitempty"`
	Static  bool   `json:"static,omitempty"`
}

// NextHop is one forwarder next hop (TF's `nh --list`).
type NextHop struct {
	ID     uint32 `json:"id"`
	Type   string `json:"type"`
	VRF    uint32 `json:"vrf"`
	Vif    uint32 `json:"vif,omitempty"`
	SrcMAC string `json:"srcMac,omitempty"`
	DstMAC string `json:"dstMac,omitempty"`
	Refs   int    `json:"refs"`
	// Tunnel next hops: the encapsulation, the remote node and its label/VNI.
	Encap string `json:"encap,omitempty"`
	Node  string `json:"node,omitempty"`
	Label uint32 `json:"label,omitempty"`
	VNI   uint32 `json:"vni,omitempty"`
}

// Flow is one direction of a flow in the flow table (TF's `flow -l`).
type Flow struct {
	Index    uint32 `json:"index"`
	RevIndex uint32 `json:"revIndex"`
	VRF      uint32 `json:"vrf"`
	Proto    uint8  `json:"proto"`
	Src      string `json:"src"` // address:port (ICMP: the echo identifier)
	Dst      string `json:"dst"`
	Action   string `json:"action"`        // forward, drop, nat-src, nat-dst
	NAT      string `json:"nat,omitempty"` // the rewrite, address:port
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	AgeSecs  uint32 `json:"ageSeconds"` // since the last packet
	Closed   bool   `json:"closed,omitempty"`
	// Verdict is the network policy's: "allow" or "deny"; empty for a
	// flow no policy looked at. Policy names what decided it
	// ("NetworkPolicy x/allow-y", "default deny (ingress of x/a eth0)").
	Verdict string `json:"verdict,omitempty"`
	Policy  string `json:"policy,omitempty"`
}

// DropStat is the count of packets dropped for one reason (TF's `dropstats`).
type DropStat struct {
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}

// Status is xvrd's self-description.
type Status struct {
	Version string `json:"version"`
	Pollers int    `json:"pollers"`
	MAC     string `json:"mac"`
	Uptime  string `json:"uptime"`
	// FabricIf and NodeIP are the fabric NIC xvrd owns and its address;
	// Encap is the encapsulation priority. Empty without a fabric.
	FabricIf string   `json:"fabricIf,omitempty"`
	NodeIP   string   `json:"nodeIP,omitempty"`
	Encap    []string `json:"encap,omitempty"`
	// PodMTU is the largest pod MTU whose packets still fit the fabric once
	// encapsulated (the fabric MTU less the largest overhead); the CNI uses
	// it when its config sets no mtu. 0 without a fabric.
	PodMTU int `json:"podMTU,omitempty"`
}

// Policies is the node's network policy, set whole (PUT /v1/policies):
// with Kubernetes, kube/node copies the controller's NodePolicy object here.
type Policies struct {
	// Enforce: a pod interface with no entry in Interfaces is isolated in
	// both directions (traffic from the node excepted) until it gets one,
	// so that a new pod is isolated before its first packet. False:
	// interfaces without an entry are not isolated.
	Enforce bool `json:"enforce"`
	// Interfaces are the policies of pod interfaces, one per pod and network.
	Interfaces []InterfacePolicy `json:"interfaces,omitempty"`
}

// InterfacePolicy is the policy of a pod's interface on one network.
type InterfacePolicy struct {
	// Pod is the interface's pod; an empty UID matches any UID.
	Pod PodRef `json:"pod"`
	// Network is the attachment, as the port's Network ("namespace/name").
	Network string `json:"network"`
	// Policy is what the policies selecting the interface allow.
	Policy policy.Set `json:"policy"`
}

// Backend is what the server serves. vrouter/agent implements it.
// Errors of type *Error choose the HTTP status; any other error is a 500.
type Backend interface {
	Status(ctx context.Context) Status

	ApplyNetwork(ctx context.Context, n Network) (Network, error)
	DeleteNetwork(ctx context.Context, namespace, name string) error
	GetNetwork(ctx context.Context, namespace, name string) (Network, error)
	ListNetworks(ctx context.Context) []Network

	ApplyPort(ctx context.Context, p Port) (Port, error)
	DeletePort(ctx context.Context, id string) error
	GetPort(ctx context.Context, id string) (Port, error)
	ListPorts(ctx context.Context) []Port

	ApplyPod(ctx context.Context, p Pod) (Pod, error)
	DeletePod(ctx context.Context, namespace, name string) error
	GetPod(ctx context.Context, namespace, name string) (Pod, error)
	ListPods(ctx context.Context) []Pod
	// PodNetworkStatus lists the pod's interfaces (its newest sandbox's),
	// eth0 first, as the network-status annotation carries them.
	PodNetworkStatus(ctx context.Context, namespace, name string) ([]NetworkStatus, error)
	// PublishNetworkStatus is PodNetworkStatus after the CNI's ADD: with
	// Kubernetes it also writes the list into the pod's network-status
	// annotation (a 503 when the API server cannot be reached); standalone
	// it only answers it.
	PublishNetworkStatus(ctx context.Context, namespace, name string) ([]NetworkStatus, error)
	// GC deletes the CNI-made ports whose (container, interface) is not valid.
	GC(ctx context.Context, req GCRequest) (GCResult, error)

	ApplyRoute(ctx context.Context, r Route) (Route, error)
	DeleteRoute(ctx context.Context, network, prefix string) error
	ListRoutes(ctx context.Context) []Route

	// Introspection of what the forwarder holds.
	Vifs(ctx context.Context) []Vif
	RouteTable(ctx context.Context, network string) ([]RouteEntry, error)
	NextHops(ctx context.Context) []NextHop
	DropStats(ctx context.Context) []DropStat
	Flows(ctx context.Context) []Flow

	// SetPolicies replaces the node's network policy (PUT /v1/policies):
	// an entry that does not compile is a 400 naming it; the same policy
	// again is a no-op. Policies returns it as last set.
	SetPolicies(ctx context.Context, p Policies) error
	Policies(ctx context.Context) Policies
}

// Error is an API error carrying the HTTP status it is answered with.
type Error struct {
	Status int    `json:"-"`
	Msg    string `json:"error"`
}

func (e *Error) Error() string { return e.Msg }

// Errorf makes an *Error with the given status.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// BadRequest, NotFound and Conflict are the statuses the backend uses.
func BadRequest(format string, args ...any) error {
	return Errorf(http.StatusBadRequest, format, args...)
}

// NotFound reports a missing object.
func NotFound(format string, args ...any) error {
	return Errorf(http.StatusNotFound, format, args...)
}

// Conflict reports a request that contradicts existing state.
func Conflict(format string, args ...any) error {
	return Errorf(http.StatusConflict, format, args...)
}

// StatusOf returns the HTTP status an error maps to: the *Error's status, or 500.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}

// IsNotFound reports whether err is a 404 *Error.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }
