// Command xvrd is the xvr compute-node daemon: the AF_XDP forwarder, the
// agent that programs it, and the local API on a root-only unix socket.
//
// It restores its state from its store on start, so after a restart (also
// after kill -9) every network and port is back without the CNI's help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/vishvananda/netlink"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/kube/node"
	"github.com/xvr-project/xvr/vrouter/afxdp"
	"github.com/xvr-project/xvr/vrouter/agent"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
	"github.com/xvr-project/xvr/vrouter/hostif"
	"github.com/xvr-project/xvr/vrouter/metrics"
	"github.com/xvr-project/xvr/vrouter/store"
	"github.com/xvr-project/xvr/vrouter/xdpprog"
)

// idleTimeout closes keep-alive connections of the API and metrics servers
// that stay idle this long, so clients that never hang up cannot hold fds.
const idleTimeout = 60 * time.Second

// version is set by the Makefile with -ldflags.
var version = "dev"

type options struct {
	socket     string
	db         string
	pollers    int
	mac        string
	cluster    string
	frames     int
	umems      int
	fill       int
	fillMax    int
	ring       int
	noYield    bool
	noShortcut bool
	pollerCPUs string
	reconcile  time.Duration
	debug      bool
	defCIDR    string
	fabricIf   string
	nodeIP     string
	encap      string
	flows      int
	snatGW     string
	svcCIDR    string
	metrics    string
	kubecfg    string
	inCluster  bool
	nodeName   string
	hostIf     string
	hostPeer   string
	hostMasq   bool
	uninstall  bool
}

