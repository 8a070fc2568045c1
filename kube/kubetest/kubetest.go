// Package kubetest runs a real Kubernetes control plane for tests: etcd
// (Debian's etcd-server, /usr/bin/etcd) and kube-apiserver (built from the
// Go module proxy into <repo>/.cache/kube/bin by `make kube-apiserver`,
// scripts/kube-apiserver.sh) on 127.0.0.1, through controller-runtime's
// envtest. There is no scheduler, controller-manager or kubelet: tests
// create Nodes and bound Pods themselves, as kubelet and the scheduler would
// have.
//
// Importers: tests only (kube/controller, kube/node, e2e).
package kubetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// AssetsEnv overrides the directory that holds kube-apiserver.
const AssetsEnv = "XVR_KUBE_ASSETS"

// Env is one control plane.
type Env struct {
	// Config is an admin's (system:masters) client config.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file with the same identity,
	// for binaries (xvrd, xvr-kube-manager).
	Kubeconfig string

	env *envtest.Environment
	dir string
}

// Paths returns where kube-apiserver and etcd are expected.
func Paths() (apiserver, etcd string) {
	dir := os.Getenv(AssetsEnv)
	if dir == "" {
		dir = filepath.Join(repoRoot(), ".cache", "kube", "bin")
	}
	return filepath.Join(dir, "kube-apiserver"), "/usr/bin/etcd"
}

// Start starts a fresh etcd and kube-apiserver and writes an admin
// kubeconfig. Stop ends both.
func Start() (*Env, error) {
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime's logger
	apiserver, etcd := Paths()
	for _, p := range []string{apiserver, etcd} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("kubetest: %w (run `make kube-apiserver` for kube-apiserver; apt-get install etcd-server for etcd)", err)
		}
	}
	dir, err := os.MkdirTemp("", "xvr-kubetest-")
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	// envtest finds its binaries in one directory: link them there.
	assets := filepath.Join(dir, "bin")
	if err := linkAll(assets, apiserver, etcd); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// kube-apiserver drains its watches for long on SIGTERM; after
	// StopTimeout envtest kills it, which is what a test of an API server
	// that went away wants anyway.
	te := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStopTimeout: stopTimeout}
	te.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(dir, "etcd")}
	cfg, err := te.Start()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("kubetest: starting etcd and kube-apiserver: %w", err)
	}
	e := &Env{Config: cfg, env: te, dir: dir, Kubeconfig: filepath.Join(dir, "admin.kubeconfig")}
	if err := e.writeKubeconfig(); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	return e, nil
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

// Stop ends the control plane and removes its files. A process that had to
// be killed after stopTimeout is not an error.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if err != nil && strings.Contains(err.Error(), "timeout waiting for process") {
		err = nil
	}
	if rerr := os.RemoveAll(e.dir); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("kubetest: stopping: %w", err)
	}
	return nil
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
