package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sample() *Report {
	r := &Report{Machine: "test CPU x2, kernel 6.18", Date: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		Command: "xvr-bench --quick", Quick: true, Pinning: "generator CPU 0, forwarder CPU 1",
		Method: []string{"binary search <zero loss>"}}
	r.Datapaths = []Datapath{
		{Name: "xvr", Rows: []Row{
			{Size: "64", ZeroLossPPS: 400e3, Gbps: 0.2048, Trials: 7, Burst: 40, FwdNsPerPkt: 1800,
				Latency: &Latency{LoadPPS: 200e3, Probes: 100, P50: 40, P99: 90, P999: 120}},
			{Size: "IMIX", ZeroLossPPS: 300e3}}, TCP: &TCP{Gbps: 1.9}},
		{Name: "linux-routing", Rows: []Row{{Size: "64", ZeroLossPPS: 500e3}, {Size: "IMIX", ZeroLossPPS: 250e3, GeneratorBound: true}}},
		{Name: "kernel-vxlan", Error: "boom | bang"},
		{Name: "ovs-afxdp", Skipped: "openvswitch-switch not installed"},
	}
	r.FillRatios("linux-routing")
	return r
}

func TestRatios(t *testing.T) {
	r := sample()
	if got := r.Datapaths[0].Rows[0].VsBaseline; got != 0.8 {
		t.Fatalf("xvr 64 vs linux = %v, want 0.8", got)
	}
	if got := r.Datapaths[0].Rows[1].VsBaseline; got != 1.2 {
		t.Fatalf("xvr IMIX vs linux = %v, want 1.2", got)
	}
	if got := r.Datapaths[1].Rows[0].VsBaseline; got != 1 {
		t.Fatalf("baseline vs itself = %v", got)
	}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## xvr-bench quick run, 2026-11-27 10:00 UTC",
		"- machine: test CPU x2, kernel 6.18", "`xvr-bench --quick`", "generator CPU 0, forwarder CPU 1",
		"| datapath | frame | zero-loss Mpps | Gbit/s | vs linux-routing |",
		"| xvr | 64 | 0.400 | 0.205 | 0.80× | 0.000 | 40 / 90 / 120 (0.20 Mpps) | 0 / 0 / 1800 | 7 (40) |",
		"| linux-routing | IMIX | ≥ 0.250 (generator-bound) |",
		"| kernel-vxlan | — | failed: boom \\| bang |",
		"| xvr | 1.90 | 0 |",
		"- ovs-afxdp skipped: openvswitch-switch not installed",
		"- binary search <zero loss>",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	var b bytes.Buffer
	r := sample()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Datapaths) != 4 || back.Datapaths[0].Rows[0].Latency.P99 != 90 || back.Baseline != "linux-routing" {
		t.Fatalf("round trip lost data: %+v", back)
	}
	for _, key := range []string{`"zero_loss_pps": 400000`, `"p999_us": 120`, `"skipped": "openvswitch-switch not installed"`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("json lacks %s", key)
		}
	}
}

// wellFormed parses the SVG fully and counts elements by name.
func wellFormed(t *testing.T, svg []byte) map[string]int {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	count := map[string]int{}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return count
		}
		if err != nil {
			t.Fatalf("svg not well-formed: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			count[se.Name.Local]++
		}
	}
}

func TestSVG(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	n := wellFormed(t, b.Bytes())
	// background + 2 sizes x 2 datapaths with rows + 2 legend swatches
	if n["svg"] != 1 || n["rect"] != 1+4+2 || n["title"] != 4 {
		t.Fatalf("svg elements %v", n)
	}
	b.Reset()
	if err := (&Report{}).WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "no results") {
		t.Fatal("empty chart has no 'no results' text")
	}
	wellFormed(t, b.Bytes())
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := sample().WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{MarkdownFile, JSONFile, SVGFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestStandings(t *testing.T) {
	r := sample()
	r.Datapaths[0].Rows[0].OverloadPPS = 900e3
	r.Datapaths[1].Rows[0].OverloadPPS = 300e3
	r.Datapaths = append(r.Datapaths, Datapath{Name: "ovs-afxdp", Rows: []Row{{Size: "64", ZeroLossPPS: 100e3, OverloadPPS: 450e3}}})
	st := r.Standings(Goals)
	want := []Standing{
		{Goal{"xvr", "ovs-afxdp", "64", 2, 1.5}, "64", 4, 2, Exact},
		{Goal{"xvr", "linux-routing", "64", 3, 0}, "64", 0.8, 3, Exact},
	}
	if len(st) != len(want) {
		t.Fatalf("standings %+v, want %+v", st, want)
	}
	for i := range want {
		if st[i] != want[i] {
			t.Errorf("standing %d = %+v, want %+v", i, st[i], want[i])
		}
	}
	if !st[0].Met() || st[1].Met() {
		t.Errorf("met: %v %v, want true false", st[0].Met(), st[1].Met())
	}
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"| xvr vs ovs-afxdp: zero-loss ≥ 2×, overload ≥ 1.5× | 64 | 4.00× | 2.00× | yes |",
		"| xvr vs linux-routing: zero-loss ≥ 3× | 64 | 0.80× | 3.00× | no |",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("markdown lacks %q:\n%s", line, b.String())
		}
	}
	if strings.Contains(b.String(), "| IMIX | 1.20×") {
		t.Errorf("the goals table has an IMIX row (the goals are of 64-byte frames):\n%s", b.String())
	}
}

