package kubetest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/internal/nettest"
)

// DefaultControllers are the kube-controller-manager controllers
// StartControllerManager runs unless told otherwise: what makes
// ServiceAccounts and their tokens, EndpointSlices and Endpoints, a
// Deployment's ReplicaSets and Pods, and cleans up after a Namespace or an
// owner is deleted. Deliberately absent: node-lifecycle (a Node without a
// kubelet would be tainted and its Pods evicted), pod-garbage-collector
// (it deletes Pods bound to Nodes that do not exist), and everything that
// needs a cloud or a kubelet.
var DefaultControllers = []string{
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller", // kube-root-ca.crt in every Namespace
	"clusterrole-aggregation-controller",       // the admin/edit/view ClusterRoles
	"endpointslice-controller",
	"endpoints-controller",
	"endpointslice-mirroring-controller",
	"deployment-controller",
	"replicaset-controller",
	"daemonset-controller",
	"statefulset-controller",
	"job-controller",
	"namespace-controller",
	"garbage-collector-controller",
}

// ControllerManagerOptions are StartControllerManager's choices; the zero
// value is the default.
type ControllerManagerOptions struct {
	// Controllers is --controllers; empty means DefaultControllers.
	Controllers []string
	// Args are more flags, appended last.
	Args []string
}

// ControllerManager is a running kube-controller-manager.
type ControllerManager struct {
	proc *nettest.Proc
}

// Log returns what kube-controller-manager wrote so far.
func (c *ControllerManager) Log() string { return c.proc.Output() }

// Stop kills kube-controller-manager and waits (bounded) until it is gone;
// t.Cleanup and Env.Stop call it, and a second call does nothing.
func (c *ControllerManager) Stop() error {
	if err := c.proc.Kill(); err != nil {
		return fmt.Errorf("kubetest: stopping kube-controller-manager: %w", err)
	}
	if err := c.proc.Wait(10 * time.Second); err != nil && strings.Contains(err.Error(), "still running") {
		return fmt.Errorf("kubetest: stopping kube-controller-manager: %w", err)
	}
	return nil
}

// ControllerManagerArgs returns the argv that runs kube-controller-manager
// against e as its admin, with e's service-account signing key (so the
// tokens it mints verify) and CA, the Service CIDR, no leader election and
// no serving port.
func (e *Env) ControllerManagerArgs(o ControllerManagerOptions) []string {
	ctrls := o.Controllers
	if len(ctrls) == 0 {
		ctrls = DefaultControllers
	}
	args := []string{
		binPath("kube-controller-manager"),
		"--kubeconfig=" + e.Kubeconfig,
		"--service-account-private-key-file=" + filepath.Join(e.certDir, saKeyFile),
		"--root-ca-file=" + e.CAFile,
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--controllers=" + strings.Join(ctrls, ","),
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--concurrent-deployment-syncs=2",
		"--concurrent-replicaset-syncs=2",
		"--concurrent-service-endpoint-syncs=2",
		"--concurrent-serviceaccount-token-syncs=2",
		"--v=2",
	}
	return append(args, o.Args...)
}

// StartControllerManager runs the real kube-controller-manager
// (ControllerManagerArgs) in the test's own namespace until t's cleanup or
// Env.Stop, whichever comes first. When t has failed by then, the end of
// its log goes to t.Log. An Env runs at most one at a time (without leader
// election two would both act): a second call before the first stops
// fails t.
func (e *Env) StartControllerManager(t testing.TB, o ControllerManagerOptions) *ControllerManager {
	t.Helper()
	args := e.ControllerManagerArgs(o)
	if err := needBinary(args[0]); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.kcm != nil {
		t.Fatal("kubetest: kube-controller-manager is already running on this Env")
	}
	c := &ControllerManager{proc: nettest.StartHost(t, args...)}
	e.kcm = c
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-controller-manager log (end):\n%s", tail(c.Log(), 60))
		}
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
		e.mu.Lock()
		if e.kcm == c {
			e.kcm = nil
		}
		e.mu.Unlock()
	})
	return c
}

// stopControllerManager stops the running controller manager, if any.
func (e *Env) stopControllerManager() {
	e.mu.Lock()
	c := e.kcm
	e.kcm = nil
	e.mu.Unlock()
	if c != nil {
		_ = c.Stop() // Stop's caller reports the control plane's own errors
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}
