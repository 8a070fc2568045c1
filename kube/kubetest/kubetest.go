// Package kubetest runs a real Kubernetes control plane for tests: etcd
// (Debian's etcd-server, /usr/bin/etcd) and kube-apiserver on 127.0.0.1,
// through controller-runtime's envtest, and on request the real
// kube-controller-manager beside it (StartControllerManager). It also
// writes the configuration of the node-side binaries a test runs itself:
// kube-proxy (KubeProxyArgs) and CoreDNS (CoreDNSArgs). A real node is
// StartContainerd (Debian's containerd 1.6 + runc, a root, state and
// socket of its own, optionally in a node's network namespace; images
// imported from archives, internal/image) with StartKubelet against it.
// Every binary but etcd and containerd is built from the Go module proxy
// into <repo>/.cache/kube/bin by `make kube-bins` (scripts/kube-bins.sh).
//
// The Service CIDR is ServiceCIDR, so the `kubernetes` Service is
// KubernetesServiceIP. Without StartScheduler (the real kube-scheduler)
// tests bind Pods themselves (spec.nodeName), and without StartKubelet
// create Nodes and set Pods' status as kubelet would.
// Without StartControllerManager nothing creates ServiceAccounts,
// EndpointSlices or a Deployment's Pods either; the ServiceAccount
// admission plugin is off (as envtest has it, unless
// Options.ServiceAccountAdmission), so Pods need no account.
//
// Importers: tests only (kube/controller, kube/node, e2e).
package kubetest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// AssetsEnv overrides the directory that holds the binaries built by
// scripts/kube-bins.sh.
const AssetsEnv = "XVR_KUBE_ASSETS"

// The cluster's fixed addressing, from the test range 198.18.0.0/15.
const (
	// ServiceCIDR is kube-apiserver's --service-cluster-ip-range.
	ServiceCIDR = "198.18.96.0/24"
	// KubernetesServiceIP is the ClusterIP of default/kubernetes, the
	// first address of ServiceCIDR.
	KubernetesServiceIP = "198.18.96.1"
	// ClusterDomain is the DNS domain of Services (CoreDNSArgs).
	ClusterDomain = "cluster.local"
)

// Env is one control plane.
type Env struct {
	// Config is an admin's (system:masters) client config.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file with the same identity,
	// for binaries (xvrd, xvr-kube-manager, kube-proxy, coredns). Its
	// server is https://127.0.0.1:SecurePort.
	Kubeconfig string
	// SecurePort is the port kube-apiserver serves on, on 127.0.0.1; the
	// `kubernetes` Service's endpoint is AdvertiseAddress:SecurePort.
	SecurePort int
	// CAFile is the CA that signed kube-apiserver's serving certificate
	// (PEM), which names 127.0.0.1, the advertise address,
	// KubernetesServiceIP and kubernetes.default.svc.<ClusterDomain>.
	CAFile string

	env     *envtest.Environment
	dir     string
	certDir string

	mu     sync.Mutex
	kcm    *ControllerManager // running, if any
	egress *egressProxy       // with Options.KubeletEgress
}

// Options are Start's choices; the zero value is the default.
type Options struct {
	// AdvertiseAddress is kube-apiserver's --advertise-address: the
	// address of the `kubernetes` Service's endpoint (the port is
	// SecurePort), and one the serving certificate names. kube-apiserver
	// listens on 127.0.0.1 only whatever this is: an e2e test that wants
	// pods to reach it through the Service forwards AdvertiseAddress:
	// SecurePort on its underlay to 127.0.0.1:SecurePort. Default
	// 127.0.0.1.
	AdvertiseAddress net.IP
	// ServiceAccountAdmission turns on kube-apiserver's ServiceAccount
	// admission plugin, which envtest turns off: a Pod then gets its
	// Namespace's default ServiceAccount and a projected token volume,
	// and is rejected while that account does not exist yet (as in a real
	// cluster, where the controller manager makes it). Use it with
	// StartControllerManager.
	ServiceAccountAdmission bool
	// KubeletEgress sends kube-apiserver's connections to nodes through
	// an HTTP CONNECT proxy of the test (its "cluster" egress selector),
	// which takes a connection to a Node of StartKubelet (its name or
	// NodeIP) to the 127.0.0.1 of its kubelet's namespace: logs, exec and
	// port-forward of Pods on StartKubelet's nodes then work, in node
	// namespaces too. Other destinations are dialled as asked.
	KubeletEgress bool
}

// Paths returns where kube-apiserver and etcd are expected.
func Paths() (apiserver, etcd string) {
	return binPath("kube-apiserver"), "/usr/bin/etcd"
}

// binPath is where scripts/kube-bins.sh puts the binary name.
func binPath(name string) string {
	dir := os.Getenv(AssetsEnv)
	if dir == "" {
		dir = filepath.Join(repoRoot(), ".cache", "kube", "bin")
	}
	return filepath.Join(dir, name)
}

// needBinary reports a missing binary with how to get it.
func needBinary(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("kubetest: %w (run `make kube-bins` for the Kubernetes binaries; apt-get install etcd-server for etcd)", err)
	}
	return nil
}

// Start starts a fresh etcd and kube-apiserver with the default Options
// and writes an admin kubeconfig. Stop ends both.
func Start() (*Env, error) { return StartWith(Options{}) }

