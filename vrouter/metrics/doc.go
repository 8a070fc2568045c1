// Package metrics exposes xvrd's state as Prometheus metrics: per-vif
// packets, bytes and drops, drops by reason, flow table use, the pollers'
// busy time and ratio, the local API's request counts and latencies, and
// build information.
//
// It is imported by cmd/xvrd only. A Collector reads live state through the
// small Source and FlowSource interfaces at scrape time, and a
// PollerCollector reads each poller's Busy clock (which the poller keeps with
// one clock read per round that moved frames), so nothing here runs on the
// packet path; the API middleware (APIMetrics.Wrap) counts requests
// to the local API, whose route label is the ServeMux pattern that served the
// request ("unmatched" otherwise), so hostile paths cannot grow the number
// of series.
//
// Lifecycle trap: register a Collector and an APIMetrics with exactly one
// prometheus.Registry (Register panics through MustRegister on duplicates,
// so use Registry.Register and check its error); Handler serves /metrics and
// /healthz from that registry.
package metrics
