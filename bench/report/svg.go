package report

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	svgW, svgH     = 900, 420
	plotL, plotR   = 70, 700
	plotT, plotB   = 40, 360
	legendX        = 720
	barGap, grpGap = 4, 24
)

var palette = []string{"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// WriteSVG writes a grouped bar chart: zero-loss Mpps per frame size
// (groups) and datapath (bars).
func (r *Report) WriteSVG(w io.Writer) error {
	sizes, names, val := r.matrix()
	top := niceMax(val)
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	text(b, plotL, 22, "start", "Zero-loss throughput (Mpps, RFC 2544) — "+r.Date.UTC().Format("2006-01-02"))
	axes(b, top)
	bars(b, sizes, names, val, top)
	legend(b, names)
	b.WriteString("</svg>\n")
	if err := b.Flush(); err != nil {
		return fmt.Errorf("write svg: %w", err)
	}
	return nil
}

// matrix returns the sizes in first-seen order, the datapaths with rows,
// and val[size][datapath] in Mpps.
func (r *Report) matrix() ([]string, []string, map[string]map[string]float64) {
	var sizes, names []string
	val := map[string]map[string]float64{}
	for _, d := range r.Datapaths {
		if len(d.Rows) > 0 {
			names = append(names, d.Name)
		}
		for _, row := range d.Rows {
			if val[row.Size] == nil {
				val[row.Size] = map[string]float64{}
				sizes = append(sizes, row.Size)
			}
			val[row.Size][d.Name] = row.ZeroLossPPS / 1e6
		}
	}
	return sizes, names, val
}

// niceMax rounds the largest value up to 1, 2 or 5 times a power of ten.
func niceMax(val map[string]map[string]float64) float64 {
	m := 0.0
	for _, row := range val {
		for _, v := range row {
			m = max(m, v)
		}
	}
	return niceCeil(m)
}

// niceCeil rounds m up to 1, 2 or 5 times a power of ten (at least 0.001).
func niceCeil(m float64) float64 {
	for step := 0.001; ; step *= 10 {
		for _, k := range []float64{1, 2, 5} {
			if k*step >= m {
				return k * step
			}
		}
	}
}

func axes(b *bufio.Writer, top float64) {
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", plotL, plotT, plotL, plotB)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", plotL, plotB, plotR, plotB)
	for i := 0; i <= 5; i++ {
		y := plotB - float64(plotB-plotT)*float64(i)/5
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", plotL+1, y, plotR, y)
		text(b, plotL-6, y+4, "end", fmt.Sprintf("%.3g", top*float64(i)/5))
	}
	text(b, 16, (plotT+plotB)/2, "middle", "Mpps")
}

func bars(b *bufio.Writer, sizes, names []string, val map[string]map[string]float64, top float64) {
	if len(sizes) == 0 || len(names) == 0 {
		text(b, (plotL+plotR)/2, (plotT+plotB)/2, "middle", "no results")
		return
	}
	grpW := (float64(plotR-plotL) - grpGap*float64(len(sizes)+1)) / float64(len(sizes))
	barW := (grpW - barGap*float64(len(names)-1)) / float64(len(names))
	for g, size := range sizes {
		x0 := plotL + grpGap + float64(g)*(grpW+grpGap)
		for i, n := range names {
			h := float64(plotB-plotT) * val[size][n] / top
			x := x0 + float64(i)*(barW+barGap)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>`, x, plotB-h, barW, h, palette[i%len(palette)])
			xml.EscapeText(b, []byte(fmt.Sprintf("%s %s: %.3f Mpps", n, size, val[size][n])))
			b.WriteString("</title></rect>\n")
		}
		text(b, x0+grpW/2, plotB+18, "middle", sizeLabel(size))
	}
}

func sizeLabel(size string) string {
	if strings.ContainsAny(size, "0123456789") && !strings.Contains(size, "IMIX") {
		return size + " B"
	}
	return size
}

func legend(b *bufio.Writer, names []string) {
	for i, n := range names {
		y := plotT + 20*i
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", legendX, y, palette[i%len(palette)])
		text(b, legendX+18, float64(y)+10, "start", n)
	}
}

// text writes an escaped text element.
func text[X, Y int | float64](b *bufio.Writer, x X, y Y, anchor, s string) {
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s">`, float64(x), float64(y), anchor)
	xml.EscapeText(b, []byte(s))
	b.WriteString("</text>\n")
}
