// Package report holds xvr-bench's results and renders them as Markdown,
// JSON and an SVG bar chart (written by hand, no plotting module).
//
// xvr-bench and its tests import it. A Report is plain data: fill it, call
// FillRatios once all datapaths are in, then WriteDir. Nothing here touches
// the network.
package report
