package topo

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/bench/gen"
	"github.com/xvr-project/xvr/vrouter/api"
)

// TestXVRScalingLoads builds xvr with idle pods and a policy on B, sends
// frames of many flows, and checks that all arrive, that the idle pods are
// ports of xvrd and that each flow is one entry of xvrd's flow table.
func TestXVRScalingLoads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, veth, XDP)")
	}
	if err := gen.LiveFramesErr(); err != nil {
		t.Skipf("this kernel refuses XDP live frames, which a source of many flows needs: %v", err)
	}
	bins := buildBins(t)
	tp, err := Build(XVR, Options{BinDir: bins, ForwarderCPU: -1, ExtraPods: 3, PolicyOnB: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tp.Close(); err != nil {
			t.Error(err)
		}
	}()
	cl := api.NewClient(tp.Forwarder.socket)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ports, err := cl.ListPorts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pods := 0
	for _, p := range ports {
		if strings.HasSuffix(p.ID, "/eth0") {
			pods++
		}
	}
	if pods != 5 {
		t.Fatalf("%d pod ports (%+v), want A, B and 3 idle", pods, ports)
	}
	const flows, frames = 500, 5000
	src, err := tp.NewSourceFlows([]int{64}, flows)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c0, err := tp.Sink.Count()
	if err != nil {
		t.Fatal(err)
	}
	if sent, _, err := src.Pace(0, 10e3, frames, 5*time.Second); err != nil || sent != frames {
		t.Fatalf("paced %d of %d frames: %v", sent, frames, err)
	}
	time.Sleep(200 * time.Millisecond)
	c1, err := tp.Sink.Count()
	// Unpinned, beside the rest of the test run, the poller may lose a few
	// to a busy CPU: that is the benchmark's to measure, not this test's.
	if err != nil || c1-c0 < frames*98/100 || c1-c0 > frames {
		t.Errorf("sink counted %d of %d paced frames: %v", c1-c0, frames, err)
	}
	if err := src.Send(0, frames); err != nil { // unpaced (an overload may drop some), the same flows
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if c2, err := tp.Sink.Count(); err != nil || c2 == c1 {
		t.Errorf("sink counted none of %d unpaced frames: %v", frames, err)
	}
	fl, err := cl.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sink := netip.AddrPortFrom(tp.B.IP.Addr(), SinkPort).String()
	srcs := map[string]bool{}
	for _, f := range fl {
		if f.Dst == sink {
			srcs[f.Src] = true
		}
	}
	if len(srcs) != flows {
		t.Errorf("flow table holds %d flows to the sink port, want %d (one per source port)", len(srcs), flows)
	}
}
