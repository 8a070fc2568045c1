package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xvr-project/xvr/bench/report"
	"github.com/xvr-project/xvr/bench/rfc2544"
	"github.com/xvr-project/xvr/bench/topo"
)

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"xvr-bench", "--quick", "--datapaths", "linux-routing,xvr", "--sizes", "64,imix"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.datapaths) != 2 || c.datapaths[1] != topo.XVR || len(c.mixes) != 2 || c.mixes[1].Name() != "IMIX" {
		t.Fatalf("parsed %+v", c)
	}
	for _, bad := range [][]string{{"x", "--datapaths", "vpp"}, {"x", "--sizes", "32"}, {"x", "--sizes", "jumbo"}} {
		if _, err := parseFlags(bad, os.Stderr); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	full, _ := parseFlags([]string{"x"}, os.Stderr)
	if len(full.mixes) != 4 || full.maxTrials <= c.maxTrials || full.datapaths[0] != topo.XVR || len(full.xvrdArgs) != 0 {
		t.Fatalf("full mode %+v", full)
	}
	x, err := parseFlags([]string{"x", "--xvrd-flags", " -fill 1024  -frames 16384 "}, os.Stderr)
	if err != nil || strings.Join(x.xvrdArgs, ",") != "-fill,1024,-frames,16384" {
		t.Fatalf("xvrd flags %q: %v", x.xvrdArgs, err)
	}
}

func TestSummarize(t *testing.T) {
	out := "64 bytes from 198.18.50.2: icmp_seq=1 ttl=63 time=0.045 ms\n64 bytes from 198.18.50.2: icmp_seq=2 ttl=63 time=1.20 ms\n"
	rtts := parseRTTs(out)
	if len(rtts) != 2 || rtts[0] != 45 || rtts[1] != 1200 {
		t.Fatalf("rtts %v", rtts)
	}
	var many []float64
	for i := 1; i <= 1000; i++ {
		many = append(many, float64(i))
	}
	l := summarize(many, 1010)
	if l.P50 != 500 || l.P99 != 990 || l.P999 != 999 || l.MaxMicros != 1000 || l.Lost != 10 {
		t.Fatalf("summary %+v", l)
	}
	if l := summarize(nil, 5); l.Lost != 5 || l.P99 != 0 {
		t.Fatalf("empty summary %+v", l)
	}
}

func TestNewRow(t *testing.T) {
	res := rfc2544.Result{Rate: 1e5, Best: rfc2544.Outcome{Received: 1000}, Trials: []rfc2544.Record{{Rate: 5e5}}}
	row := newRow(rfc2544.IMIX, res, cpuUse{fwd: 2000000}, 100)
	if row.Size != "IMIX" || row.Burst != 100 || row.FwdNsPerPkt != 2000 || row.GeneratorPPS != 5e5 || row.Gbps < 0.283 || row.Gbps > 0.284 {
		t.Fatalf("row %+v", row)
	}
}

// TestQuickLinuxRouting runs xvr-bench in-process, quick mode, on Linux
// routing with 64-byte frames, and checks the report and that the
// namespaces it made are gone.
func TestQuickLinuxRouting(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, veth, XDP)")
	}
	if testing.Short() {
		t.Skip("root benchmark run; skipped in -short")
	}
	before := netnsList(t)
	dir := t.TempDir()
	args := []string{"xvr-bench", "--quick", "--datapaths", "linux-routing", "--sizes", "64", "-o", dir}
	if err := run(args, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{report.MarkdownFile, report.JSONFile, report.SVGFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, report.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Datapaths) != 1 || r.Datapaths[0].Error != "" || len(r.Datapaths[0].Rows) != 1 {
		t.Fatalf("report %+v", r.Datapaths)
	}
	row := r.Datapaths[0].Rows[0]
	if row.ZeroLossPPS <= 0 || row.Latency == nil || row.Latency.P50 <= 0 || r.Datapaths[0].TCP == nil || r.Datapaths[0].TCP.Gbps <= 0 {
		t.Fatalf("zero results: %+v tcp %+v", row, r.Datapaths[0].TCP)
	}
	if after := netnsList(t); after != before {
		t.Fatalf("namespaces left behind:\nbefore %q\nafter  %q", before, after)
	}
}

func netnsList(t *testing.T) string {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var mine []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "xb") && strings.Contains(l, strconv.FormatInt(int64(os.Getpid()), 36)) {
			mine = append(mine, l)
		}
	}
	return strings.Join(mine, ",")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestOverlayQuickSizes: quick mode with the default sizes runs the
// across-node xvr datapaths at 64 B only; explicit sizes and full mode run
// every size on them.
func TestOverlayQuickSizes(t *testing.T) {
	q, err := parseFlags([]string{"x", "--quick"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.mixesFor(topo.XVRVXLAN); len(got) != 1 || got[0].Name() != "64" {
		t.Errorf("quick xvr-vxlan mixes %v, want 64 only", got)
	}
	if got := q.mixesFor(topo.KernelVXLAN); len(got) != 2 {
		t.Errorf("quick kernel-vxlan mixes %v, want 64 and IMIX", got)
	}
	qs, _ := parseFlags([]string{"x", "--quick", "--sizes", "64,IMIX"}, os.Stderr)
	full, _ := parseFlags([]string{"x"}, os.Stderr)
	if len(qs.mixesFor(topo.XVRFabric)) != 2 || len(full.mixesFor(topo.XVRMPLSoUDP)) != 4 {
		t.Errorf("explicit sizes %v, full mode %v", qs.mixesFor(topo.XVRFabric), full.mixesFor(topo.XVRMPLSoUDP))
	}
	for _, k := range []topo.Kind{topo.XVRMPLSoUDP, topo.XVRVXLAN, topo.XVRFabric} {
		if !strings.Contains(","+kindList()+",", ","+string(k)+",") || !k.AcrossNodes() {
			t.Errorf("%s not listed or not across nodes", k)
		}
	}
}