func main() {
	var o options
	flag.StringVar(&o.socket, "socket", api.DefaultSocket, "unix socket of the local API")
	flag.StringVar(&o.db, "db", "/var/lib/xvr/xvrd.db", "state store (bbolt)")
	flag.IntVar(&o.pollers, "pollers", 1, "forwarding threads; poller i serves queue i of every port")
	flag.StringVar(&o.pollerCPUs, "poller-cpus", "", "CPUs for the pollers (a list as taskset -c takes: poller i runs on the i-th, round robin); xvrd's other threads keep off them; empty: the scheduler places every thread")
	flag.StringVar(&o.mac, "mac", "02:78:76:72:00:01", "the vRouter's MAC (gateway ARP answer, source of forwarded frames)")
	flag.StringVar(&o.cluster, "cluster", "k8s", "cluster name used in Contrail VN names")
	flag.IntVar(&o.frames, "frames", 8192, "frames (2 KiB each) per UMEM; a UMEM serves frames/(2*fill) sockets")
	flag.IntVar(&o.fill, "fill", dataplane.DefaultFillTarget, "frames each socket keeps in its fill ring at least (deeper absorbs bursts; see docs/benchmarks.md)")
	flag.BoolVar(&o.noShortcut, "no-shortcut", false, "every frame goes through the forwarder: no XDP shortcut for unpoliced pod-to-pod traffic on this node (docs/operations.md)")
	flag.BoolVar(&o.noYield, "no-yield", false, "a spinning poller keeps its CPU instead of yielding it after every empty round (for a CPU of its own: -poller-cpus on an isolated core)")
	flag.IntVar(&o.fillMax, "fill-max", 0, "frames a busy socket's fill ring grows to, for 5 ms at its rate (0: -ring; -fill: fixed)")
	flag.IntVar(&o.ring, "ring", 4096, "size of every socket's fill and RX rings (a power of two, 2048..16384): the most frames a socket can take in while its poller is off the CPU")
	flag.IntVar(&o.umems, "umems", dataplane.DefaultMaxUmems, "UMEMs a poller may make as ports come")
	flag.DurationVar(&o.reconcile, "reconcile", 2*time.Second, "how often ports that are down are retried")
	flag.BoolVar(&o.debug, "debug", false, "debug logging")
	flag.StringVar(&o.fabricIf, "fabric-if", "", "the node's fabric NIC, which carries the overlay (empty: single node)")
	flag.StringVar(&o.nodeIP, "node-ip", "", "the node's IPv4 address on the fabric (default the fabric NIC's first)")
	flag.StringVar(&o.encap, "encap", "MPLSoUDP,VXLAN", "encapsulation priority towards other nodes")
	flag.IntVar(&o.flows, "flows", flowtable.DefaultCapacity, "flow table size (flows; 256 B each)")
	flag.StringVar(&o.svcCIDR, "service-cidr", "", "the cluster's Service CIDRs, comma-separated IPv4 (kube-apiserver's --service-cluster-ip-range): a pod's egress policy is checked on such traffic after kube-proxy's DNAT; empty: none")
	flag.StringVar(&o.snatGW, "snat-gw", "", "where fabric-SNAT traffic leaves (default the node's default gateway)")
	flag.StringVar(&o.defCIDR, "default-cidr", "198.19.0.0/16", "CIDR of the cluster default pod network (default/"+api.DefaultNetworkName+", every pod's eth0) standalone; with -kubeconfig the controller's -default-cidr is used; empty: none")
	flag.StringVar(&o.kubecfg, "kubeconfig", "", "kubeconfig of the cluster: networks, addresses and remote pods come from its API server (empty: standalone)")
	flag.BoolVar(&o.inCluster, "in-cluster", false, "like -kubeconfig, with the pod's ServiceAccount (its token and CA) and the API server at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (the node DaemonSet)")
	flag.StringVar(&o.nodeName, "node-name", "", "this node's name in the cluster (default the host name)")
	flag.StringVar(&o.metrics, "metrics-addr", "127.0.0.1:9470", "where /metrics (Prometheus) and /healthz are served; empty: not served")
	flag.StringVar(&o.hostIf, "host-if", hostif.DefaultName, "the node's host interface (the kernel's end of a veth pair on the default network: the node reaches pods, pods reach Services, the node and the outside); empty: none")
	flag.StringVar(&o.hostPeer, "host-peer", hostif.DefaultPeer, "xvr's end of the host interface's veth pair")
	flag.BoolVar(&o.hostMasq, "host-masquerade", true, "masquerade pods of the default network leaving the node (iptables) to the node's address")
	flag.BoolVar(&o.uninstall, "uninstall", false, "remove the host interface, its routes and the masquerade rule, then exit")
	flag.Parse()
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.uninstall {
		if err := uninstall(o); err != nil {
			log.Error("uninstall failed", "err", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("xvrd failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) (err error) {
	mac, err := net.ParseMAC(o.mac)
	if err != nil {
		return fmt.Errorf("parsing -mac: %w", err)
	}
	if o.pollers < 1 || o.pollers > 64 {
		return fmt.Errorf("-pollers %d out of range 1..64", o.pollers)
	}
	if o.fill < 64 || o.fill > 2048 || o.frames < 2*o.fill {
		return fmt.Errorf("-fill %d must be 64..2048 and at most half of -frames %d", o.fill, o.frames)
	}
	if o.ring < 2048 || o.ring > 16384 || o.ring&(o.ring-1) != 0 {
		return fmt.Errorf("-ring %d must be a power of two in 2048..16384", o.ring)
	}
	if o.fillMax != 0 && (o.fillMax < o.fill || o.fillMax > o.ring) {
		return fmt.Errorf("-fill-max %d must be -fill (%d)..-ring (%d), or 0", o.fillMax, o.fill, o.ring)
	}
	cpus, err := placeThreads(o, log)
	if err != nil {
		return err
	}
	svcNets, err := parseServiceCIDRs(o.svcCIDR)
	if err != nil {
		return err
	}
	if len(svcNets) == 0 && (o.kubecfg != "" || o.inCluster) {
		log.Warn("no -service-cidr: network policy checks a pod's egress to a Service against the ClusterIP, " +
			"not the endpoint kube-proxy picks (rules with pod or namespace selectors do not allow it)")
	}
	if err := os.MkdirAll(dirOf(o.db), 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	st, err := store.Open(o.db)
	if err != nil {
		return fmt.Errorf("opening store: %w", err)
	}
	defer closeLogged(log, "store", st.Close)
	prog, err := xdpprog.Load()
	if err != nil {
		return fmt.Errorf("loading xdp program: %w", err)
	}
	defer closeLogged(log, "xdp program", prog.Close)

	var shortcut *xdpprog.Program
	if !o.noShortcut {
		shortcut = prog
	}
	fab, err := fabricConfig(o, shortcut)
	if err != nil {
		return err
	}
	if fab != nil {
		defer closeLogged(log, "fabric xdp program", fab.Program.(*xdpprog.Fabric).Close)
	}
	cur := new(dataplane.Current)
	pctx, cancelPollers := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancelPollers()
	pollers := make([]agent.Poller, o.pollers)
	busy := make([]metrics.BusySource, o.pollers)
	var running atomic.Int32
	for i := range pollers {
		p, err := dataplane.NewPoller(cur, afxdp.UmemConfig{NumFrames: o.frames, FillSize: o.ring, RxSize: o.ring}, prog)
		if err != nil {
			return fmt.Errorf("starting poller %d: %w", i, err)
		}
		p.MaxUmems, p.FillTarget, p.FillMax, p.NoYield = o.umems, o.fill, o.fillMax, o.noYield
		if len(cpus) > 0 {
			p.CPUs = []int{cpus[i%len(cpus)]}
		}
		pollers[i], busy[i] = p, p
		wg.Add(1)
		running.Add(1)
		go func() {
			defer wg.Done()
			defer running.Add(-1)
			if err := p.Run(pctx); err != nil {
				log.Error("poller stopped", "poller", i, "err", err)
			}
		}()
	}
	defNet := ""
	if o.defCIDR != "" {
		defNet = "default/" + api.DefaultNetworkName
	}
	flows, err := newFlows(o, fab)
	if err != nil {
		return err
	}
	go ageFlows(pctx, flows)
	kn, err := kubeNode(o, fab, log)
	if err != nil {
		return err
	}
	cfg := agent.Config{Store: st, Links: netlinkLinks{}, Attacher: prog, Pollers: pollers,
		Current: cur, MAC: mac, Cluster: o.cluster, Log: log, Version: version, DefaultNetwork: defNet, Fabric: fab,
		Flows: flows, ServiceNets: svcNets}
	if shortcut != nil {
		cfg.Shortcut = shortcut
	}
	if kn != nil {
		cfg.Addresses = kn
		cfg.DefaultNetwork = "default/" + api.DefaultNetworkName // the controller's
	}
	ag, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if err := ag.Load(ctx); err != nil {
		return err
	}
	var backend api.Backend = ag
	if kn != nil {
		backend = kn.Backend(ag)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := kn.Run(pctx, ag); err != nil && pctx.Err() == nil {
				log.Error("kubernetes sync stopped", "err", err)
			}
		}()
	} else if defNet != "" {
		n := api.Network{Namespace: "default", Name: api.DefaultNetworkName, CIDR: o.defCIDR, CNIType: "xvr"}
		if _, err := ag.ApplyNetwork(ctx, n); err != nil {
			return fmt.Errorf("creating the cluster default network %s: %w", o.defCIDR, err)
		}
	}
	op, err := newOps(ag, flows, &running, busy, log)
	if err != nil {
		return err
	}
	host := newHostIf(o, mac, log)
	host.keep(ctx, ag, cfg.DefaultNetwork)
	return serve(ctx, o, ag, backend, op, func(ctx context.Context) { host.keep(ctx, ag, cfg.DefaultNetwork) }, log)
}

// kubeNode is xvrd's Kubernetes side when -kubeconfig or -in-cluster is
// given (nil otherwise).
func kubeNode(o options, fab *agent.FabricConfig, log *slog.Logger) (*node.Node, error) {
	rc, err := restConfig(o)
	if rc == nil || err != nil {
		return nil, err
	}
	name := o.nodeName
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("-node-name not given and no host name: %w", err)
		}
	}
	cfg := node.Config{Rest: rc, Name: strings.ToLower(name), Log: log}
	if fab != nil {
		cfg.NodeIP = fab.NodeIP.String()
	}
	return node.New(cfg)
}

// restConfig is the cluster's client config from -kubeconfig or
// -in-cluster; nil for a standalone node.
func restConfig(o options) (*rest.Config, error) {
	switch {
	case o.inCluster && o.kubecfg != "":
		return nil, errors.New("-in-cluster and -kubeconfig exclude each other")
	case o.inCluster:
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("-in-cluster: %w", err)
		}
		return rc, nil
	case o.kubecfg != "":
		rc, err := clientcmd.BuildConfigFromFlags("", o.kubecfg)
		if err != nil {
			return nil, fmt.Errorf("-kubeconfig: %w", err)
		}
		return rc, nil
	}
	return nil, nil
}

// serve runs the API until ctx ends; every -reconcile it retries ports and
// runs keep.
func serve(ctx context.Context, o options, ag *agent.Agent, backend api.Backend, op *ops, keep func(context.Context), log *slog.Logger) error {
	ln, err := api.Listen(o.socket)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.socket, err)
	}
	srv := &http.Server{Handler: op.api.Wrap(api.NewServer(backend, log)), ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: idleTimeout}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	mctx, stopOps := context.WithCancel(ctx)
	defer stopOps()
	if err := op.serveMetrics(mctx, o.metrics); err != nil {
		return errors.Join(err, srv.Close())
	}
	log.Info("xvrd serving", "socket", o.socket, "version", version)
	op.notify(daemon.SdNotifyReady)
	go op.watchdog(mctx)
	tick := time.NewTicker(o.reconcile)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("xvrd stopping")
			op.notify(daemon.SdNotifyStopping)
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := srv.Shutdown(sctx)
			os.Remove(o.socket) //nolint:errcheck // best effort: Listen replaces a dead socket anyway
			return err
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving the api: %w", err)
			}
			return nil
		case <-tick.C:
			ag.Reconcile(ctx)
			keep(ctx)
		}
	}
}

