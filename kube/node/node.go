package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/vrouter/agent"
	"github.com/xvr-project/xvr/vrouter/api"
)

// Config is what a Node needs.
type Config struct {
	// Rest is the API server's client config (xvrd -kubeconfig).
	Rest *rest.Config
	// Name is this node's name, as its Node object and pods' spec.nodeName have it.
	Name string
	// NodeIP is the node's fabric address, which other nodes tunnel to
	// (xvrd -node-ip); empty without a fabric: no routes to other nodes.
	NodeIP string
	// Log defaults to slog.Default().
	Log *slog.Logger
	// Resync is how often a full sync runs even without changes (default 30 s).
	Resync time.Duration
	// Timeout bounds each API call made for the CNI (default 5 s).
	Timeout time.Duration
}

// Node is the Kubernetes side of one xvrd. Make it with New, give it to the
// agent as its Addresses, then Run it with the agent as backend.
type Node struct {
	cfg   Config
	log   *slog.Logger
	c     client.Client // direct: writes and live reads
	cache cache.Cache   // reads: VNs, InstanceIPs, Nodes

	b      Agent // set by Run
	kick   chan struct{}
	synced chan struct{}

	mu      sync.Mutex
	taken   map[string]string   // InstanceIP name -> its port's "node/port", from the cache
	pending map[string]claimKey // releases not yet done, by InstanceIP name
	relKick chan struct{}
}

type claimKey struct{ port, node string }

// Agent is what the node drives: the local API's backend and the claims
// its ports hold (vrouter/agent.Agent).
type Agent interface {
	api.Backend
	Claims() []agent.AddressClaim
}

// Scheme is what the node's clients know: core types and xvr.io/v1alpha1.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("kube scheme: %w", err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("xvr scheme: %w", err)
	}
	return s, nil
}

// New makes the clients and the cache; nothing is contacted until Run.
func New(cfg Config) (*Node, error) {
	if cfg.Rest == nil || cfg.Name == "" {
		return nil, errors.New("kube node: config needs Rest and Name")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	s, err := Scheme()
	if err != nil {
		return nil, err
	}
	rc := rest.CopyConfig(cfg.Rest)
	rc.UserAgent = "xvrd/" + cfg.Name
	rc.QPS, rc.Burst = 100, 200 // a burst of pods must not queue behind client-side throttling
	c, err := client.New(rc, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("kube node: client: %w", err)
	}
	// Of the NodePolicies, the node reads its own only. The cache resolves
	// the kind when it is made, maybe before the controller has installed
	// the CRD: a static mapping answers for it, the API server for the rest.
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("kube node: http client: %w", err)
	}
	dyn, err := apiutil.NewDynamicRESTMapper(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("kube node: rest mapper: %w", err)
	}
	static := meta.NewDefaultRESTMapper(nil)
	static.Add(v1alpha1.GroupVersion.WithKind("NodePolicy"), meta.RESTScopeRoot)
	ca, err := cache.New(rc, cache.Options{Scheme: s, HTTPClient: hc, Mapper: nodePolicyMapper{RESTMapper: dyn, static: static}, ByObject: map[client.Object]cache.ByObject{
		&v1alpha1.NodePolicy{}: {Field: fields.OneTermEqualSelector("metadata.name", cfg.Name)},
	}})
	if err != nil {
		return nil, fmt.Errorf("kube node: cache: %w", err)
	}
	return &Node{cfg: cfg, log: cfg.Log.With("component", "kube"), c: c, cache: ca,
		kick: make(chan struct{}, 1), synced: make(chan struct{}), relKick: make(chan struct{}, 1),
		taken: map[string]string{}, pending: map[string]claimKey{}}, nil
}

// Run serves b until ctx ends: it starts the cache, then syncs on every
// change and every Resync, and retries pending releases. It returns when
// ctx is done, or early if the cache cannot be set up.
func (n *Node) Run(ctx context.Context, b Agent) error {
	n.b = b
	if err := n.watchRetry(ctx); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- n.cache.Start(ctx) }()
	go n.releaser(ctx)
	if !n.cache.WaitForCacheSync(ctx) {
		return errors.Join(ctx.Err(), <-errc)
	}
	close(n.synced)
	n.log.Info("kube cache synced", "node", n.cfg.Name)
	tick := time.NewTicker(n.cfg.Resync)
	defer tick.Stop()
	for {
		n.sync(ctx)
		select {
		case <-ctx.Done():
			return <-errc
		case <-n.kick:
		case <-tick.C:
		}
	}
}

// Synced is closed once the cache has synced and the first sync may run.
func (n *Node) Synced() <-chan struct{} { return n.synced }

// watchRetry is watch until it succeeds: xvrd may start before the
// controller has installed xvr's CRDs, or while the API server is down.
func (n *Node) watchRetry(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for {
		err := n.watch(ctx)
		if err == nil {
			return nil
		}
		n.log.Warn("waiting for the API server and xvr's CRDs", "err", err, "retry", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// watch registers the event handlers that schedule syncs and keep the
// address hint map.
func (n *Node) watch(ctx context.Context) error {
	for _, obj := range []client.Object{&v1alpha1.VirtualNetwork{}, &corev1.Node{}, &v1alpha1.NodePolicy{}} {
		inf, err := n.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("kube node: informer for %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { n.schedule() },
			UpdateFunc: func(any, any) { n.schedule() },
			DeleteFunc: func(any) { n.schedule() },
		}); err != nil {
			return fmt.Errorf("kube node: handler for %T: %w", obj, err)
		}
	}
	inf, err := n.cache.GetInformer(ctx, &v1alpha1.InstanceIP{}, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("kube node: informer for instance ips: %w", err)
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { n.noteIP(o, false) },
		UpdateFunc: func(_, o any) { n.noteIP(o, false) },
		DeleteFunc: func(o any) { n.noteIP(o, true) },
	})
	if err != nil {
		return fmt.Errorf("kube node: handler for instance ips: %w", err)
	}
	return nil
}

func (n *Node) schedule() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// noteIP keeps the taken map (the allocation hint) and schedules a sync.
func (n *Node) noteIP(o any, gone bool) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	ip, ok := o.(*v1alpha1.InstanceIP)
	if !ok {
		return
	}
	n.mu.Lock()
	if gone {
		delete(n.taken, ip.Name)
	} else {
		n.taken[ip.Name] = ip.Spec.Node + "/" + ip.Spec.Port
	}
	n.mu.Unlock()
	n.schedule()
}

// Taken implements agent.Addresses: whether the cache knows an InstanceIP
// for ip in network (this node's own ports are the agent's to know).
func (n *Node) Taken(network string, ip netip.Addr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.taken[v1alpha1.InstanceIPName(network, ip)]
	return ok
}

// nodePolicyMapper answers for NodePolicy from static, for anything else
// from its RESTMapper (the API server's discovery).
type nodePolicyMapper struct {
	meta.RESTMapper
	static meta.RESTMapper
}

var nodePolicyGK = v1alpha1.GroupVersion.WithKind("NodePolicy").GroupKind()

func (m nodePolicyMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if gk == nodePolicyGK {
		return m.static.RESTMapping(gk, versions...)
	}
	return m.RESTMapper.RESTMapping(gk, versions...)
}

func (m nodePolicyMapper) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	if gk == nodePolicyGK {
		return m.static.RESTMappings(gk, versions...)
	}
	return m.RESTMapper.RESTMappings(gk, versions...)
}
