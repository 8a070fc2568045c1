package cni

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netns"

	"github.com/xvr-project/xvr/vrouter/api"
)

// Timeouts of one plugin run's work with xvrd, and of an ADD's rollback.
const (
	opTimeout       = 60 * time.Second
	rollbackTimeout = 30 * time.Second
)

func cmdAdd(args *skel.CmdArgs) error {
	return withXvrd(args, func(ctx context.Context, conf *Config, c *api.Client) error {
		k, err := ParseArgs(args.Args)
		if err != nil {
			return err
		}
		if err := resolveMTU(ctx, c, conf); err != nil {
			return err
		}
		atts, err := planPod(ctx, c, conf, args.IfName, k.PodRef())
		if err != nil {
			return err
		}
		if err := resolveNetworks(ctx, c, atts); err != nil {
			return err
		}
		a, err := newAdder(c, conf, args, k.PodRef())
		if err != nil {
			return err
		}
		defer a.close()
		ifs, err := a.add(ctx, atts)
		if err != nil {
			return err
		}
		return types.PrintResult(buildResult(conf.CNIVersion, args.Netns, ifs), conf.CNIVersion)
	})
}

// resolveMTU fills an unset mtu with xvrd's pod MTU (the fabric's less the
// encapsulation overhead), or DefaultMTU on a node without a fabric.
func resolveMTU(ctx context.Context, c *api.Client, conf *Config) error {
	if conf.MTU != 0 {
		return nil
	}
	st, err := c.Status(ctx)
	if err != nil {
		return apiError(err, "asking xvrd for the pod MTU")
	}
	conf.MTU = DefaultMTU
	if st.PodMTU >= MinMTU {
		conf.MTU = min(st.PodMTU, MaxMTU)
	}
	return nil
}

// withXvrd parses the config and runs fn with a client of xvrd and a
// context bounded by opTimeout.
func withXvrd(args *skel.CmdArgs, fn func(ctx context.Context, conf *Config, c *api.Client) error) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c := api.NewClient(conf.Socket)
	defer c.Close()
	return fn(ctx, conf, c)
}

