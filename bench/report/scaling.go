package report

import (
	"bufio"
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Curve is how one figure of xvr grows with one parameter of its load:
// ports on one poller, routes in the VN's table, flows in the flow table.
type Curve struct {
	Name   string  `json:"name"`           // "ports on one poller", "flows (policy on)"
	Param  string  `json:"param"`          // the x axis: "ports", "flows"
	Note   string  `json:"note,omitempty"` // how it was measured, or why it was not
	Points []Point `json:"points,omitempty"`
}

// Point is one measurement of a Curve.
type Point struct {
	X float64 `json:"x"`
	// ZeroLossPPS is the RFC 2544 zero-loss rate, frames/s.
	ZeroLossPPS float64 `json:"zero_loss_pps"`
	// GeneratorBound: the generator's full rate passed; a lower bound.
	GeneratorBound bool `json:"generator_bound,omitempty"`
	// OverloadPPS is what the sink received during the unpaced trial.
	OverloadPPS float64 `json:"overload_pps"`
	Error       string  `json:"error,omitempty"` // failed; the rates are not valid
}

// Scaling chart geometry, in SVG user units: panels side by side below a
// legend band; the plot area's edges are relative to a panel's corner.
const (
	panelW, panelH = 360, 240
	legendH        = 44
	curveL, curveR = 50, 340
	curveT, curveB = 40, 196
	noteWidth      = 52 // characters per line of a panel's note
	zeroLossColor  = "#d62728"
	overloadColor  = "#1f77b4"
	overloadDash   = "6 4"
)

// WriteScalingSVG writes the scaling curves as a line chart: one panel per
// curve, log x axis, zero-loss (solid) and overload (dashed) Mpps.
func (r *Report) WriteScalingSVG(w io.Writer) error {
	curves := r.Scaling
	if len(curves) == 0 {
		curves = []Curve{{Name: "scaling", Note: "no scaling curves"}}
	}
	width, height := panelW*len(curves), legendH+panelH
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	scalingLegend(b)
	for i, c := range curves {
		scalingPanel(b, float64(i*panelW), legendH, c)
	}
	b.WriteString("</svg>\n")
	if err := b.Flush(); err != nil {
		return fmt.Errorf("write scaling svg: %w", err)
	}
	return nil
}

func scalingLegend(b *bufio.Writer) {
	fmt.Fprintf(b, `<line x1="10" y1="15" x2="40" y2="15" stroke="%s" stroke-width="2"/>`+"\n", zeroLossColor)
	text(b, 46, 19, "start", "zero-loss Mpps, 64 B")
	fmt.Fprintf(b, `<line x1="160" y1="15" x2="190" y2="15" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", overloadColor, overloadDash)
	text(b, 196, 19, "start", "delivered at overload")
	fmt.Fprintf(b, `<circle cx="25" cy="33" r="3.5" fill="white" stroke="%s"/>`+"\n", zeroLossColor)
	text(b, 46, 37, "start", "generator-bound: a lower bound")
}

// plotFrame maps one panel's points onto its plot area.
type plotFrame struct {
	ox, oy float64 // the panel's top left corner
	lo, hi float64 // log10 of the smallest and largest X
	top    float64 // the y axis' maximum, Mpps
}

func (f plotFrame) x(v float64) float64 {
	if f.hi == f.lo {
		return f.ox + (curveL+curveR)/2
	}
	const pad = 15
	return f.ox + curveL + pad + (curveR-curveL-2*pad)*(math.Log10(v)-f.lo)/(f.hi-f.lo)
}

func (f plotFrame) y(pps float64) float64 {
	return f.oy + curveB - (curveB-curveT)*(pps/1e6)/f.top
}

// scalingPanel draws one curve, or its note when it has nothing to plot.
func scalingPanel(b *bufio.Writer, ox, oy float64, c Curve) {
	text(b, ox+panelW/2, oy+18, "middle", c.Name)
	pts := plottable(c.Points)
	if len(pts) == 0 {
		panelNote(b, ox, oy, c.Note)
		return
	}
	f := frameFor(ox, oy, pts)
	curveAxes(b, f, c.Param, pts)
	series(b, f, c.Name, pts, func(p Point) float64 { return p.ZeroLossPPS }, zeroLossColor, "")
	series(b, f, c.Name, pts, func(p Point) float64 { return p.OverloadPPS }, overloadColor, overloadDash)
}

// plottable returns the points with a positive X and no error, by X.
func plottable(points []Point) []Point {
	var out []Point
	for _, p := range points {
		if p.X > 0 && p.Error == "" {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b Point) int { return cmp.Compare(a.X, b.X) })
	return out
}

func frameFor(ox, oy float64, pts []Point) plotFrame {
	top := 0.0
	for _, p := range pts {
		top = max(top, p.ZeroLossPPS/1e6, p.OverloadPPS/1e6)
	}
	return plotFrame{ox: ox, oy: oy, lo: math.Log10(pts[0].X), hi: math.Log10(pts[len(pts)-1].X), top: niceCeil(top)}
}

func panelNote(b *bufio.Writer, ox, oy float64, note string) {
	if note == "" {
		note = "no results"
	}
	for i, line := range wrapWords(note, noteWidth) {
		text(b, ox+panelW/2, oy+panelH/2+float64(14*i), "middle", line)
	}
}

// curveAxes draws the axes, the y grid and labels, and an x tick at each
// point.
func curveAxes(b *bufio.Writer, f plotFrame, param string, pts []Point) {
	l, r, t, bot := f.ox+curveL, f.ox+curveR, f.oy+curveT, f.oy+curveB
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", l, t, l, bot)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", l, bot, r, bot)
	for i := 0; i <= 5; i++ {
		y := bot - (bot-t)*float64(i)/5
		if i > 0 {
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", l+1, y, r, y)
		}
		text(b, l-5, y+4, "end", fmt.Sprintf("%.3g", f.top*float64(i)/5))
	}
	text(b, l, t-8, "end", "Mpps")
	for _, p := range pts {
		x := f.x(p.X)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x, bot, x, bot+4)
		text(b, x, bot+16, "middle", siLabel(p.X))
	}
	text(b, (l+r)/2, bot+32, "middle", param+" (log scale)")
}

// series draws one figure of the points as a polyline with a circle at each
// point; dash is a stroke-dasharray, "" for a solid line.
func series(b *bufio.Writer, f plotFrame, name string, pts []Point, pps func(Point) float64, color, dash string) {
	coords := make([]string, len(pts))
	for i, p := range pts {
		coords[i] = fmt.Sprintf("%.1f,%.1f", f.x(p.X), f.y(pps(p)))
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"`, strings.Join(coords, " "), color)
	if dash != "" {
		fmt.Fprintf(b, ` stroke-dasharray="%s"`, dash)
	}
	b.WriteString("/>\n")
	for _, p := range pts {
		fill, bound := color, dash == "" && p.GeneratorBound
		if bound {
			fill = "white"
		}
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="%s"><title>`, f.x(p.X), f.y(pps(p)), fill, color)
		xml.EscapeText(b, []byte(pointTitle(name, p.X, pps(p), bound)))
		b.WriteString("</title></circle>\n")
	}
}

func pointTitle(name string, x, pps float64, bound bool) string {
	v := fmt.Sprintf("%.3f Mpps", pps/1e6)
	if bound {
		v = "≥ " + v
	}
	return fmt.Sprintf("%s at %s: %s", name, siLabel(x), v)
}

// siLabel formats whole thousands and millions as "4k" and "1M", anything
// else plainly (1500, 0.5).
func siLabel(x float64) string {
	switch {
	case x >= 1e6 && math.Mod(x, 1e6) == 0:
		return fmt.Sprintf("%gM", x/1e6)
	case x >= 1e3 && math.Mod(x, 1e3) == 0:
		return fmt.Sprintf("%gk", x/1e3)
	}
	return plain(x)
}

// wrapWords breaks s into lines of at most width characters, at spaces
// (a longer word has a line to itself).
func wrapWords(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case len([]rune(line))+1+len([]rune(w)) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
