// Command xvr-bench builds whole-path benchmark topologies in network
// namespaces (xvr on one node and across two nodes over MPLSoUDP, VXLAN and
// fabric forwarding, Linux routing, Linux bridge, kernel VXLAN; Open
// vSwitch's userspace datapath with AF_XDP ports when installed), drives the
// same live-frames generator through each, and writes a report (Markdown,
// JSON, SVG chart) of zero-loss throughput (RFC 2544), latency under load,
// CPU per packet, TCP throughput and the targets against peers. It needs
// root. See docs/bench.md.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/xvr-project/xvr/bench/rfc2544"
	"github.com/xvr-project/xvr/bench/topo"
)

// config is what the flags set.
type config struct {
	out        string
	quick      bool
	datapaths  []topo.Kind
	mixes      []rfc2544.Mix
	binDir     string
	trial      time.Duration
	resolution float64
	maxTrials  int
	lossTol    float64
	loadFrac   float64
	pings      int
	tcpTime    time.Duration // 0: no TCP
	genCPU     int
	fwdCPU     int
	budget     time.Duration
	command    string
	xvrdArgs   []string // extra xvrd flags
	scaling    bool     // measure xvr's scaling curves (when xvr is a datapath)
	// overlay64 runs the across-node xvr datapaths at 64 B only (quick
	// mode with the default sizes, to stay under 5 minutes).
	overlay64 bool
}

func main() {
	if err := run(os.Args, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "xvr-bench:", err)
		os.Exit(1)
	}
}

// run parses args (args[0] is the program) and runs the benchmark.
func run(args []string, log io.Writer) error {
	c, err := parseFlags(args, log)
	if err != nil {
		return err
	}
	return bench(c, log)
}

func parseFlags(args []string, log io.Writer) (config, error) {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(log)
	var c config
	var dps, sizes, xvrdFlags string
	var tcp bool
	fs.StringVar(&c.out, "o", "bench-out", "output directory for report.md, report.json, chart.svg")
	fs.BoolVar(&c.quick, "quick", false, "quick mode (< 5 min): sizes 64 and IMIX (across-node xvr: 64 only), short trials, 5 % resolution")
	fs.StringVar(&dps, "datapaths", "all", "comma-separated datapaths: "+kindList()+", or all")
	fs.StringVar(&sizes, "sizes", "", "comma-separated frame sizes (bytes or IMIX); default 64,512,1500,IMIX (quick: 64,IMIX)")
	fs.StringVar(&c.binDir, "bin", defaultBinDir(), "directory holding xvrd and xvrctl")
	fs.Float64Var(&c.lossTol, "loss-tolerance", 0, "fraction of frames a passing trial may lose (0: RFC 2544 zero loss)")
	fs.Float64Var(&c.loadFrac, "load", 0.5, "latency is measured under this fraction of the zero-loss rate")
	fs.BoolVar(&tcp, "tcp", true, "measure TCP throughput with iperf3")
	fs.BoolVar(&c.scaling, "scaling", true, "measure xvr's scaling curves (ports on one poller, flows) when xvr is among the datapaths")
	fs.IntVar(&c.genCPU, "gen-cpu", 0, "CPU of the generator (and of xvr-bench)")
	fs.IntVar(&c.fwdCPU, "fwd-cpu", 1, "CPU of the forwarder (xvrd's pollers via -poller-cpus; kernel datapaths via RPS; OVS via pmd-cpu-mask); -1: no pinning")
	fs.StringVar(&xvrdFlags, "xvrd-flags", "", "extra flags for every xvrd, space-separated (e.g. \"-fill 1024 -frames 16384\")")
	if err := fs.Parse(args[1:]); err != nil {
		return c, err
	}
	c.command = strings.Join(args, " ")
	c.xvrdArgs = strings.Fields(xvrdFlags)
	c.applyMode(tcp)
	var err error
	if c.datapaths, err = parseKinds(dps); err != nil {
		return c, err
	}
	c.mixes, err = parseSizes(sizes, c.quick)
	c.overlay64 = c.quick && sizes == ""
	return c, err
}

// mixesFor returns the mixes to measure on datapath k.
func (c config) mixesFor(k topo.Kind) []rfc2544.Mix {
	if !c.overlay64 || !k.AcrossNodes() {
		return c.mixes
	}
	var out []rfc2544.Mix
	for _, m := range c.mixes {
		if m.Name() == "64" {
			out = append(out, m)
		}
	}
	return out
}

// applyMode sets the trial parameters of quick or full mode.
func (c *config) applyMode(tcp bool) {
	if c.quick {
		c.trial, c.resolution, c.maxTrials, c.pings, c.tcpTime, c.budget = 500*time.Millisecond, 0.05, 8, 300, 2*time.Second, 270*time.Second
	} else {
		// About 90 s per datapath and the scaling curves: `make bench`
		// (build, this, then the go benchmarks) takes about 20 minutes on
		// 2 CPUs.
		c.trial, c.resolution, c.maxTrials, c.pings, c.tcpTime, c.budget = time.Second, 0.01, 12, 2000, 5*time.Second, 16*time.Minute
	}
	if !tcp {
		c.tcpTime = 0
	}
}

func kindList() string {
	s := make([]string, len(topo.Kinds))
	for i, k := range topo.Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}

func parseKinds(s string) ([]topo.Kind, error) {
	if s == "all" {
		return topo.Kinds, nil
	}
	var out []topo.Kind
	for _, f := range strings.Split(s, ",") {
		k := topo.Kind(strings.TrimSpace(f))
		if !strings.Contains(","+kindList()+",", ","+string(k)+",") {
			return nil, fmt.Errorf("unknown datapath %q (want %s)", k, kindList())
		}
		out = append(out, k)
	}
	return out, nil
}

func parseSizes(s string, quick bool) ([]rfc2544.Mix, error) {
	if s == "" {
		s = "64,512,1500,IMIX"
		if quick {
			s = "64,IMIX"
		}
	}
	var out []rfc2544.Mix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if strings.EqualFold(f, "imix") {
			out = append(out, rfc2544.IMIX)
			continue
		}
		var n int
		if _, err := fmt.Sscanf(f, "%d", &n); err != nil || n < 64 || n > 1514 {
			return nil, fmt.Errorf("frame size %q: want 64..1514 or IMIX", f)
		}
		out = append(out, rfc2544.Fixed(n))
	}
	return out, nil
}

// defaultBinDir is the directory of this executable if xvrd is beside it,
// else ./bin.
func defaultBinDir() string {
	if exe, err := os.Executable(); err == nil {
		dir := exe[:strings.LastIndexByte(exe, '/')+1]
		if _, err := os.Stat(dir + "xvrd"); err == nil {
			return dir
		}
	}
	return "bin"
}
