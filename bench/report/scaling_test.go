package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// scalingSample is sample() with two curves: one with three points (one
// generator-bound, one failed), one with only a note.
func scalingSample() *Report {
	r := sample()
	r.Scaling = []Curve{
		{Name: "ports on one poller", Param: "ports", Points: []Point{
			{X: 1, ZeroLossPPS: 1.2e6, OverloadPPS: 1.5e6},
			{X: 4, ZeroLossPPS: 900e3, GeneratorBound: true, OverloadPPS: 950e3},
			{X: 16, Error: "xvrd exited | code 1"},
		}},
		{Name: "flows (policy on)", Param: "flows", Note: "needs a <policy> build"},
	}
	return r
}

func TestScalingMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := scalingSample().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"Scaling (xvr, 64 B):\n\n| curve | x | zero-loss Mpps | delivered at overload Mpps |\n|---|---|---|---|\n",
		"| ports on one poller | 1 | 1.200 | 1.500 |\n",
		"| ports on one poller | 4 | ≥ 0.900 (generator-bound) | 0.950 |\n",
		"| ports on one poller | 16 | failed: xvrd exited \\| code 1 | — |\n",
		"| flows (policy on) | needs a <policy> build | — | — |\n",
		"\n- flows (policy on): needs a <policy> build\n",
		"Chart: scaling.svg\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "- ports on one poller:") {
		t.Error("markdown has a note line for a curve without a note")
	}
	if i, j := strings.Index(md, "| target |"), strings.Index(md, "Scaling ("); i < 0 || j < i {
		t.Errorf("scaling section (at %d) not after the targets table (at %d)", j, i)
	}
}

func TestScalingMarkdownAbsent(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Scaling") || strings.Contains(b.String(), ScalingSVGFile) {
		t.Errorf("markdown without curves mentions scaling:\n%s", b.String())
	}
}

func TestScalingSVG(t *testing.T) {
	var b bytes.Buffer
	if err := scalingSample().WriteScalingSVG(&b); err != nil {
		t.Fatal(err)
	}
	n := wellFormed(t, b.Bytes())
	// two plotted series of the first curve; a circle per plotted point and
	// series, plus the legend's
	if n["svg"] != 1 || n["polyline"] != 2 || n["circle"] != 2*2+1 || n["title"] != 2*2 {
		t.Fatalf("svg elements %v", n)
	}
	svg := b.String()
	for _, want := range []string{
		`stroke-dasharray="6 4"`, ">ports on one poller<", ">flows (policy on)<",
		">needs a &lt;policy&gt; build<", ">ports (log scale)<", "≥ 0.900 Mpps",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, ">16<") {
		t.Error("svg has a tick for the failed point")
	}
}

func TestScalingSVGEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := (&Report{}).WriteScalingSVG(&b); err != nil {
		t.Fatal(err)
	}
	if n := wellFormed(t, b.Bytes()); n["polyline"] != 0 || !strings.Contains(b.String(), "no scaling curves") {
		t.Fatalf("empty scaling chart: %v\n%s", n, b.String())
	}
}

func TestSILabel(t *testing.T) {
	for x, want := range map[float64]string{1: "1", 16: "16", 1000: "1k", 64000: "64k", 1e6: "1M", 1500: "1500", 0.5: "0.5", 1234567: "1234567"} {
		if got := siLabel(x); got != want {
			t.Errorf("siLabel(%g) = %q, want %q", x, got, want)
		}
	}
}

func TestWrapWords(t *testing.T) {
	got := wrapWords("aaa bbb ccc  dddddddddd e", 7)
	want := []string{"aaa bbb", "ccc", "dddddddddd", "e"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("wrapWords = %q, want %q", got, want)
	}
}

func TestScalingJSONRoundTrip(t *testing.T) {
	r := scalingSample()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Scaling, r.Scaling) {
		t.Fatalf("curves after round trip %+v, want %+v", back.Scaling, r.Scaling)
	}
	data, err = json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), `"scaling"`) {
		t.Error("json of a report without curves has a scaling key")
	}
}

func TestWriteDirScaling(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *Report
		want bool
	}{{"curves", scalingSample(), true}, {"none", sample(), false}} {
		dir := filepath.Join(t.TempDir(), "out")
		if err := tc.r.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(filepath.Join(dir, ScalingSVGFile))
		if got := err == nil && st.Size() > 0; got != tc.want {
			t.Errorf("%s: %s written = %v (%v), want %v", tc.name, ScalingSVGFile, got, err, tc.want)
		}
	}
}