// fabricConfig loads the fabric XDP program when -fabric-if is given.
func fabricConfig(o options, shortcut *xdpprog.Program) (*agent.FabricConfig, error) {
	if o.fabricIf == "" {
		return nil, nil
	}
	kinds, err := encap.ParsePriority(o.encap)
	if err != nil {
		return nil, fmt.Errorf("-encap: %w", err)
	}
	var ip netip.Addr
	if o.nodeIP != "" {
		if ip, err = netip.ParseAddr(o.nodeIP); err != nil || !ip.Is4() {
			return nil, fmt.Errorf("-node-ip %q is not an IPv4 address", o.nodeIP)
		}
	} else if ip, err = firstIPv4(o.fabricIf); err != nil {
		return nil, err
	}
	prog, err := xdpprog.LoadFabric(xdpprog.FabricConfig{NodeIP: ip, Shortcut: shortcut})
	if err != nil {
		return nil, fmt.Errorf("loading the fabric xdp program: %w", err)
	}
	mtu, err := linkMTU(o.fabricIf)
	if err != nil {
		return nil, errors.Join(err, prog.Close())
	}
	cfg := &agent.FabricConfig{IfName: o.fabricIf, NodeIP: ip, MTU: mtu, Encap: kinds, Program: prog, Neighbors: kernelNeighbors{}}
	if err := snatConfig(o, cfg); err != nil {
		return nil, errors.Join(err, prog.Close())
	}
	return cfg, nil
}

