// Package agent is xvrd's control plane on a node: it keeps the desired state
// (networks, ports, static routes), persists it, turns it into the
// forwarder's tables and snapshots, and opens and closes the ports' sockets
// on the pollers. It implements api.Backend.
//
// Every change is validated, then persisted, then applied: a change the
// store refused is not applied, and after a restart Load applies exactly what
// was stored. Calls are serialised on one mutex; the forwarder never takes it
// (it reads the published snapshot and route tables).
//
// Importers: cmd/xvrd and tests. It imports vrouter/api, vrouter/dataplane,
// vrouter/route and nad (for Contrail names); OS side effects go through the
// Links and Attacher seams.
package agent
