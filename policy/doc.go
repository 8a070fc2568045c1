// Package policy is xvr's network policy as one interface's data path sees
// it: a Set (what the policies selecting the interface allow, with peers and
// ports already resolved to addresses and numbers by the controller) and its
// Compiled form, which answers "may this packet start a flow?" for the
// first packet of a flow; the verdict is then cached in the flow table.
//
// Set is also the wire form: the local API, the store and the controller's
// per-node NodePolicy objects carry it as JSON.
//
// Semantics are upstream NetworkPolicy's after resolution: a direction the
// Set does not isolate allows everything; an isolated direction allows what
// any of its rules allows (the union), nothing else. A rule matches a packet
// when its peer matches (AllPeers, or an address inside a Peer's CIDR and
// outside its excepts) and its port matches (AllPorts: any protocol,
// ICMP included; otherwise the protocol and a destination port in range).
//
// Importers: vrouter/api, vrouter/agent, vrouter/dataplane, kube/v1alpha1,
// the controller. This package imports nothing of xvr's.
//
// Lifecycle trap: a Compiled is immutable and shared by snapshots; never
// modify the Set it came from expecting the Compiled to follow.
package policy