// newFlows makes the flow table (policy verdicts, host-path flows and,
// with a fabric, SNAT through its port pools).
func newFlows(o options, fab *agent.FabricConfig) (*flowtable.Table, error) {
	cfg := flowtable.Config{Capacity: o.flows, Prefault: true}
	if fab != nil && fab.SNAT != nil {
		cfg.SNAT = []*flowtable.SNAT{fab.SNAT}
	}
	flows, err := flowtable.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the flow table: %w", err)
	}
	return flows, nil
}

// parseServiceCIDRs parses -service-cidr: comma-separated IPv4 CIDRs.
func parseServiceCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil || !p.Addr().Is4() || p != p.Masked() {
			return nil, fmt.Errorf("-service-cidr: %q is not an IPv4 CIDR (address bits past the prefix must be 0)", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// snatConfig makes the node IP's SNAT port pools, finds the gateway, and
// keeps the host's own connections off the pools' ports.
func snatConfig(o options, cfg *agent.FabricConfig) error {
	cfg.SNAT = flowtable.NewSNAT(cfg.NodeIP.As4())
	var err error
	if o.snatGW != "" { // else the node's default gateway, looked up until there is one
		if cfg.Gateway, err = netip.ParseAddr(o.snatGW); err != nil || !cfg.Gateway.Is4() {
			return fmt.Errorf("-snat-gw %q is not an IPv4 address", o.snatGW)
		}
	}
	return reservePorts(fmt.Sprintf("%d-%d", flowtable.TCPPortMin, flowtable.UDPPortMax))
}

// netlinkLinks finds devices in xvrd's network namespace.
type netlinkLinks struct{}

func (netlinkLinks) MAC(name string) (net.HardwareAddr, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("finding device %s: %w", name, err)
	}
	return l.Attrs().HardwareAddr, nil
}

func (netlinkLinks) Lookup(name string) (int, int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, 0, fmt.Errorf("finding device %s: %w", name, err)
	}
	q, err := realRxQueues(name)
	if err != nil {
		return 0, 0, err
	}
	return l.Attrs().Index, q, nil
}

// realRxQueues counts the device's active RX queues (real_num_rx_queues),
// which is what AF_XDP binds to; netlink reports only the allocated number.
func realRxQueues(name string) (int, error) {
	ents, err := os.ReadDir("/sys/class/net/" + name + "/queues")
	if err != nil {
		return 0, fmt.Errorf("counting rx queues of %s: %w", name, err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "rx-") {
			n++
		}
	}
	return max(n, 1), nil
}

func closeLogged(log *slog.Logger, what string, f func() error) {
	if err := f(); err != nil {
		log.Error("closing "+what, "err", err)
	}
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[:i+1]
		}
	}
	return "."
}