// StartWith is Start with options.
func StartWith(o Options) (*Env, error) {
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime's logger
	advertise := o.AdvertiseAddress
	if advertise == nil {
		advertise = net.IPv4(127, 0, 0, 1)
	}
	if advertise.To4() == nil {
		return nil, fmt.Errorf("kubetest: advertise address %v: want IPv4 (the Service CIDR is IPv4)", advertise)
	}
	apiserver, etcd := Paths()
	for _, p := range []string{apiserver, etcd} {
		if err := needBinary(p); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "xvr-kubetest-")
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	e := &Env{dir: dir, certDir: filepath.Join(dir, "apiserver"), Kubeconfig: filepath.Join(dir, "admin.kubeconfig")}
	e.CAFile = filepath.Join(e.certDir, caCertFile)
	if err := e.start(apiserver, etcd, advertise, o); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := e.writeKubeconfig(); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	return e, nil
}

// start prepares the cert dir and envtest's environment and starts it.
func (e *Env) start(apiserver, etcd string, advertise net.IP, o Options) error {
	// envtest finds its binaries in one directory: link them there.
	assets := filepath.Join(e.dir, "bin")
	if err := linkAll(assets, apiserver, etcd); err != nil {
		return err
	}
	if err := os.MkdirAll(e.certDir, 0o700); err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	ca, err := writePKI(e.certDir, net.IPv4(127, 0, 0, 1), advertise, net.ParseIP(KubernetesServiceIP))
	if err != nil {
		return fmt.Errorf("kubetest: writing certificates: %w", err)
	}
	// kube-apiserver drains its watches for long on SIGTERM; after
	// StopTimeout envtest kills it, which is what a test of an API server
	// that went away wants anyway.
	e.env = &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStopTimeout: stopTimeout}
	e.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(e.dir, "etcd")}
	as := &envtest.APIServer{CertDir: e.certDir}
	as.SecureServing.CA = ca // envtest keeps our certificates, as apiserver.crt exists
	args := as.Configure().
		Set("service-cluster-ip-range", ServiceCIDR).
		Set("advertise-address", advertise.String())
	if o.ServiceAccountAdmission {
		args.Disable("disable-admission-plugins") // envtest's default lists ServiceAccount
	}
	if o.KubeletEgress {
		p, cfg, err := startEgressProxy(e.dir)
		if err != nil {
			return err
		}
		e.egress = p
		args.Set("egress-selector-config-file", cfg)
	}
	e.env.ControlPlane.APIServer = as
	cfg, err := e.env.Start()
	if err != nil {
		e.closeEgress()
		return fmt.Errorf("kubetest: starting etcd and kube-apiserver: %w", err)
	}
	e.Config = cfg
	if e.SecurePort, err = strconv.Atoi(as.SecureServing.Port); err != nil {
		return errors.Join(fmt.Errorf("kubetest: kube-apiserver's port %q: %w", as.SecureServing.Port, err), e.env.Stop())
	}
	return nil
}

func linkAll(dir string, paths ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	for _, p := range paths {
		if err := os.Symlink(p, filepath.Join(dir, filepath.Base(p))); err != nil {
			return fmt.Errorf("kubetest: %w", err)
		}
	}
	return nil
}

func (e *Env) writeKubeconfig() error {
	u, err := e.env.ControlPlane.AddUser(envtest.User{Name: "xvr-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("kubetest: adding the admin user: %w", err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return fmt.Errorf("kubetest: making a kubeconfig: %w", err)
	}
	if err := os.WriteFile(e.Kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	return nil
}

// stopTimeout is how long a stopping kube-apiserver or etcd gets before
// SIGKILL.
const stopTimeout = 5 * time.Second

// StopAPIServer stops kube-apiserver only (etcd keeps running), for tests
// of what happens while the API server is unreachable: SIGTERM, then
// SIGKILL after stopTimeout. Either way it is gone when this returns. It
// cannot be restarted with the same credentials: such tests use an Env of
// their own.
func (e *Env) StopAPIServer() error {
	err := e.env.ControlPlane.APIServer.Stop()
	if err != nil && !strings.Contains(err.Error(), "timeout waiting for process") { // killed after the timeout
		return fmt.Errorf("kubetest: stopping kube-apiserver: %w", err)
	}
	return nil
}

// Stop ends the control plane (and the controller manager, if running) and
// removes its files. A process that had to
// be killed after stopTimeout is not an error.
func (e *Env) Stop() error {
	e.stopControllerManager()
	err := e.env.Stop()
	if err != nil && strings.Contains(err.Error(), "timeout waiting for process") {
		err = nil
	}
	e.closeEgress()
	if rerr := os.RemoveAll(e.dir); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("kubetest: stopping: %w", err)
	}
	return nil
}

// closeEgress stops the egress proxy, if any.
func (e *Env) closeEgress() {
	if e.egress != nil {
		_ = e.egress.close()
		e.egress = nil
	}
}

var (
	shared     *Env
	sharedErr  error
	sharedOnce sync.Once
)

// Require returns the package's shared Env, starting it on first use. It
// skips under -short and fails the test when the control plane cannot
// start. Call Shutdown from TestMain after m.Run.
func Require(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("kubetest: a real kube-apiserver is not started under -short")
	}
	sharedOnce.Do(func() { shared, sharedErr = Start() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// Main is a TestMain for packages that use Require: it runs the tests, then
// before (if any: what must stop before the API server does), then stops
// the shared Env; a failure to stop fails the run.
func Main(m *testing.M, before func()) {
	code := m.Run()
	if before != nil {
		before()
	}
	if err := Shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// Shutdown stops the shared Env if Require started one.
func Shutdown() error {
	if shared == nil {
		return nil
	}
	return shared.Stop()
}

// repoRoot is the module root, found from this file's path.
func repoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}
