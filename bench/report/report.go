package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Report is one run of xvr-bench.
type Report struct {
	Machine string    `json:"machine"` // CPU model and count, kernel
	Date    time.Time `json:"date"`
	Command string    `json:"command"`
	Quick   bool      `json:"quick"`
	// Pinning says which CPUs the generator and forwarder ran on.
	Pinning string `json:"pinning"`
	// Method lists how each figure was measured, one sentence each.
	Method    []string   `json:"method"`
	Baseline  string     `json:"baseline"` // the datapath ratios are against
	Datapaths []Datapath `json:"datapaths"`
	// Targets are the benchmark's goals as measured in this run
	// (Standings of Goals; the Markdown computes them afresh).
	Targets []Standing `json:"targets,omitempty"`
	// Checks are the TCP and RTT goals as measured in this run.
	Checks []Check `json:"checks,omitempty"`
	// Scaling are xvr's curves against the size of its load (ports,
	// routes, flows), each measured at 64 B frames.
	Scaling []Curve `json:"scaling,omitempty"`
}

// Datapath is one datapath's results, or why it has none.
type Datapath struct {
	Name    string `json:"name"`
	Notes   string `json:"notes,omitempty"`
	Skipped string `json:"skipped,omitempty"` // not run here, and why
	Error   string `json:"error,omitempty"`   // failed; rows may be partial
	Rows    []Row  `json:"rows,omitempty"`
	TCP     *TCP   `json:"tcp,omitempty"`
}

// TCP is one iperf3 run through the datapath.
type TCP struct {
	Gbps        float64 `json:"gbps"`
	Retransmits int     `json:"retransmits"`
	Seconds     float64 `json:"seconds"`
}

// Row is one datapath and frame size.
type Row struct {
	Size     string  `json:"size"`      // "64", "IMIX"
	AvgFrame float64 `json:"avg_frame"` // bytes
	// ZeroLossPPS is the RFC 2544 zero-loss rate, frames/s.
	ZeroLossPPS float64 `json:"zero_loss_pps"`
	Gbps        float64 `json:"gbps"` // ZeroLossPPS x AvgFrame x 8
	// GeneratorBound: the generator's full rate passed; a lower bound.
	GeneratorBound bool    `json:"generator_bound"`
	GeneratorPPS   float64 `json:"generator_pps"` // the unpaced rate offered
	// OverloadPPS is what the sink received during the unpaced trial.
	OverloadPPS float64 `json:"overload_pps"`
	Trials      int     `json:"trials"`
	// Burst is the pacer's burst size at the zero-loss rate (frames sent
	// back to back once per slice); 0 when no trial passed.
	Burst uint64 `json:"burst"`
	// Latency is round-trip time of ICMP echo under load, microseconds.
	Latency *Latency `json:"latency,omitempty"`
	// CPU per delivered frame at the zero-loss rate, nanoseconds.
	CPUNsPerPkt     float64 `json:"cpu_ns_per_pkt"`     // whole machine busy, generator included
	SoftIRQNsPerPkt float64 `json:"softirq_ns_per_pkt"` // of which softirq
	FwdNsPerPkt     float64 `json:"fwd_ns_per_pkt"`     // forwarder process; 0 if none
	// VsBaseline is ZeroLossPPS over the baseline's at the same size.
	VsBaseline float64 `json:"vs_baseline"`
}

// Latency is a percentile summary of RTT samples.
type Latency struct {
	LoadPPS   float64 `json:"load_pps"`
	Probes    int     `json:"probes"`
	Lost      int     `json:"lost"`
	P50       float64 `json:"p50_us"`
	P99       float64 `json:"p99_us"`
	P999      float64 `json:"p999_us"`
	MaxMicros float64 `json:"max_us"`
}

// FillRatios sets VsBaseline of every row from the baseline datapath's row
// of the same size (0 where there is none).
func (r *Report) FillRatios(baseline string) {
	r.Baseline = baseline
	base := map[string]float64{}
	for _, d := range r.Datapaths {
		if d.Name == baseline {
			for _, row := range d.Rows {
				base[row.Size] = row.ZeroLossPPS
			}
		}
	}
	for i := range r.Datapaths {
		for j := range r.Datapaths[i].Rows {
			row := &r.Datapaths[i].Rows[j]
			row.VsBaseline = 0
			if b := base[row.Size]; b > 0 {
				row.VsBaseline = row.ZeroLossPPS / b
			}
		}
	}
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return nil
}

// Files are the names WriteDir writes.
const (
	MarkdownFile = "report.md"
	JSONFile     = "report.json"
	SVGFile      = "chart.svg"
	// ScalingSVGFile is written only when the report has scaling curves.
	ScalingSVGFile = "scaling.svg"
)

// WriteDir writes report.md, report.json and chart.svg into dir (created),
// and scaling.svg when r has scaling curves.
func (r *Report) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	writers := map[string]func(io.Writer) error{
		MarkdownFile: r.WriteMarkdown, JSONFile: r.WriteJSON, SVGFile: r.WriteSVG,
	}
	if len(r.Scaling) > 0 {
		writers[ScalingSVGFile] = r.WriteScalingSVG
	}
	var errs []error
	for name, write := range writers {
		errs = append(errs, writeFile(filepath.Join(dir, name), write))
	}
	return errors.Join(errs...)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create report file: %w", err)
	}
	werr := write(f)
	if cerr := f.Close(); cerr != nil && werr == nil {
		werr = fmt.Errorf("close %s: %w", path, cerr)
	}
	return werr
}
