package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// TestReliabilityTooManyPorts runs xvrd with room for four sockets (one
// UMEM of 4096 frames, 512 fill frames per socket, at most half lent): two
// pods with two interfaces fill it. A third pod's ADD fails with CNI code 11
// (try again later) naming the cause, and leaves no port and no veth; the
// first two pods are untouched and still reach each other; once one is
// deleted, the third pod's retry succeeds and it reaches the other.
func TestReliabilityTooManyPorts(t *testing.T) {
	cn := newCNINode(t, "-umems", "1", "-frames", "4096", "-fill", "512", "-host-if", "") // the host port would take two sockets
	cn.apply(t, twoVNs)
	a := cn.addPod(t, "default", "full-a", "vn-left-1")
	b := cn.sandbox(t, "default", "full-b")
	cn.setPod(t, "default", "full-b", "vn-left-1")
	if err := cn.add(t, b); err != nil {
		t.Fatalf("ADD of the second pod (sockets 3 and 4): %v", err)
	}
	before := cn.state(t)

	cn.setPod(t, "default", "full-c", "vn-left-1")
	c := cn.sandbox(t, "default", "full-c")
	err := cn.add(t, c)
	if cniCode(err) != types.ErrTryAgainLater || !strings.Contains(err.Error(), "poller full") {
		t.Fatalf("ADD beyond the pollers' room: %v, want code 11 naming the full poller", err)
	}
	t.Logf("refused: %v", err)
	cn.assertNoTrace(t, c.rt.ContainerID)
	sameState(t, before, cn.state(t))
	mustPingNS(t, a, b.addr(t, "eth1"))
	mustPingNS(t, b, a.addr(t, "eth0"))

	cn.del(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cn.cfg.DelNetworkList(ctx, cn.list, c.rt); err != nil { // the runtime's DEL of the failed ADD
		t.Fatal(err)
	}
	if err := cn.add(t, c); err != nil {
		t.Fatalf("retried ADD once a pod was deleted: %v\n%s", err, tail(cn.proc.Output(), 2000))
	}
	mustPingNS(t, c, a.addr(t, "eth1"))
}
