package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/xvr-project/xvr/bench/report"
	"github.com/xvr-project/xvr/bench/rfc2544"
	"github.com/xvr-project/xvr/bench/topo"
)

// The scaling curves' points: ports on xvr's one poller (A, B and idle
// pods), and flows in its flow table (policy on B).
var (
	scalePorts = []int{2, 16, 64}
	scaleFlows = []int{1000, 100_000, 1_000_000}
)

// scaleMix is the frame size of every scaling point.
var scaleMix = rfc2544.Fixed(64)

// scaling measures xvr's zero-loss and overload rates at 64 B as its load
// grows, one topology per point, stopping at the deadline.
func scaling(c config, deadline time.Time, p progress) []report.Curve {
	ports := report.Curve{Name: "ports on one poller", Param: "ports",
		Note: "A to B while the other ports (idle pods of the same VN) sit on the same poller"}
	for _, n := range scalePorts {
		ports.Points = append(ports.Points, scalePoint(c, deadline, p, float64(n),
			topo.Options{ExtraPods: n - 2}, 0))
	}
	flows := report.Curve{Name: "flows (policy on B)", Param: "flows",
		Note: "B under an allow-all ingress policy, every frame looked up in the flow table; the generator cycles " +
			"its UDP source port through the flows, beyond 64512 flows (and where the kernel refuses live frames) " +
			"through the AF_XDP generator, which numbers them by source port and 16 source addresses of A's subnet " +
			"(each trial sends fewer frames than 1M, so at 1M the first trials also set flows up); xvrd -flows 2× the flows"}
	for _, n := range scaleFlows {
		o := topo.Options{PolicyOnB: true, XvrdArgs: []string{"-flows", strconv.Itoa(2 * n)}}
		flows.Points = append(flows.Points, scalePoint(c, deadline, p, float64(n), o, uint32(n)))
	}
	return []report.Curve{ports, flows,
		{Name: "routes in the VN", Param: "routes", Note: "not measured on the whole path: routes go into xvrd " +
			"one API call (and database write) each; the lookup's cost at 1M routes is BenchmarkLookup1M in vrouter/route"},
		{Name: "pollers on multi-queue veths", Param: "pollers", Note: "not measured: the generator sends from one " +
			"CPU, so a veth steers every frame to one queue, and this machine has no third CPU for a second poller"},
	}
}

// scalePoint builds xvr with o (and the run's pinning and flags), sends
// 64 B frames of flows flows (0: one) and searches the zero-loss rate.
func scalePoint(c config, deadline time.Time, p progress, x float64, o topo.Options, flows uint32) report.Point {
	pt := report.Point{X: x}
	if time.Now().After(deadline) {
		pt.Error = "time budget used up"
		return pt
	}
	o = c.options(o)
	label := fmt.Sprintf("scaling: %d ports, %d flows", o.ExtraPods+2, flows)
	p.printf("%s: building topology", label)
	t, err := topo.Build(topo.XVR, o)
	if err != nil {
		pt.Error = err.Error()
		p.printf("%s failed: %v", label, err)
		return pt
	}
	defer func() {
		if err := t.Close(); err != nil {
			p.printf("%s tear-down: %v", label, err)
		}
	}()
	src, err := t.NewSourceFlows(scaleMix.Sizes(), flows)
	if err != nil {
		pt.Error = err.Error()
		return pt
	}
	defer src.Close()
	r, res, err := searchFrom(c, t, src, scaleMix, p)
	if err != nil {
		pt.Error = err.Error()
		return pt
	}
	pt.ZeroLossPPS, pt.GeneratorBound, pt.OverloadPPS = res.Rate, res.AtMax, r.overload
	p.printf("%s: zero-loss %.3f Mpps, overload %.3f Mpps", label, res.Rate/1e6, r.overload/1e6)
	return pt
}
