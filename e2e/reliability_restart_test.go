package e2e

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Restart bounds: the 1 s from ready to traffic, probes 10 ms
// apart, and a probe run long enough for both restarts.
const (
	restartRecoveryBound = time.Second
	restartProbeEvery    = 10 * time.Millisecond
	restartProbeLimit    = 3 * time.Minute
	restartPods          = 4
)

// TestReliabilityRestart restarts xvrd under traffic, first as systemctl
// restart does (SIGTERM, wait for the exit, start) and then by SIGKILL.
// Four CNI-attached pods with three interfaces each (cluster default,
// vn-left-1, vn-right-1) send UDP probes every 10 ms to the next pod on
// each of its networks, so every port sends and receives. For every pod it
// measures the time from the new xvrd answering /v1/status (ready) to the
// first answered probe sent after the old one went down, logs it, and
// fails above 1 s; networks and ports must be identical before and after.
func TestReliabilityRestart(t *testing.T) {
	rn := newRelNode(t)
	rn.apply(t, twoVNs)
	// The pods belong to a subtest, so that their DELs run before the
	// restarted xvrd (owned by t) is stopped.
	t.Run("under-traffic", func(t *testing.T) { testRestarts(t, rn) })
}

func testRestarts(t *testing.T, rn *relNode) {
	pods := make([]*cniPod, restartPods)
	for i := range pods {
		pods[i] = rn.addPod(t, "default", fmt.Sprintf("restart-%d", i), "vn-left-1,vn-right-1")
		startEcho(t, pods[i].ns.Name)
	}
	probers := make([][]*prober, len(pods)) // by source pod
	for i, p := range pods {
		next := pods[(i+1)%len(pods)]
		for _, ifn := range []string{"eth0", "eth1", "eth2"} {
			name := fmt.Sprintf("%s->%s/%s", p.name, next.name, ifn)
			probers[i] = append(probers[i], startProber(t, name, p.ns.Name, next.addr(t, ifn), restartProbeEvery, restartProbeLimit))
		}
	}
	for _, ps := range probers {
		for _, pr := range ps {
			pr.waitAnswered(t, 10*time.Second)
		}
	}
	for _, mode := range []struct {
		name string
		stop func() error
	}{
		{"sigterm", func() error {
			if err := rn.proc.Signal(unix.SIGTERM); err != nil {
				return err
			}
			return rn.proc.Wait(15 * time.Second)
		}},
		{"sigkill", func() error {
			if err := rn.proc.Kill(); err != nil {
				return err
			}
			_ = rn.proc.Wait(15 * time.Second) // "signal: killed" is the expected exit
			return nil
		}},
	} {
		// No subtests: the restarted xvrd must outlive each step (a
		// process started on a subtest's t is killed when it ends).
		func() {
			before := rn.state(t)
			down := time.Now()
			if err := mode.stop(); err != nil {
				t.Fatalf("stopping xvrd: %v\n%s", err, tail(rn.proc.Output(), 2000))
			}
			stopped := time.Now()
			ready := rn.restart(t)
			worst := checkRecovery(t, probers, pods, stopped, ready)
			t.Logf("%s: stop took %v, start to ready %v; worst pod back %v after ready",
				mode.name, stopped.Sub(down).Round(time.Millisecond), ready.Sub(stopped).Round(time.Millisecond),
				worst.Round(time.Millisecond))
			sameState(t, before, rn.state(t))
			mustPingNS(t, pods[0], pods[1].addr(t, "eth1"))
		}()
	}
}

// checkRecovery waits (10 s at most) until every prober has an answer to a
// probe sent after down (when the old xvrd had exited), logs each pod's recovery (its slowest prober:
// first such answer minus ready; negative when traffic was back before the
// API answered) and fails t above restartRecoveryBound. It returns the
// worst recovery.
func checkRecovery(t *testing.T, probers [][]*prober, pods []*cniPod, down, ready time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	worst := time.Duration(-1 << 62)
	for i, ps := range probers {
		pod := time.Duration(-1 << 62)
		for _, pr := range ps {
			r, ok := pr.firstReplyAfter(down)
			for !ok && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				r, ok = pr.firstReplyAfter(down)
			}
			if !ok {
				s, a := pr.counts()
				t.Fatalf("%s: no answer 10 s after the restart (%d probes sent, %d answered)", pr.name, s, a)
			}
			rec := r.recv.Sub(ready)
			t.Logf("  %s: outage %v, back %v after ready", pr.name, r.recv.Sub(down).Round(time.Millisecond), rec.Round(time.Millisecond))
			pod = max(pod, rec)
		}
		t.Logf("pod %s: connectivity back %v after xvrd was ready", pods[i].name, pod.Round(time.Millisecond))
		if pod > restartRecoveryBound {
			t.Errorf("pod %s: connectivity back %v after xvrd was ready, over %v", pods[i].name, pod, restartRecoveryBound)
		}
		worst = max(worst, pod)
	}
	return worst
}
