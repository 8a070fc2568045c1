package report

import (
	"bufio"
	"fmt"
)

// Goal is one of the benchmark issue's targets: Datapath's zero-loss rate
// at least ZeroLoss times Peer's at frame size Size, and its rate
// delivered under overload at least Overload times Peer's (0: no target
// for that figure).
type Goal struct {
	Datapath, Peer     string
	Size               string
	ZeroLoss, Overload float64
}

// Goals are the targets the report checks (issue 14), all of 64-byte
// frames: same node, xvr's zero-loss rate 2× OVS AF_XDP's and 3× Linux
// routing's, under overload 1.5× OVS's; across nodes every encapsulation
// 2× kernel VXLAN on both.
var Goals = []Goal{
	{"xvr", "ovs-afxdp", "64", 2, 1.5}, {"xvr", "linux-routing", "64", 3, 0},
	{"xvr-mplsoudp", "kernel-vxlan", "64", 2, 2}, {"xvr-vxlan", "kernel-vxlan", "64", 2, 2},
	{"xvr-fabric", "kernel-vxlan", "64", 2, 2},
}

// Bound says what a ratio of two rates is when one of them was the
// generator's limit (a generator-bound row: the datapath lost nothing at
// the most the generator offered, so its rate is a lower bound).
type Bound uint8

// Bounds of a ratio.
const (
	Exact   Bound = iota // both rates measured
	AtLeast              // the datapath's rate is a lower bound
	AtMost               // the peer's rate is a lower bound
	Unknown              // both are
)

func boundOf(datapath, peer bool) Bound {
	switch {
	case datapath && peer:
		return Unknown
	case datapath:
		return AtLeast
	case peer:
		return AtMost
	}
	return Exact
}

// Standing is how one datapath compares with a peer at one frame size in
// this run, on both throughput figures.
type Standing struct {
	Goal
	Size string `json:"size"`
	// ZeroLoss and Overload are Datapath's rate over Peer's: RFC 2544
	// zero-loss rates, and rates delivered under overload (0: a rate is 0).
	ZeroLoss float64 `json:"zero_loss"`
	Overload float64 `json:"overload"`
	// Bound says what the ratios are worth when a side was
	// generator-bound (its overload figure is the generator's rate too).
	Bound Bound `json:"bound"`
}

// Met reports whether both ratios are known to reach their targets.
func (s Standing) Met() bool {
	return (s.Bound == Exact || s.Bound == AtLeast) && s.ZeroLoss >= s.Goal.ZeroLoss && s.Overload >= s.Goal.Overload
}

// verdict is the goals table's "met" column: yes, no, or not known from
// this run because a generator-bound rate leaves the ratio open.
func (s Standing) verdict() string {
	switch {
	case s.Met():
		return "yes"
	case s.Bound == Exact || s.Bound == AtMost && (s.ZeroLoss < s.Goal.ZeroLoss || s.Overload < s.Goal.Overload):
		return "no"
	}
	return "not known: generator-bound"
}

// ratioOf writes a ratio with its bound: "≥ 1.20×", "≤ 0.80×", "? (both
// generator-bound)".
func ratioOf(v float64, b Bound) string {
	switch {
	case v == 0:
		return ratio(v)
	case b == AtLeast:
		return "≥ " + ratio(v)
	case b == AtMost:
		return "≤ " + ratio(v)
	case b == Unknown:
		return "? (" + ratio(v) + ", both generator-bound)"
	}
	return ratio(v)
}

// Standings compares every goal's datapath with its peer at the goal's
// frame size, where both were measured in this run.
func (r *Report) Standings(goals []Goal) []Standing {
	rows := map[string]map[string]Row{}
	for _, d := range r.Datapaths {
		rows[d.Name] = map[string]Row{}
		for _, row := range d.Rows {
			rows[d.Name][row.Size] = row
		}
	}
	var out []Standing
	for _, g := range goals {
		for _, d := range r.Datapaths {
			if d.Name != g.Datapath {
				continue
			}
			for _, row := range d.Rows {
				peer, ok := rows[g.Peer][row.Size]
				if !ok || row.Size != g.Size {
					continue
				}
				out = append(out, Standing{Goal: g, Size: row.Size,
					ZeroLoss: div(row.ZeroLossPPS, peer.ZeroLossPPS), Overload: div(row.OverloadPPS, peer.OverloadPPS),
					Bound: boundOf(row.GeneratorBound, peer.GeneratorBound)})
			}
		}
	}
	return out
}

// wants says the goal's targets, "zero-loss ≥ 2×, overload ≥ 1.5×".
func (g Goal) wants() string {
	s := fmt.Sprintf("zero-loss ≥ %g×", g.ZeroLoss)
	if g.Overload > 0 {
		s += fmt.Sprintf(", overload ≥ %g×", g.Overload)
	}
	return s
}

func div(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

// mdStandings writes the goals table: each ratio in this run (a bound
// where a side was generator-bound), and whether the target is met.
func (r *Report) mdStandings(b *bufio.Writer) {
	st := r.Standings(Goals)
	if len(st) == 0 {
		return
	}
	b.WriteString("| target | frame | zero-loss ratio | overload ratio | met |\n|---|---|---|---|---|\n")
	for _, s := range st {
		fmt.Fprintf(b, "| %s vs %s: %s | %s | %s | %s | %s |\n", s.Datapath, s.Peer, s.Goal.wants(), s.Size,
			ratioOf(s.ZeroLoss, s.Bound), ratioOf(s.Overload, s.Bound), s.verdict())
	}
	b.WriteString("\n")
}
