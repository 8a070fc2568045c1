package report

import (
	"bufio"
	"fmt"
)

// Check is one of the benchmark issue's targets that is not a throughput
// ratio (single-stream TCP, RTT under load), as measured in this run.
type Check struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// tcpGoals: Datapath's single-stream TCP at least Peer's; across nodes
// (Retransmits) with no more than twice Peer's retransmits.
var tcpGoals = []struct {
	Datapath, Peer string
	Retransmits    bool
}{
	{"xvr", "linux-routing", false},
	{"xvr-mplsoudp", "kernel-vxlan", true}, {"xvr-vxlan", "kernel-vxlan", true}, {"xvr-fabric", "kernel-vxlan", true},
}

// OtherTargets returns the TCP and RTT targets where both sides were
// measured in this run: TCP one stream on one node ≥ Linux routing, across
// nodes ≥ kernel VXLAN with at most 2× its retransmits; xvr's RTT p50 and
// p99 under load (64 B) ≤ 2× Linux routing's.
func (r *Report) OtherTargets() []Check {
	byName := map[string]*Datapath{}
	for i := range r.Datapaths {
		byName[r.Datapaths[i].Name] = &r.Datapaths[i]
	}
	var out []Check
	for _, g := range tcpGoals {
		d, p := byName[g.Datapath], byName[g.Peer]
		if d == nil || p == nil || d.TCP == nil || p.TCP == nil {
			continue
		}
		c := Check{Target: fmt.Sprintf("%s vs %s: TCP one stream ≥ 1×", g.Datapath, g.Peer),
			Measured: fmt.Sprintf("%.2f vs %.2f Gbit/s", d.TCP.Gbps, p.TCP.Gbps),
			Met:      d.TCP.Gbps >= p.TCP.Gbps}
		if g.Retransmits {
			c.Target += ", retransmits ≤ 2×"
			c.Measured += fmt.Sprintf(", %d vs %d retransmits", d.TCP.Retransmits, p.TCP.Retransmits)
			c.Met = c.Met && d.TCP.Retransmits <= 2*p.TCP.Retransmits
		}
		out = append(out, c)
	}
	if x, l := latencyAt(byName["xvr"], "64"), latencyAt(byName["linux-routing"], "64"); x != nil && l != nil {
		out = append(out, Check{Target: "xvr vs linux-routing: RTT p50 and p99 under load ≤ 2× (64 B)",
			Measured: fmt.Sprintf("%.0f / %.0f vs %.0f / %.0f µs", x.P50, x.P99, l.P50, l.P99),
			Met:      x.P50 <= 2*l.P50 && x.P99 <= 2*l.P99})
	}
	return out
}

// latencyAt is d's RTT at frame size size, or nil when it was not measured.
func latencyAt(d *Datapath, size string) *Latency {
	if d == nil {
		return nil
	}
	for _, row := range d.Rows {
		if row.Size == size && row.Latency != nil && row.Latency.Probes > 0 {
			return row.Latency
		}
	}
	return nil
}

// mdChecks writes the TCP and RTT targets table.
func (r *Report) mdChecks(b *bufio.Writer) {
	cs := r.OtherTargets()
	if len(cs) == 0 {
		return
	}
	b.WriteString("| target | measured | met |\n|---|---|---|\n")
	for _, c := range cs {
		met := "no"
		if c.Met {
			met = "yes"
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", c.Target, c.Measured, met)
	}
	b.WriteString("\n")
}
