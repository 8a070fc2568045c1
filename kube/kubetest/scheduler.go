package kubetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/internal/nettest"
)

// Scheduler is a running kube-scheduler.
type Scheduler struct {
	proc *nettest.Proc
}

// Log returns what kube-scheduler wrote so far.
func (s *Scheduler) Log() string { return s.proc.Output() }

// Stop kills kube-scheduler and waits (bounded) until it is gone; t's
// cleanup calls it, and a second call does nothing.
func (s *Scheduler) Stop() error {
	if err := s.proc.Kill(); err != nil {
		return fmt.Errorf("kubetest: stopping kube-scheduler: %w", err)
	}
	if err := s.proc.Wait(10 * time.Second); err != nil && strings.Contains(err.Error(), "still running") {
		return fmt.Errorf("kubetest: stopping kube-scheduler: %w", err)
	}
	return nil
}

// SchedulerArgs returns the argv that runs kube-scheduler (built by make
// kube-bins) against e as its admin, with no leader election and no
// serving port, and args appended.
func (e *Env) SchedulerArgs(args ...string) []string {
	return append([]string{
		binPath("kube-scheduler"),
		"--kubeconfig=" + e.Kubeconfig,
		"--authentication-kubeconfig=" + e.Kubeconfig,
		"--authorization-kubeconfig=" + e.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--v=2",
	}, args...)
}

// StartScheduler runs the real kube-scheduler (SchedulerArgs) in the
// test's own namespace until t's cleanup: Pods without spec.nodeName
// (a Deployment's, a DaemonSet's) are bound to Nodes of StartKubelet.
// When t has failed by then, the end of its log goes to t.Log.
func (e *Env) StartScheduler(t testing.TB, args ...string) *Scheduler {
	t.Helper()
	argv := e.SchedulerArgs(args...)
	if err := needBinary(argv[0]); err != nil {
		t.Fatal(err)
	}
	s := &Scheduler{proc: nettest.StartHost(t, argv...)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-scheduler log (end):\n%s", tail(s.Log(), 60))
		}
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}
