package dataplane

// Reason is why a frame was dropped; Forward (0) means it was not.
type Reason uint8

// Drop reasons, modelled on Tungsten Fabric's dropstats.
const (
	Forward            Reason = iota
	InvalidPacket             // shorter than an Ethernet header, or outside the UMEM
	InvalidVif                // received on a vif the snapshot does not know
	L2DstMismatch             // unicast frame not addressed to the vRouter
	UnknownEtherType          // neither IPv4 nor ARP (VLAN tags included)
	IPv6Unsupported           // IPv6 is not forwarded yet
	InvalidIPHeader           // IPv4 version, IHL or total length wrong, or truncated
	IPChecksum                // IPv4 header checksum does not verify
	InvalidARP                // malformed ARP
	ARPNotMe                  // ARP we do not answer (replies, probes, addresses outside the VN)
	NonUnicastIP              // IPv4 multicast or broadcast destination
	NoRoute                   // no route in the vif's VRF (other VNs included)
	Discard                   // route to a discard next hop
	ReceiveUnhandled          // to the gateway but not a ping
	TTLExceeded               // TTL expired; an ICMP error was sent when allowed
	InvalidNextHop            // next hop missing or pointing at a missing vif
	InterfaceDown             // egress vif not open on this poller
	TxRingFull                // egress TX ring full
	NoFrame                   // no free frame in the egress port's UMEM to copy into
	DecapError                // overlay frame from the fabric that does not decapsulate
	UnknownLabel              // MPLS label or VNI of no local VN
	NoNeighbor                // tunnel next hop whose underlay MAC is not resolved yet
	EncapError                // no headroom or room to encapsulate
	MTUExceeded               // too big for the fabric once encapsulated (ICMP sent when DF)
	SNATUnsupported           // not TCP, UDP or ICMP echo (or a fragment): no source NAT
	SNATPortsExhausted        // the node IP's port pool for the protocol is used up
	SNATNoFlow                // to the node IP with no NAT flow: unsolicited inbound
	FlowTableFull             // a new flow found the flow table full

	// Drops the kernel counted on xvr's AF_XDP sockets (XDP_STATISTICS).
	XSKRxDropped  // no room for the frame in the UMEM
	XSKRxRingFull // the socket's RX ring was full
	XSKFillEmpty  // the fill ring was empty when a frame arrived
	XSKTxInvalid  // the kernel refused a TX descriptor

	// Decapsulated frames get a pod frame's checks, counted apart.
	OverlayL2DstMismatch    // inner frame not addressed to the vRouter (nor broadcast, for ARP)
	OverlayUnknownEtherType // inner frame neither IPv4 nor ARP (IPv6 and VLAN tags included)
	OverlayInvalidARP       // malformed inner ARP
	OverlayARPNotMe         // inner ARP we do not answer (replies, probes, no local pod has the address)
	OverlayInvalidIPHeader  // inner IPv4 version, IHL or total length wrong, or truncated
	OverlayIPChecksum       // inner IPv4 header checksum does not verify

	ICMPChecksum // an ICMP message the vRouter would answer or rewrite has a wrong checksum
	PolicyDenied // a network policy of the source's egress or the destination's ingress denies the flow
	NumReasons
)

var reasonNames = [NumReasons]string{
	Forward:            "forward",
	InvalidPacket:      "invalid_packet",
	InvalidVif:         "invalid_vif",
	L2DstMismatch:      "l2_dst_mismatch",
	UnknownEtherType:   "unknown_ethertype",
	IPv6Unsupported:    "ipv6_unsupported",
	InvalidIPHeader:    "invalid_ip_header",
	IPChecksum:         "ip_checksum",
	InvalidARP:         "invalid_arp",
	ARPNotMe:           "arp_not_me",
	NonUnicastIP:       "non_unicast_ip",
	NoRoute:            "no_route",
	Discard:            "discard",
	ReceiveUnhandled:   "receive_unhandled",
	TTLExceeded:        "ttl_exceeded",
	InvalidNextHop:     "invalid_nh",
	InterfaceDown:      "interface_down",
	TxRingFull:         "tx_ring_full",
	NoFrame:            "no_frame",
	DecapError:         "decap_error",
	UnknownLabel:       "unknown_label",
	NoNeighbor:         "no_neighbor",
	EncapError:         "encap_error",
	MTUExceeded:        "mtu_exceeded",
	SNATUnsupported:    "snat_unsupported",
	SNATPortsExhausted: "snat_ports_exhausted",
	SNATNoFlow:         "snat_no_flow",
	FlowTableFull:      "flow_table_full",
	XSKRxDropped:       "xsk_rx_dropped_other",
	XSKRxRingFull:      "xsk_rx_ring_full",
	XSKFillEmpty:       "xsk_fill_ring_empty",
	XSKTxInvalid:       "xsk_tx_invalid_desc",

	OverlayL2DstMismatch:    "overlay_l2_dst_mismatch",
	OverlayUnknownEtherType: "overlay_unknown_ethertype",
	OverlayInvalidARP:       "overlay_invalid_arp",
	OverlayARPNotMe:         "overlay_arp_not_me",
	OverlayInvalidIPHeader:  "overlay_invalid_ip_header",
	OverlayIPChecksum:       "overlay_ip_checksum",
	ICMPChecksum:            "icmp_checksum",
	PolicyDenied:            "policy_denied",
}

// String is the reason's dropstats name.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}
