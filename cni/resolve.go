package cni

import (
	"context"
	"fmt"
	"strings"

	"github.com/xvr-project/xvr/vrouter/api"
)

// resolveNetworks asks xvrd for every network the plan attaches to, eth0's
// included, before the first interface is made: an unknown network fails
// the ADD with code 7 and nothing made, not after earlier interfaces were
// created and rolled back. xvrd unreachable is code 11.
func resolveNetworks(ctx context.Context, c *api.Client, atts []Attachment) error {
	for _, at := range atts {
		ns, name, _ := strings.Cut(at.Network, "/")
		_, err := c.GetNetwork(ctx, ns, name)
		switch {
		case api.IsNotFound(err):
			return invalid("%s: network %s does not exist in xvrd", at.IfName, at.Network)
		case err != nil:
			return apiError(err, fmt.Sprintf("%s: resolving network %s", at.IfName, at.Network))
		}
	}
	return nil
}
