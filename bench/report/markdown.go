package report

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteMarkdown writes r as a Markdown section: header facts, the
// throughput/latency/CPU table, the targets against peers, the scaling
// curves, TCP, skipped datapaths and the method.
func (r *Report) WriteMarkdown(w io.Writer) error {
	b := bufio.NewWriter(w)
	r.mdHeader(b)
	r.mdTable(b)
	r.mdStandings(b)
	r.mdScaling(b)
	r.mdTCP(b)
	r.mdChecks(b)
	r.mdSkipped(b)
	r.mdMethod(b)
	if err := b.Flush(); err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

func (r *Report) mdHeader(b *bufio.Writer) {
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	fmt.Fprintf(b, "## xvr-bench %s run, %s\n\n", mode, r.Date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(b, "- machine: %s\n- command: `%s`\n- pinning: %s\n\n", r.Machine, r.Command, r.Pinning)
}

func (r *Report) mdTable(b *bufio.Writer) {
	fmt.Fprintf(b, "| datapath | frame | zero-loss Mpps | Gbit/s | vs %s | delivered at overload Mpps | RTT p50 / p99 / p99.9 µs (load) | CPU ns/pkt machine / softirq / forwarder | trials (burst) |\n", r.Baseline)
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, d := range r.Datapaths {
		for _, row := range d.Rows {
			fmt.Fprintf(b, "| %s | %s | %s | %.3f | %s | %.3f | %s | %s | %d (%d) |\n", d.Name, row.Size, mpps(row),
				row.Gbps, ratio(row.VsBaseline), row.OverloadPPS/1e6, latency(row.Latency), cpu(row), row.Trials, row.Burst)
		}
		if d.Error != "" {
			fmt.Fprintf(b, "| %s | — | failed: %s | | | | | | |\n", d.Name, oneLine(d.Error))
		}
	}
	b.WriteString("\n")
}

func mpps(row Row) string { return zeroLoss(row.ZeroLossPPS, row.GeneratorBound) }

// zeroLoss formats a zero-loss rate in Mpps, marked as a lower bound when
// the generator's full rate passed.
func zeroLoss(pps float64, generatorBound bool) string {
	s := fmt.Sprintf("%.3f", pps/1e6)
	if generatorBound {
		s = "≥ " + s + " (generator-bound)"
	}
	return s
}

func ratio(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v)
}

func latency(l *Latency) string {
	if l == nil || l.Probes == 0 {
		return "—"
	}
	s := fmt.Sprintf("%.0f / %.0f / %.0f (%.2f Mpps)", l.P50, l.P99, l.P999, l.LoadPPS/1e6)
	if l.Lost > 0 {
		s += fmt.Sprintf(", %d/%d lost", l.Lost, l.Probes)
	}
	return s
}

func cpu(row Row) string {
	fwd := "—"
	if row.FwdNsPerPkt > 0 {
		fwd = fmt.Sprintf("%.0f", row.FwdNsPerPkt)
	}
	return fmt.Sprintf("%.0f / %.0f / %s", row.CPUNsPerPkt, row.SoftIRQNsPerPkt, fwd)
}

// mdScaling writes the scaling curves as one table, a point a row (a curve
// with no points has a row with its note), then each curve's note and the
// chart's file name.
func (r *Report) mdScaling(b *bufio.Writer) {
	if len(r.Scaling) == 0 {
		return
	}
	b.WriteString("Scaling (xvr, 64 B):\n\n")
	b.WriteString("| curve | x | zero-loss Mpps | delivered at overload Mpps |\n|---|---|---|---|\n")
	for _, c := range r.Scaling {
		if len(c.Points) == 0 {
			fmt.Fprintf(b, "| %s | %s | — | — |\n", c.Name, oneLine(c.Note))
		}
		for _, p := range c.Points {
			fmt.Fprintf(b, "| %s | %s | %s |\n", c.Name, plain(p.X), pointRates(p))
		}
	}
	b.WriteString("\n")
	for _, c := range r.Scaling {
		if c.Note != "" {
			fmt.Fprintf(b, "- %s: %s\n", c.Name, c.Note)
		}
	}
	fmt.Fprintf(b, "\nChart: %s\n\n", ScalingSVGFile)
}

// plain formats x without an exponent: 1000000, 0.5.
func plain(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

// pointRates is a scaling row's two rate cells, or its error.
func pointRates(p Point) string {
	if p.Error != "" {
		return "failed: " + oneLine(p.Error) + " | —"
	}
	return fmt.Sprintf("%s | %.3f", zeroLoss(p.ZeroLossPPS, p.GeneratorBound), p.OverloadPPS/1e6)
}

func (r *Report) mdTCP(b *bufio.Writer) {
	b.WriteString("| datapath | TCP Gbit/s (iperf3, 1 stream) | retransmits |\n|---|---|---|\n")
	for _, d := range r.Datapaths {
		if d.TCP != nil {
			fmt.Fprintf(b, "| %s | %.2f | %d |\n", d.Name, d.TCP.Gbps, d.TCP.Retransmits)
		}
	}
	b.WriteString("\n")
}

func (r *Report) mdSkipped(b *bufio.Writer) {
	for _, d := range r.Datapaths {
		if d.Skipped != "" {
			fmt.Fprintf(b, "- %s skipped: %s\n", d.Name, d.Skipped)
		}
	}
	for _, d := range r.Datapaths {
		if d.Notes != "" {
			fmt.Fprintf(b, "- %s: %s\n", d.Name, d.Notes)
		}
	}
	b.WriteString("\n")
}

func (r *Report) mdMethod(b *bufio.Writer) {
	if len(r.Method) == 0 {
		return
	}
	b.WriteString("Method:\n\n")
	for _, m := range r.Method {
		fmt.Fprintf(b, "- %s\n", m)
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
