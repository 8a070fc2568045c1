package dataplane

import (
	"sync/atomic"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/route"
)

// NHType is a next hop's kind.
type NHType uint8

// Next hop kinds. Next hop 0 is always Discard and 1 always Receive.
const (
	NHDiscard NHType = iota
	NHReceive        // for the router itself (gateway, DNS addresses)
	NHEncap          // deliver to a local vif, rewriting the MACs
	NHTunnel         // encapsulate to another node, out of the fabric vif
	NHFabric         // to another node natively (fabric forwarding): Outer's MACs only
	NHSNAT           // to the outside, source-NATed to the node IP: Outer's MACs only
)

// Well-known next hop ids.
const (
	NHIDDiscard = 0
	NHIDReceive = 1
)

// Vif is a forwarder interface as the pipeline sees it.
type Vif struct {
	Valid bool
	VRF   uint32
	MAC   [6]byte // the pod's MAC
	IP    [4]byte // the pod's address
	// Policy is the pod interface's network policy; nil: not policed
	// (traffic between unpoliced vifs never touches the flow table).
	Policy *policy.Compiled
	// Name says whose vif it is in flows' verdicts ("x/a eth0").
	Name string
}

// NextHop is where a route sends packets.
type NextHop struct {
	Type   NHType
	Vif    uint32
	DstMAC [6]byte
	// Tunnel next hops: how to encapsulate (Outer.DstMAC zero while the
	// remote node's underlay MAC is unresolved: such packets are dropped).
	Kind  encap.Kind
	Label uint32 // MPLS label or VNI
	Outer encap.Outer
	// InnerMAC is the inner destination MAC of VXLAN frames (the inner
	// source is the vRouter MAC).
	InnerMAC [6]byte
}

// LabelBase is added to a VRF id to make the MPLS label a node receives a
// VN's traffic under (labels below 16 are reserved).
const LabelBase = 1000

// Fabric is the node's fabric NIC as the pipeline sees it.
type Fabric struct {
	Valid bool
	Vif   uint32
	IP    [4]byte
	MAC   [6]byte
	// MTU is the fabric NIC's: an encapsulated packet must fit in it.
	MTU int
}

// VRF is one virtual network's forwarding context.
type VRF struct {
	Valid   bool
	Gateway [4]byte
	DNS     [4]byte
	Net     uint32 // network address, host order
	Mask    uint32
	Table   *route.Table
}

// Contains reports whether a (network order bytes) is inside the VRF's subnet.
func (v *VRF) Contains(a [4]byte) bool {
	return be32(a)&v.Mask == v.Net
}

func be32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

// Snapshot is an immutable description of what to forward. The agent builds
// a new one for every change and never mutates a published one.
type Snapshot struct {
	MAC      [6]byte // the vRouter's MAC, source of every frame it sends to pods
	Vifs     []Vif
	NextHops []NextHop
	VRFs     []VRF
	Fabric   Fabric
	// VNIs maps a VXLAN network identifier to its VRF.
	VNIs map[uint32]uint32
	// FabricVRFs are the VRFs of fabric-forwarded VNs, whose traffic comes
	// from the fabric without a tunnel header.
	FabricVRFs []uint32
	// Flows and SNAT are the flow table and the node IP's port pools, shared
	// by every snapshot and poller (both are safe for concurrent use); nil
	// without a fabric.
	Flows *flowtable.Table
	SNAT  *flowtable.SNAT
	// Host is the node's host interface, the kernel's way to its pods.
	Host Host
	// PolicyGen changes whenever any vif's Policy does: a flow whose
	// verdict was decided under another generation is decided again.
	PolicyGen uint32
	// PolicyStats counts the flows policy decided; shared by every
	// snapshot (nil: not counted).
	PolicyStats *PolicyStats
	// ServiceNets are the cluster's Service CIDRs (xvrd -service-cidr): a
	// pod's packet to one goes to the kernel unchecked by egress policy
	// and is checked when it comes back after kube-proxy's DNAT.
	ServiceNets []Prefix4
}

// Prefix4 is an IPv4 prefix in host order.
type Prefix4 struct{ Net, Mask uint32 }

// Contains reports whether a (network order bytes) is inside p.
func (p Prefix4) Contains(a [4]byte) bool { return be32(a)&p.Mask == p.Net }

// Host is the node's host interface as the pipeline sees it: a vif on the
// cluster default network whose other end is the node's kernel (xvr-host).
// The default network's 0.0.0.0/0 points at it, so pod traffic to Services,
// the node and the outside goes through the node's kernel (kube-proxy,
// masquerade), and the kernel reaches pods through it.
type Host struct {
	Valid bool
	Vif   uint32
	NH    uint32  // the next hop that delivers to the kernel
	VRF   uint32  // the default network's VRF
	IP    [4]byte // the kernel end's address in that network
	// VRFs are the VNs that opted in to host access (xvr.io/host-access):
	// the kernel's packets to their subnets are looked up in their tables.
	VRFs []uint32
}

// fabricVRF is the fabric-forwarded VRF whose subnet holds a, or nil.
func (s *Snapshot) fabricVRF(a [4]byte) *VRF {
	for _, id := range s.FabricVRFs {
		if v := s.vrf(id); v != nil && v.Contains(a) {
			return v
		}
	}
	return nil
}

// vrfOfLabel is the VRF an MPLS label names, or nil.
func (s *Snapshot) vrfOfLabel(label uint32) *VRF {
	if label < LabelBase {
		return nil
	}
	return s.vrf(label - LabelBase)
}

func (s *Snapshot) vif(i uint32) *Vif {
	if int(i) >= len(s.Vifs) || !s.Vifs[i].Valid {
		return nil
	}
	return &s.Vifs[i]
}

func (s *Snapshot) vrf(i uint32) *VRF {
	if int(i) >= len(s.VRFs) || !s.VRFs[i].Valid {
		return nil
	}
	return &s.VRFs[i]
}

func (s *Snapshot) nh(i uint32) *NextHop {
	if int(i) >= len(s.NextHops) {
		return nil
	}
	return &s.NextHops[i]
}

// localNH is the next hop that delivers a to a local vif in vrf, or nil
// (no route, or one that leaves the node).
func (s *Snapshot) localNH(vrf *VRF, a [4]byte) *NextHop {
	id, found := vrf.Table.Lookup(a)
	nh := s.nh(id)
	if !found || nh == nil || nh.Type != NHEncap || s.vif(nh.Vif) == nil {
		return nil
	}
	return nh
}

// Current holds the published snapshot.
type Current struct{ p atomic.Pointer[Snapshot] }

// Publish makes s the snapshot pollers use from their next batch on.
func (c *Current) Publish(s *Snapshot) { c.p.Store(s) }

// Load returns the published snapshot (an empty one before the first Publish).
func (c *Current) Load() *Snapshot {
	if s := c.p.Load(); s != nil {
		return s
	}
	return &emptySnapshot
}

var emptySnapshot Snapshot