// A generator-bound rate makes its ratio a bound, and the goal is met or
// missed only where the bound decides it.
func TestStandingsBounds(t *testing.T) {
	goal := Goal{"xvr", "peer", "64", 2, 0}
	cases := []struct {
		xvrBound, peerBound bool
		xvr                 float64
		bound               Bound
		cell, verdict       string
	}{
		{false, false, 150e3, Exact, "| 1.50× |", "no"},
		{false, false, 300e3, Exact, "| 3.00× |", "yes"},
		{true, false, 150e3, AtLeast, "| ≥ 1.50× |", "not known: generator-bound"},
		{true, false, 300e3, AtLeast, "| ≥ 3.00× |", "yes"},
		{false, true, 150e3, AtMost, "| ≤ 1.50× |", "no"},
		{false, true, 300e3, AtMost, "| ≤ 3.00× |", "not known: generator-bound"},
		{true, true, 300e3, Unknown, "| ? (3.00×, both generator-bound) |", "not known: generator-bound"},
	}
	for _, c := range cases {
		r := &Report{Datapaths: []Datapath{
			{Name: "xvr", Rows: []Row{{Size: "64", ZeroLossPPS: c.xvr, GeneratorBound: c.xvrBound}}},
			{Name: "peer", Rows: []Row{{Size: "64", ZeroLossPPS: 100e3, GeneratorBound: c.peerBound}}},
		}}
		st := r.Standings([]Goal{goal})
		if len(st) != 1 || st[0].Bound != c.bound {
			t.Fatalf("%+v: standings %+v, want bound %d", c, st, c.bound)
		}
		if got := st[0].verdict(); got != c.verdict || (got == "yes") != st[0].Met() {
			t.Errorf("%+v: verdict %q (met %v), want %q", c, got, st[0].Met(), c.verdict)
		}
		if got := "| " + ratioOf(st[0].ZeroLoss, st[0].Bound) + " |"; got != c.cell {
			t.Errorf("%+v: cell %q, want %q", c, got, c.cell)
		}
	}
}

// The TCP and RTT targets: met only when every figure they name is.
func TestOtherTargets(t *testing.T) {
	lat := func(p50, p99 float64) []Row {
		return []Row{{Size: "64", Latency: &Latency{Probes: 300, P50: p50, P99: p99}}}
	}
	r := &Report{Datapaths: []Datapath{
		{Name: "xvr", Rows: lat(30, 100), TCP: &TCP{Gbps: 4}},
		{Name: "linux-routing", Rows: lat(20, 40), TCP: &TCP{Gbps: 3}},
		{Name: "kernel-vxlan", TCP: &TCP{Gbps: 2, Retransmits: 5}},
		{Name: "xvr-mplsoudp", TCP: &TCP{Gbps: 3, Retransmits: 10}},
		{Name: "xvr-vxlan", TCP: &TCP{Gbps: 3, Retransmits: 11}},
		{Name: "xvr-fabric", TCP: &TCP{Gbps: 1.9}},
	}}
	want := map[string]bool{
		"xvr vs linux-routing: TCP one stream ≥ 1×":                           true,
		"xvr-mplsoudp vs kernel-vxlan: TCP one stream ≥ 1×, retransmits ≤ 2×": true,
		"xvr-vxlan vs kernel-vxlan: TCP one stream ≥ 1×, retransmits ≤ 2×":    false, // 11 > 2 × 5
		"xvr-fabric vs kernel-vxlan: TCP one stream ≥ 1×, retransmits ≤ 2×":   false, // slower
		"xvr vs linux-routing: RTT p50 and p99 under load ≤ 2× (64 B)":        false, // p99 100 > 80
	}
	got := r.OtherTargets()
	if len(got) != len(want) {
		t.Fatalf("targets %+v, want %d", got, len(want))
	}
	for _, c := range got {
		if w, ok := want[c.Target]; !ok || c.Met != w {
			t.Errorf("%q (%s): met %v, want %v (known %v)", c.Target, c.Measured, c.Met, w, ok)
		}
	}
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if line := "| xvr vs linux-routing: RTT p50 and p99 under load ≤ 2× (64 B) | 30 / 100 vs 20 / 40 µs | no |"; !strings.Contains(b.String(), line) {
		t.Errorf("markdown lacks %q:\n%s", line, b.String())
	}
	r.Datapaths[1].Rows = nil // no RTT for the peer: no RTT target
	if n := len(r.OtherTargets()); n != 4 {
		t.Errorf("without the peer's RTT: %d targets, want 4", n)
	}
}
