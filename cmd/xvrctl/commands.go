package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/xvr-project/xvr/nad"
	"github.com/xvr-project/xvr/vrouter/api"
)

// readNADs parses the NAD file named by -f ("-" is stdin).
func (c *cli) readNADs(file string) ([]api.Network, error) {
	if file == "" {
		return nil, errors.New("-f FILE is required")
	}
	var r io.Reader = c.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	nets, err := nad.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return nets, nil
}

func (c *cli) apply(args []string) error {
	fs := c.flags("apply")
	file := fs.String("f", "", "NetworkAttachmentDefinition YAML file, - for stdin")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	nets, err := c.readNADs(*file)
	if err != nil {
		return err
	}
	cl, ctx, cancel := c.client()
	defer cancel()
	for _, n := range nets {
		out, err := cl.ApplyNetwork(ctx, n)
		if err != nil {
			return fmt.Errorf("network %s: %w", n.Key(), err)
		}
		fmt.Fprintf(c.stdout, "network %s%s configured\n", out.Key(), contrailName(out))
	}
	return nil
}

// contrailName is " (<vn> in <project>)" when xvrd named the network.
func contrailName(n api.Network) string {
	if n.VNName == "" {
		return ""
	}
	return fmt.Sprintf(" (%s in %s)", n.VNName, n.Project)
}

func (c *cli) deleteFile(args []string) error {
	fs := c.flags("delete")
	file := fs.String("f", "", "NetworkAttachmentDefinition YAML file, - for stdin")
	ignore := fs.Bool("ignore-not-found", false, "treat a missing network as deleted")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	nets, err := c.readNADs(*file)
	if err != nil {
		return err
	}
	for _, n := range nets {
		if err := c.deleteNetwork(n.Namespace, n.Name, *ignore); err != nil {
			return err
		}
	}
	return nil
}

func (c *cli) deleteNetwork(namespace, name string, ignoreNotFound bool) error {
	cl, ctx, cancel := c.client()
	defer cancel()
	err := cl.DeleteNetwork(ctx, namespace, name)
	if ignoreNotFound && api.IsNotFound(err) {
		fmt.Fprintf(c.stdout, "network %s/%s not found\n", namespace, name)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "network %s/%s deleted\n", namespace, name)
	return nil
}

func (c *cli) networkList(args []string) error {
	return show(c, "network list", args, (*api.Client).ListNetworks, networkTable)
}

func (c *cli) networkGet(args []string) error {
	return c.withName("network get", args, func(ns, name string) error {
		cl, ctx, cancel := c.client()
		defer cancel()
		n, err := cl.GetNetwork(ctx, ns, name)
		if err != nil {
			return err
		}
		return c.print(n, func(t *table) { networkTable(t, []api.Network{n}) })
	})
}

func (c *cli) networkDelete(args []string) error {
	fs := c.flags("network delete")
	ignore := fs.Bool("ignore-not-found", false, "treat a missing network as deleted")
	rest, err := c.parse(fs, args, 1)
	if err != nil {
		return err
	}
	ns, name, err := splitNetwork(rest[0])
	if err != nil {
		return err
	}
	return c.deleteNetwork(ns, name, *ignore)
}

func (c *cli) portList(args []string) error {
	return show(c, "port list", args, (*api.Client).ListPorts, portTable)
}

func (c *cli) portAdd(args []string) error {
	fs := c.flags("port add")
	var p api.Port
	fs.StringVar(&p.ID, "id", "", "port ID, e.g. <containerID>/<ifname>")
	fs.StringVar(&p.Network, "network", "", "network, NAMESPACE/NAME")
	fs.StringVar(&p.HostIfName, "host-if", "", "host-side interface (veth)")
	fs.StringVar(&p.IP, "ip", "", "pod's IPv4 address")
	fs.StringVar(&p.MAC, "mac", "", "pod-side MAC address")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if p.ID == "" || p.Network == "" || p.HostIfName == "" || p.IP == "" || p.MAC == "" {
		return errors.New("port add: --id, --network, --host-if, --ip and --mac are all required")
	}
	ns, name, err := splitNetwork(p.Network)
	if err != nil {
		return err
	}
	p.Network = ns + "/" + name
	cl, ctx, cancel := c.client()
	defer cancel()
	out, err := cl.ApplyPort(ctx, p)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "port %s configured (vif %d, %s)\n", out.ID, out.Vif, or(out.State, "state unknown"))
	return nil
}

func (c *cli) portDel(args []string) error {
	fs := c.flags("port del")
	ignore := fs.Bool("ignore-not-found", false, "treat a missing port as deleted")
	rest, err := c.parse(fs, args, 1)
	if err != nil {
		return err
	}
	cl, ctx, cancel := c.client()
	defer cancel()
	err = cl.DeletePort(ctx, rest[0])
	if *ignore && api.IsNotFound(err) {
		fmt.Fprintf(c.stdout, "port %s not found\n", rest[0])
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "port %s deleted\n", rest[0])
	return nil
}

func (c *cli) routeList(args []string) error {
	return show(c, "route list", args, (*api.Client).ListRoutes, routeTable)
}

