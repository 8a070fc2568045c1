package agent

import (
	"context"
	"net/http"

	"github.com/xvr-project/xvr/vrouter/api"
)

// HostPortID is the port id of the node's host interface; ApplyPort and
// DeletePort refuse it, so no API call can take or remove it.
const HostPortID = "host"

// HostPort is the node's host interface as xvrd made it: a veth pair whose
// xvr end is a vif like a pod's host veth and whose other end stays in the
// node's kernel, where it holds an address of the cluster default network.
type HostPort struct {
	// IfName is xvr's end (the XDP program and the AF_XDP sockets).
	IfName string
	// Peer is the kernel's end; MAC is its address, which xvr sends to.
	Peer string
	MAC  string
}

// ApplyHost attaches the host interface to the cluster default network
// (idempotent): the kernel end gets an address of that network (the highest
// free one, kept across restarts and claimed cluster-wide like a pod's, so
// other nodes route it here), and the network's 0.0.0.0/0 goes to it: pod
// traffic that is not for the network (Services, the node, the outside)
// reaches the node's kernel. It fails while the default network is unknown
// (with Kubernetes: until the cluster has served it).
func (a *Agent) ApplyHost(ctx context.Context, h HostPort) (api.Port, error) {
	if a.cfg.DefaultNetwork == "" {
		return api.Port{}, api.Errorf(http.StatusConflict, "host interface: xvrd has no cluster default network")
	}
	return a.applyPort(ctx, api.Port{ID: HostPortID, Network: a.cfg.DefaultNetwork, HostIfName: h.IfName,
		IfName: h.Peer, MAC: h.MAC})
}

// rebuildHostTables rebuilds the tables the host port's routes are in: its
// network's (0.0.0.0/0) and every host-access VN's (its /32), and old's
// network when it moved.
func (a *Agent) rebuildHostTables(old *port) {
	if old != nil {
		a.rebuildTable(old.net.vn())
	}
	if h := a.ports[HostPortID]; h != nil {
		a.rebuildTable(h.net.vn())
	}
	for _, n := range a.nets {
		if n.target == nil && n.spec.HostAccess {
			a.rebuildTable(n)
		}
	}
}
