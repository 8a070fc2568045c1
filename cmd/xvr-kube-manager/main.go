// Command xvr-kube-manager is xvr's cluster controller (TF's kube-manager):
// it installs the NetworkAttachmentDefinition and xvr CRDs, turns NADs into
// VirtualNetworks with cluster-unique VNIs, owns the cluster default
// network, collects InstanceIPs whose pod or node is gone and computes each
// node's network policy (NodePolicy) from NetworkPolicies and
// MultiNetworkPolicies (off with -network-policy=false). It runs as a
// Deployment (deploy/kubernetes/controller.yaml); with leader election,
// one replica works and the others wait.
//
// SIGTERM or SIGINT stops it: the workers finish, the Lease is released.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/xvr-project/xvr/kube/controller"
	"github.com/xvr-project/xvr/kube/crds"
	"github.com/xvr-project/xvr/nad"
)

// version is set by the Makefile with -ldflags.
var version = "dev"

// leaseName is the leader election Lease.
const leaseName = "xvr-kube-manager"

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

type options struct {
	kubeconfig     string
	cluster        string
	defaultCIDR    netip.Prefix
	leaderElect    bool
	leaseNamespace string
	metricsAddr    string
	healthAddr     string
	logLevel       slog.Level
	printCRDs      bool
	networkPolicy  bool
	showVersion    bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("xvr-kube-manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file; empty: $KUBECONFIG, ~/.kube/config, or the in-cluster service account")
	fs.StringVar(&o.cluster, "cluster", nad.DefaultCluster, "cluster name in the Contrail names (<cluster>-<name>-pod-network); must match the nodes'")
	cidr := fs.String("default-cidr", "198.19.0.0/16", "CIDR of the cluster default network default/cluster-wide-default; must match xvrd's -default-cidr")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "elect a leader among the replicas through a Lease "+leaseName)
	fs.StringVar(&o.leaseNamespace, "leader-election-namespace", "", "namespace of the Lease; empty: the pod's own, else kube-system")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9471", "address of the Prometheus /metrics endpoint; 0 turns it off")
	fs.StringVar(&o.healthAddr, "health-addr", "127.0.0.1:9472", "address of the /healthz and /readyz endpoints; 0 turns them off")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.BoolVar(&o.networkPolicy, "network-policy", true, "enforce NetworkPolicies and MultiNetworkPolicies: write each node's NodePolicy; false leaves policy to another implementation (delete the NodePolicies: kubectl delete xnp --all)")
	fs.BoolVar(&o.printCRDs, "print-crds", false, "print the CRDs as YAML (deploy/kubernetes/crds.yaml) and exit")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	p, err := netip.ParsePrefix(*cidr)
	if err != nil {
		return nil, fmt.Errorf("-default-cidr: %w", err)
	}
	o.defaultCIDR = p
	if o.leaseNamespace == "" {
		o.leaseNamespace = ownNamespace()
	}
	return o, nil
}

// ownNamespace is the pod's namespace (POD_NAMESPACE, or the service
// account's), kube-system outside a pod.
func ownNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(serviceAccountNamespace); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b))
	}
	return "kube-system"
}

// restConfig loads the kubeconfig the flag names, or the usual places.
func (o *options) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	cfg.UserAgent = controller.Name + "/" + version
	return cfg, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "xvr-kube-manager:", err)
		return 2
	}
	switch {
	case o.showVersion:
		fmt.Fprintln(stdout, version)
		return 0
	case o.printCRDs:
		return printCRDs(stdout, stderr)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	logger := logr.FromSlogHandler(log.Handler())
	ctrllog.SetLogger(logger)
	klog.SetLogger(logger)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, o, log); err != nil {
		log.Error("xvr-kube-manager stopped", "err", err)
		return 1
	}
	log.Info("xvr-kube-manager stopped")
	return 0
}

func printCRDs(stdout, stderr io.Writer) int {
	b, err := crds.Manifest()
	if err == nil {
		_, err = stdout.Write(b)
	}
	if err != nil {
		fmt.Fprintln(stderr, "xvr-kube-manager:", err)
		return 1
	}
	return 0
}

// serve installs the CRDs and runs the controller until ctx ends.
func serve(ctx context.Context, o *options, log *slog.Logger) error {
	cfg, err := o.restConfig()
	if err != nil {
		return err
	}
	scheme, err := controller.NewScheme()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("API client: %w", err)
	}
	if err := crds.Ensure(ctx, c); err != nil {
		return err
	}
	mgr, err := newManager(cfg, scheme, o)
	if err != nil {
		return err
	}
	opts := controller.Options{Cluster: o.cluster, DefaultCIDR: o.defaultCIDR, NoNetworkPolicy: !o.networkPolicy}
	if err := controller.Setup(mgr, opts); err != nil {
		return err
	}
	log.Info("xvr-kube-manager starting", "version", version, "cluster", o.cluster, "defaultCIDR", o.defaultCIDR.String(),
		"leaderElection", o.leaderElect, "leaseNamespace", o.leaseNamespace, "networkPolicy", o.networkPolicy)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	return nil
}

func newManager(cfg *rest.Config, scheme *runtime.Scheme, o *options) (manager.Manager, error) {
	grace := 20 * time.Second
	mgr, err := manager.New(cfg, manager.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:        o.healthAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              leaseName,
		LeaderElectionNamespace:       o.leaseNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &grace,
	})
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	if o.healthAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, fmt.Errorf("healthz: %w", err)
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return nil, fmt.Errorf("readyz: %w", err)
		}
	}
	return mgr, nil
}