func (c *cli) routeAdd(args []string) error {
	fs := c.flags("route add")
	var r api.Route
	fs.StringVar(&r.Network, "network", "", "network, NAMESPACE/NAME")
	fs.StringVar(&r.Prefix, "prefix", "", "IPv4 prefix, e.g. 198.18.40.0/24")
	port := fs.String("port", "", "deliver to this port ID")
	discard := fs.Bool("discard", false, "drop matching packets")
	var tun api.RouteNextHop
	fs.StringVar(&tun.Node, "tunnel", "", "send to this node's fabric IP (MPLSoUDP or VXLAN)")
	fabricNode := fs.String("fabric", "", "send natively to this node's fabric IP (VNs with fabric forwarding)")
	label := fs.Uint("label", 0, "the remote node's MPLS label for the network (xvrctl network get there)")
	vni := fs.Uint("vni", 0, "the network's VXLAN identifier (default this node's)")
	encaps := fs.String("encaps", "", "encapsulations the remote accepts, e.g. MPLSoUDP,VXLAN (default both)")
	fs.StringVar(&tun.MAC, "mac", "", "the remote endpoint's MAC: inner destination of VXLAN frames (a Linux VTEP needs it)")
	_, err := c.parse(fs, args, 0)
	if err != nil {
		return err
	}
	tun.Label, tun.VNI = uint32(*label), uint32(*vni)
	if *encaps != "" {
		tun.Encaps = strings.Split(*encaps, ",")
	}
	if *fabricNode != "" {
		if tun.Node != "" {
			return errors.New("route add: --tunnel and --fabric exclude each other")
		}
		tun = api.RouteNextHop{Type: api.NextHopFabric, Node: *fabricNode}
	}
	if r.NextHop, err = routeNextHop(*port, *discard, tun); err != nil {
		return err
	}
	ns, name, err := splitNetwork(r.Network)
	if err != nil {
		return err
	}
	if r.Prefix == "" {
		return errors.New("route add: --prefix is required")
	}
	r.Network = ns + "/" + name
	cl, ctx, cancel := c.client()
	defer cancel()
	out, err := cl.ApplyRoute(ctx, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "route %s in %s configured (%s)\n", out.Prefix, out.Network, nextHopString(out.NextHop))
	return nil
}

func (c *cli) routeDel(args []string) error {
	fs := c.flags("route del")
	network := fs.String("network", "", "network, NAMESPACE/NAME")
	prefix := fs.String("prefix", "", "the route's prefix")
	ignore := fs.Bool("ignore-not-found", false, "treat a missing route as deleted")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	ns, name, err := splitNetwork(*network)
	if err != nil {
		return err
	}
	cl, ctx, cancel := c.client()
	defer cancel()
	err = cl.DeleteRoute(ctx, ns+"/"+name, *prefix)
	if *ignore && api.IsNotFound(err) {
		fmt.Fprintf(c.stdout, "route %s in %s/%s not found\n", *prefix, ns, name)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "route %s in %s/%s deleted\n", *prefix, ns, name)
	return nil
}

func (c *cli) vif(args []string) error {
	return show(c, "vif", args, (*api.Client).Vifs, vifTable)
}

func (c *cli) rt(args []string) error {
	fs := c.flags("rt")
	vn := fs.String("vn", "", "network, NAMESPACE/NAME")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	ns, name, err := splitNetwork(*vn)
	if err != nil {
		return err
	}
	cl, ctx, cancel := c.client()
	defer cancel()
	rt, err := cl.RouteTable(ctx, ns+"/"+name)
	if err != nil {
		return err
	}
	return c.print(rt, func(t *table) { rtTable(t, rt) })
}

func (c *cli) nh(args []string) error {
	return show(c, "nh", args, (*api.Client).NextHops, nhTable)
}

func (c *cli) dropstats(args []string) error {
	fs := c.flags("dropstats")
	all := fs.Bool("all", false, "show reasons with a zero count too")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	cl, ctx, cancel := c.client()
	defer cancel()
	drops, err := cl.DropStats(ctx)
	if err != nil {
		return err
	}
	if !*all {
		drops = nonZero(drops)
	}
	return c.print(drops, func(t *table) { dropTable(t, drops) })
}

func nonZero(drops []api.DropStat) []api.DropStat {
	out := []api.DropStat{}
	for _, d := range drops {
		if d.Count != 0 {
			out = append(out, d)
		}
	}
	return out
}

func (c *cli) status(args []string) error {
	fs := c.flags("status")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	cl, ctx, cancel := c.client()
	defer cancel()
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	return c.print(st, func(t *table) { statusTable(t, st, cl.Socket()) })
}

// routeNextHop is the next hop that --port or --discard asks for.
func routeNextHop(port string, discard bool, tun api.RouteNextHop) (api.RouteNextHop, error) {
	n := 0
	for _, set := range []bool{port != "", discard, tun.Node != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return api.RouteNextHop{}, errors.New("route add: --port, --tunnel and --discard exclude each other")
	case tun.Node != "":
		if tun.Type == "" {
			tun.Type = api.NextHopTunnel
		}
		return tun, nil
	case discard:
		return api.RouteNextHop{Type: api.NextHopDiscard}, nil
	case port != "":
		return api.RouteNextHop{Type: api.NextHopPort, Port: port}, nil
	default:
		return api.RouteNextHop{}, errors.New("route add: --port ID, --tunnel NODE or --discard is required")
	}
}

// flow lists the flow table like TF's `flow -l`.
func (c *cli) flow(args []string) error {
	return show(c, "flow", args, (*api.Client).Flows, flowTable)
}

// show is a read command without arguments: it fetches a value from xvrd
// and prints it as a table (fill) or, with -o json, as JSON.
func show[T any](c *cli, name string, args []string, fetch func(*api.Client, context.Context) (T, error), fill func(*table, T)) error {
	fs := c.flags(name)
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	cl, ctx, cancel := c.client()
	defer cancel()
	v, err := fetch(cl, ctx)
	if err != nil {
		return err
	}
	return c.print(v, func(t *table) { fill(t, v) })
}
