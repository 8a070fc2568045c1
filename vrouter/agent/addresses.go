package agent

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	"github.com/xvr-project/xvr/vrouter/api"
)

// Addresses is the cluster's address book (kube/node, when xvrd runs with
// Kubernetes): an address a port uses is claimed there before the port is
// stored, so that no two nodes hand out the same one. Nil in Config: this
// node's IPAM is the only one (standalone).
type Addresses interface {
	// Claim reserves c.IP in c.Network for c.Port. It returns an error
	// wrapping ErrAddressTaken when another port holds the address; claiming
	// again what the port already holds succeeds. Any other error means the
	// cluster could not be asked.
	Claim(ctx context.Context, c AddressClaim) error
	// Release gives a claim up. It never fails the caller: what it cannot
	// release now it retries on its own (a CNI DEL must succeed while the
	// cluster is unreachable).
	Release(c AddressClaim)
	// Taken reports whether, as far as the caller's cache knows, another
	// port in the cluster holds ip in network. It is a hint that spares
	// allocation a round trip per address other nodes hold; Claim decides.
	Taken(network string, ip netip.Addr) bool
}

// ErrAddressTaken is what Claim wraps when another port holds the address.
var ErrAddressTaken = errors.New("address is taken in the cluster")

// AddressClaim is one port's address in a VN.
type AddressClaim struct {
	// Network is the VN that owns the address space, "namespace/name" (a
	// reference network's target).
	Network string
	IP      netip.Addr
	// Label is this node's MPLS label for the VN: what other nodes put in
	// the MPLSoUDP frames they send to the address.
	Label uint32
	// Port is the port as it will be stored (its Network is the one the
	// pod selected).
	Port api.Port
}

// maxClaimTries bounds how many addresses one allocation tries in the
// cluster before giving up (each taken one is a round trip).
const maxClaimTries = 64

func (a *Agent) claimOf(p *port) AddressClaim {
	return AddressClaim{Network: p.net.vn().spec.Key(), IP: p.ip, Label: labelOf(p.net), Port: p.spec}
}

// claim reserves p's address in the cluster. A port that asked for no
// address (auto) moves on to the VN's next free one while the cluster says
// its pick is taken; a requested address that is taken is a conflict.
func (a *Agent) claim(ctx context.Context, p *port, auto bool) error {
	if a.cfg.Addresses == nil {
		return nil
	}
	skip := map[netip.Addr]bool{}
	for range maxClaimTries {
		err := a.cfg.Addresses.Claim(ctx, a.claimOf(p))
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, ErrAddressTaken):
			return api.Errorf(http.StatusServiceUnavailable, "port %s: claiming %s in the cluster: %v", p.spec.ID, p.ip, err)
		case !auto:
			return api.Conflict("port %s: ip %s is already used in the cluster: %v", p.spec.ID, p.ip, err)
		}
		skip[p.ip] = true
		ip, err := a.allocIP(p.spec.ID, p.net.vn(), skip)
		if err != nil {
			return err
		}
		p.ip, p.spec.IP = ip, ip.String()
	}
	return api.Errorf(http.StatusServiceUnavailable, "port %s: no free address of %s after %d tries in the cluster",
		p.spec.ID, p.net.vn().spec.Key(), maxClaimTries)
}

// Claims lists the claim every port holds (kube/node keeps the cluster's
// InstanceIPs in line with them). It waits for a change in progress, so a
// claim made by an ApplyPort that is still running is listed.
func (a *Agent) Claims() []AddressClaim {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]AddressClaim, 0, len(a.ports))
	for _, p := range a.ports {
		out = append(out, a.claimOf(p))
	}
	return out
}

// release gives p's claim up (a no-op standalone).
func (a *Agent) release(p *port) {
	if a.cfg.Addresses != nil {
		a.cfg.Addresses.Release(a.claimOf(p))
	}
}

// PublishNetworkStatus answers the pod's network-status; standalone there
// is nowhere else to write it (kube/node wraps it to patch the pod).
func (a *Agent) PublishNetworkStatus(ctx context.Context, namespace, name string) ([]api.NetworkStatus, error) {
	return a.PodNetworkStatus(ctx, namespace, name)
}
