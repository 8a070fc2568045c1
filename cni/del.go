package cni

import (
	"context"
	"errors"
	"os"
	"sort"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/xvr-project/xvr/vrouter/api"
)

// cmdDel deletes the sandbox's ports in xvrd and its host veths. It needs no
// netns, treats what is already gone as deleted, and touches only ports and
// veths of this CNI_CONTAINERID, so a late DEL of an older sandbox of the
// same pod leaves the newer one alone.
func cmdDel(args *skel.CmdArgs) error {
	return withXvrd(args, func(ctx context.Context, conf *Config, c *api.Client) error {
		ports, perr := sandboxPorts(ctx, c, args.ContainerID)
		var errs []error
		if perr == nil {
			errs = append(errs, deletePorts(ctx, c, ports)...)
		}
		errs = append(errs, deleteSandboxVeths(conf.HostNetns, args.ContainerID, ports))
		return firstError(append([]error{perr}, errs...))
	})
}

// sandboxPorts lists xvrd's ports of sandbox containerID, by interface index.
func sandboxPorts(ctx context.Context, c *api.Client, containerID string) ([]api.Port, error) {
	all, err := c.ListPorts(ctx)
	if err != nil {
		return nil, apiError(err, "listing ports")
	}
	var ports []api.Port
	for _, p := range all {
		if portOf(p, containerID) {
			ports = append(ports, p)
		}
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].Index < ports[j].Index })
	return ports, nil
}

// portOf reports whether p was made for sandbox containerID. A container ID
// never holds '/', so the ID prefix is exact.
func portOf(p api.Port, containerID string) bool {
	return p.ContainerID == containerID || strings.HasPrefix(p.ID, containerID+"/")
}

func deletePorts(ctx context.Context, c *api.Client, ports []api.Port) []error {
	var errs []error
	for _, p := range ports {
		if err := api.IgnoreNotFound(c.DeletePort(ctx, p.ID)); err != nil {
			errs = append(errs, apiError(err, "deleting port "+p.ID))
		}
	}
	return errs
}

// deleteSandboxVeths deletes the host veths of the sandbox: those its ports
// name and those whose alias names it (a port lost or never applied). A
// host netns that is gone took its veths with it.
func deleteSandboxVeths(hostNetns, containerID string, ports []api.Port) error {
	host, err := openHostSide(hostNetns)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer host.Close()
	names := map[string]bool{}
	for _, p := range ports {
		names[HostIfName(containerID, p.IfName)] = true
	}
	own, err := host.ownLinks()
	if err != nil {
		return err
	}
	for _, l := range own {
		if l.containerID == containerID {
			names[l.name] = true
		}
	}
	return host.delLinks(names)
}

func (s *hostSide) delLinks(names map[string]bool) error {
	var errs []error
	for n := range names {
		if err := s.delLink(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// firstError returns the first non-nil error, so that a CNI error keeps its code.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
