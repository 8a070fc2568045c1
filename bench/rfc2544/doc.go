// Package rfc2544 is the measurement method of xvr-bench, apart from any
// network: the RFC 2544 zero-loss throughput search (a binary search on the
// offered rate, driven through a Trial function), a pacer that turns an
// unpaced burst generator into a constant offered rate by sending bounded
// bursts per time slice, and frame-size mixes (IMIX 7:4:1).
//
// It has no OS dependencies; xvr-bench and its tests import it. Search and
// Pace are bounded in trials and time by their arguments; they are not safe
// for concurrent use of one Splitter.
package rfc2544
