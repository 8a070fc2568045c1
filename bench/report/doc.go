// Package report holds xvr-bench's results and renders them as Markdown,
// JSON, an SVG bar chart and SVG scaling curves (written by hand, no
// plotting module).
//
// xvr-bench and its tests import it. A Report is plain data: fill it, call
// FillRatios once all datapaths are in, then WriteDir. Nothing here touches
// the network.
package report
