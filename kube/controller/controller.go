package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/xvr-project/xvr/kube/mnp"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
	"github.com/xvr-project/xvr/vrouter/api"
)

// Name is the controller's name: its Event source and field manager.
const Name = "xvr-kube-manager"

// Reasons of the Events and conditions an operator sees.
const (
	// ReasonResolved: Ready=True, the VN is served to the nodes.
	ReasonResolved = "Resolved"
	// ReasonRefNotFound: Ready=False, opencontrail.org/network names no VN.
	ReasonRefNotFound = "RefNotFound"
	// ReasonCIDRInUse: Ready=False, a CIDR or reference change was refused
	// while pod interfaces use the VN.
	ReasonCIDRInUse = "CIDRInUse"
	// ReasonInUse: Deleting=False, the NAD is being deleted but pods or
	// other VNs use its VN.
	ReasonInUse = "InUse"
	// ReasonNetworkInUse is the Warning Event of a deletion that waits.
	ReasonNetworkInUse = "NetworkInUse"
	// ReasonInvalidNetwork is the Warning Event of a NAD that does not parse.
	ReasonInvalidNetwork = "InvalidNetwork"
	// ReasonReservedName is the Warning Event of a NAD named like the
	// cluster default network.
	ReasonReservedName = "ReservedName"
	// ReasonCreated and ReasonDeleted are Normal Events for a VN's life.
	ReasonCreated = "Created"
	ReasonDeleted = "Deleted"
)

// DefaultRetryInterval is Options.RetryInterval's default.
const DefaultRetryInterval = 30 * time.Second

// Options configure the controller.
type Options struct {
	// Cluster is the cluster name in the Contrail names
	// (<cluster>-<name>-pod-network in <cluster>-<namespace>); empty means
	// nad.DefaultCluster ("k8s"). It must equal the nodes' -cluster.
	Cluster string
	// DefaultCIDR is the cluster default network's IPv4 prefix; it must
	// equal xvrd's -default-cidr. Required.
	DefaultCIDR netip.Prefix
	// RetryInterval is how often a NAD that waits (in use, reference not
	// found, CIDR change refused) is looked at again besides the watch
	// events that re-trigger it; 0 means DefaultRetryInterval.
	RetryInterval time.Duration
	// NoNetworkPolicy leaves network policy alone: no NodePolicy is
	// written, so nodes do not enforce policy (another implementation
	// may). NodePolicies written before are left as they are.
	NoNetworkPolicy bool

	// observe, when set (tests), is told the outcome of every reconcile.
	observe func(controller, key, outcome string)
}

// defaultKey is the cluster default network's VN.
var defaultKey = types.NamespacedName{Namespace: nad.DefaultNamespace, Name: api.DefaultNetworkName}

// validate checks o and fills its defaults.
func (o *Options) validate() error {
	if o.Cluster == "" {
		o.Cluster = nad.DefaultCluster
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if !o.DefaultCIDR.IsValid() {
		return errors.New("controller: a default network CIDR is required")
	}
	if err := nad.CheckPrefix(o.DefaultCIDR); err != nil {
		return fmt.Errorf("controller: default network CIDR: %w", err)
	}
	if _, _, err := nad.Gateway(o.DefaultCIDR); err != nil {
		return fmt.Errorf("controller: default network CIDR: %w", err)
	}
	o.DefaultCIDR = o.DefaultCIDR.Masked()
	return nil
}

// NewScheme returns a scheme with the types the controller reads and
// writes: Kubernetes' own, NADs, MultiNetworkPolicies, xvr.io/v1alpha1
// and CRDs.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, nadv1.AddToScheme, mnp.AddToScheme, v1alpha1.AddToScheme, apiextensionsv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("controller: building the scheme: %w", err)
		}
	}
	return s, nil
}

// Setup adds the controller's reconcilers and cache indexes to mgr, whose
// scheme must come from NewScheme. The CRDs must exist (kube/crds.Ensure)
// before mgr starts.
func Setup(mgr manager.Manager, opts Options) error {
	if err := opts.validate(); err != nil {
		return err
	}
	if err := addIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	b := &base{
		c:    mgr.GetClient(),
		api:  mgr.GetAPIReader(),
		rec:  mgr.GetEventRecorderFor(Name),
		opts: opts,
		vnis: &vniAllocator{api: mgr.GetAPIReader()},
	}
	adds := []func(manager.Manager, *base) error{addNetworkController, addDefaultController, addGCController}
	if !opts.NoNetworkPolicy {
		adds = append(adds, addPolicyController)
	}
	for _, add := range adds {
		if err := add(mgr, b); err != nil {
			return err
		}
	}
	return nil
}

// base is what the reconcilers share.
type base struct {
	c    client.Client // the manager's cached client
	api  client.Reader // uncached, where a stale cache would do harm
	rec  record.EventRecorder
	opts Options
	vnis *vniAllocator
}

// observe reports a reconcile's outcome to the test hook, if any.
func (b *base) observe(controller, key, outcome string) {
	if b.opts.observe != nil && outcome != "" {
		b.opts.observe(controller, key, outcome)
	}
}
