package topo

import (
	"context"
	"fmt"
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
	if err := pace10k(src, frames); err != nil {
		t.Fatal(err)
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

// pace10k sends frames of src's first size at about 10k frames/s: spaced
// in the kernel with live frames, else in bursts of 100 every 10 ms.
func pace10k(src *Source, frames uint32) error {
	if src.Paces() {
		sent, _, err := src.Pace(0, 10e3, uint64(frames), 5*time.Second)
		if err == nil && sent != uint64(frames) {
			err = fmt.Errorf("paced %d of %d frames", sent, frames)
		}
		return err
	}
	for sent := uint32(0); sent < frames; sent += 100 {
		if err := src.SendPaced(0, min(100, frames-sent)); err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Beyond what source ports number, the AF_XDP generator takes further
// source addresses: xvrd's flow table holds flows from both.
func TestXVRManyFlows(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, veth, XDP)")
	}
	bins := buildBins(t)
	tp, err := Build(XVR, Options{BinDir: bins, ForwarderCPU: -1, PolicyOnB: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tp.Close(); err != nil {
			t.Error(err)
		}
	}()
	flows := uint32(gen.MaxPortFlows + 300)
	src, err := tp.NewSourceFlows([]int{64}, flows)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Paces() {
		t.Fatal("a source of more flows than source ports paces with live frames, which cannot number them")
	}
	// Paced (bursts of 1000 every 5 ms, 200k frames/s): every flow's first
	// frame must reach xvrd for this to count flows.
	for sent := uint32(0); sent < flows; sent += 1000 {
		if err := src.SendPaced(0, min(1000, flows-sent)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fl, err := api.NewClient(tp.Forwarder.socket).Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sink := netip.AddrPortFrom(tp.B.IP.Addr(), SinkPort).String()
	srcs, addrs := map[string]bool{}, map[string]bool{}
	for _, f := range fl {
		if f.Dst == sink {
			srcs[f.Src] = true
			addrs[netip.MustParseAddrPort(f.Src).Addr().String()] = true
		}
	}
	// The API lists at most 100000 entries (50000 flows, both directions).
	if want := min(int(flows), 50000); len(srcs) < want*99/100 || len(srcs) > int(flows) || len(addrs) != 2 {
		t.Errorf("flow table lists %d flows to the sink from %d addresses, want %d from 2", len(srcs), len(addrs), want)
	}
}
