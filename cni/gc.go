package cni

import (
	"context"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/xvr-project/xvr/vrouter/api"
)

// cmdStatus reports whether xvrd answers (code 50 when it does not).
func cmdStatus(args *skel.CmdArgs) error {
	return withXvrd(args, func(ctx context.Context, conf *Config, c *api.Client) error {
		if _, err := c.Status(ctx); err != nil {
			return types.NewError(ErrPluginNotAvailable, "xvrd is not available: "+err.Error(), "")
		}
		return nil
	})
}

// cmdGC deletes the ports and host veths of every sandbox not named in
// cni.dev/valid-attachments. The runtime knows only the CNI_IFNAME (eth0)
// of each sandbox; the plugin made the others, so a sandbox is valid as a
// whole and xvrd is sent every port of the valid sandboxes.
func cmdGC(args *skel.CmdArgs) error {
	return withXvrd(args, func(ctx context.Context, conf *Config, c *api.Client) error {
		valid := map[string]bool{}
		for _, a := range conf.ValidAttachments {
			valid[a.ContainerID] = true
		}
		removed, held, err := gcPorts(ctx, c, conf.ValidAttachments, valid)
		if err != nil {
			return err
		}
		return gcVeths(conf.HostNetns, valid, removed, held)
	})
}

// gcPorts has xvrd delete the ports of invalid sandboxes; it returns their
// IDs and the host devices of the ports that stay.
func gcPorts(ctx context.Context, c *api.Client, given []types.GCAttachment, valid map[string]bool) (removed []string, held map[string]bool, err error) {
	ports, err := c.ListPorts(ctx)
	if err != nil {
		return nil, nil, apiError(err, "listing ports")
	}
	req := api.GCRequest{ValidAttachments: []api.Attachment{}}
	for _, a := range given {
		req.ValidAttachments = append(req.ValidAttachments, api.Attachment{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	for _, p := range ports {
		if p.ContainerID != "" && valid[p.ContainerID] {
			req.ValidAttachments = append(req.ValidAttachments, api.Attachment{ContainerID: p.ContainerID, IfName: p.IfName})
		}
	}
	res, err := c.GC(ctx, req)
	if err != nil {
		return nil, nil, apiError(err, "gc")
	}
	gone := map[string]bool{}
	for _, id := range res.Removed {
		gone[id] = true
	}
	held = map[string]bool{}
	for _, p := range ports {
		if !gone[p.ID] {
			held[p.HostIfName] = true
		}
	}
	return res.Removed, held, nil
}

// gcVeths deletes the host veths of removed ports, every own veth whose
// sandbox is not valid, and every own-named veth without an alias (an ADD
// killed between creating and aliasing it) that no port holds.
func gcVeths(hostNetns string, valid map[string]bool, removed []string, held map[string]bool) error {
	host, err := openHostSide(hostNetns)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	defer host.Close()
	names := map[string]bool{}
	for _, id := range removed {
		if i := strings.LastIndexByte(id, '/'); i > 0 && !valid[id[:i]] {
			names[HostIfName(id[:i], id[i+1:])] = true
		}
	}
	own, err := host.ownLinks()
	if err != nil {
		return err
	}
	for _, l := range own {
		if l.containerID == "" && !held[l.name] || l.containerID != "" && !valid[l.containerID] {
			names[l.name] = true
		}
	}
	return host.delLinks(names)
}
