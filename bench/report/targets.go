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

// Standing is how one datapath compares with a peer at one frame size in
// this run, on both throughput figures.
type Standing struct {
	Goal
	Size string `json:"size"`
	// ZeroLoss and Overload are Datapath's rate over Peer's: RFC 2544
	// zero-loss rates, and rates delivered under overload (0: a rate is 0).
	ZeroLoss float64 `json:"zero_loss"`
	Overload float64 `json:"overload"`
}

// Met reports whether both ratios reach their targets.
func (s Standing) Met() bool { return s.ZeroLoss >= s.Goal.ZeroLoss && s.Overload >= s.Goal.Overload }

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
					ZeroLoss: div(row.ZeroLossPPS, peer.ZeroLossPPS), Overload: div(row.OverloadPPS, peer.OverloadPPS)})
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

// mdStandings writes the goals table: each ratio in this run, and whether
// the target is met.
func (r *Report) mdStandings(b *bufio.Writer) {
	st := r.Standings(Goals)
	if len(st) == 0 {
		return
	}
	b.WriteString("| target | frame | zero-loss ratio | overload ratio | met |\n|---|---|---|---|---|\n")
	for _, s := range st {
		met := "no"
		if s.Met() {
			met = "yes"
		}
		fmt.Fprintf(b, "| %s vs %s: %s | %s | %s | %s | %s |\n", s.Datapath, s.Peer, s.Goal.wants(), s.Size,
			ratio(s.ZeroLoss), ratio(s.Overload), met)
	}
	b.WriteString("\n")
}
