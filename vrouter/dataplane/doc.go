// Package dataplane is xvr's forwarder: the per-packet pipeline and the
// pollers that run it over AF_XDP sockets.
//
// The control plane (vrouter/agent) describes what to forward with an
// immutable Snapshot (vifs, next hops, VRFs with their route tables) and
// publishes it with Dataplane.Publish; pollers load it once per batch and
// never take a lock. Route tables (vrouter/route) are published on their own,
// so a route change does not rebuild the snapshot.
//
// A Poller owns one UMEM and every socket opened on it; it runs on one locked
// OS thread: receive a batch from each port, run Pipeline.Process on it
// (run to completion, in place, no allocation), group the frames by egress
// port, transmit each group with one kick, recycle completions, refill.
// Everything that touches a poller's sockets (adding and removing ports) is
// sent to its goroutine with Poller.Do, so the UMEM has a single owner.
//
// Importers: vrouter/agent, cmd/xvrd, benchmarks. It imports vrouter/afxdp,
// vrouter/packet and vrouter/route.
package dataplane