// planPod reads the pod's networks annotation from xvrd (none without a pod
// or for a pod xvrd does not know) and plans its interfaces.
func planPod(ctx context.Context, c *api.Client, conf *Config, ifName string, pod *api.PodRef) ([]Attachment, error) {
	if pod == nil {
		return Plan(conf.DefaultNetwork, ifName, nil)
	}
	p, err := c.GetPod(ctx, pod.Namespace, pod.Name)
	if err != nil && !api.IsNotFound(err) {
		return nil, apiError(err, "reading pod "+pod.Namespace+"/"+pod.Name)
	}
	if pod.UID != "" && p.UID != "" && p.UID != pod.UID {
		return nil, invalid("pod %s/%s: the runtime's K8S_POD_UID %s is not the pod's UID %s (the pod was recreated)",
			pod.Namespace, pod.Name, pod.UID, p.UID)
	}
	elems, err := ParseSelection(p.Annotations[api.NetworksAnnotation], pod.Namespace)
	if err != nil {
		return nil, invalid("pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	atts, err := Plan(conf.DefaultNetwork, ifName, elems)
	if err != nil {
		return nil, invalid("pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return atts, nil
}

// adder makes one sandbox's interfaces and remembers what it made, so that
// a failed ADD removes exactly that.
type adder struct {
	c       *api.Client
	conf    *Config
	cid     string
	sandbox string
	pod     *api.PodRef
	host    *hostSide
	podNS   netns.NsHandle

	veths []string // host ends possibly created
	ports []string // port IDs possibly applied
}

func newAdder(c *api.Client, conf *Config, args *skel.CmdArgs, pod *api.PodRef) (*adder, error) {
	podNS, err := openNS(args.Netns)
	if err != nil {
		return nil, err
	}
	host, err := openHostSide(conf.HostNetns)
	if err != nil {
		podNS.Close()
		return nil, invalid("hostNetns: %v", err)
	}
	return &adder{c: c, conf: conf, cid: args.ContainerID, sandbox: args.Netns, pod: pod, host: host, podNS: podNS}, nil
}

func (a *adder) close() {
	a.host.Close()
	a.podNS.Close()
}

// add makes every interface, then configures the pod; on error it rolls
// back everything it made.
func (a *adder) add(ctx context.Context, atts []Attachment) (ifs []iface, err error) {
	defer func() {
		if err != nil {
			a.rollback()
		}
	}()
	for _, at := range atts {
		f, err := a.attach(ctx, at)
		if err != nil {
			return nil, err
		}
		ifs = append(ifs, f)
	}
	pods := make([]podIf, len(ifs))
	for i, f := range ifs {
		pods[i] = f.pod
	}
	if err := configurePod(a.podNS, pods); err != nil {
		return nil, fmt.Errorf("configuring pod netns %s: %w", a.sandbox, err)
	}
	if err := a.publish(ctx); err != nil {
		return nil, err
	}
	return ifs, nil
}

// publish has xvrd write the pod's network-status (with Kubernetes, into
// the pod's annotation) before the ADD returns, so it is there by the time
// the pod runs. A pod xvrd cannot find is not an error: there is nothing to
// annotate.
func (a *adder) publish(ctx context.Context) error {
	if a.pod == nil {
		return nil
	}
	if _, err := a.c.PublishNetworkStatus(ctx, a.pod.Namespace, a.pod.Name); err != nil && !api.IsNotFound(err) {
		return apiError(err, "publishing the network-status of pod "+a.pod.Namespace+"/"+a.pod.Name)
	}
	return nil
}

// attach creates one veth and registers its port with xvrd.
func (a *adder) attach(ctx context.Context, at Attachment) (iface, error) {
	name := HostIfName(a.cid, at.IfName)
	a.veths = append(a.veths, name)
	if err := a.dropStale(ctx, name, at.IfName); err != nil {
		return iface{}, err
	}
	hostMAC, err := a.host.addVeth(a.podNS, a.cid, at.IfName, a.conf.MTU)
	if err != nil {
		return iface{}, err
	}
	p := a.port(at, name)
	a.ports = append(a.ports, p.ID)
	got, err := a.c.ApplyPort(ctx, p)
	if err != nil {
		return iface{}, apiError(err, fmt.Sprintf("%s on network %s", at.IfName, at.Network))
	}
	if got.State != "up" { // e.g. the poller has no room for another socket
		return iface{}, types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("%s on network %s: xvrd could not open the port: %s", at.IfName, at.Network, got.State), "")
	}
	pi, err := podIfFromPort(at, got)
	if err != nil {
		return iface{}, err
	}
	return iface{hostName: name, hostMAC: hostMAC, pod: pi, network: at.Network}, nil
}

// dropStale deletes the port of a host end that an interrupted ADD of this
// sandbox left (addVeth then replaces the device), so that xvrd closes its
// socket on the old device before the device goes, and opens one on the new.
func (a *adder) dropStale(ctx context.Context, hostIf, ifname string) error {
	stale, err := a.host.exists(hostIf)
	if err != nil || !stale {
		return err
	}
	if err := api.IgnoreNotFound(a.c.DeletePort(ctx, PortID(a.cid, ifname))); err != nil {
		return apiError(err, "deleting the port of stale veth "+hostIf)
	}
	return nil
}

func (a *adder) port(at Attachment, hostIf string) api.Port {
	p := api.Port{
		ID: PortID(a.cid, at.IfName), Network: at.Network, HostIfName: hostIf,
		Pod: a.pod, ContainerID: a.cid, IfName: at.IfName, Index: at.Index, DefaultRoute: at.DefaultRoute,
	}
	if at.IP.IsValid() {
		p.IP = at.IP.String()
	}
	if at.MAC != nil {
		p.MAC = at.MAC.String()
	}
	return p
}

// rollback deletes the ports, then the veths, that add may have made.
// Failures are reported on stderr (the runtime's log): the ADD has
// already failed with its own error.
func (a *adder) rollback() {
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	for i := len(a.ports) - 1; i >= 0; i-- {
		if err := api.IgnoreNotFound(a.c.DeletePort(ctx, a.ports[i])); err != nil {
			fmt.Fprintf(os.Stderr, "xvr-cni: rollback: deleting port %s: %v\n", a.ports[i], err)
		}
	}
	for _, name := range a.veths {
		if err := a.host.delLink(name); err != nil {
			fmt.Fprintf(os.Stderr, "xvr-cni: rollback: %v\n", err)
		}
	}
}
