package metrics

import (
	"context"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/vrouter/api"
)

// scrapeTimeout bounds how long one scrape waits for the agent.
const scrapeTimeout = 5 * time.Second

// Source is the live state a Collector reads: what the agent exposes.
type Source interface {
	Vifs(ctx context.Context) []api.Vif
	DropStats(ctx context.Context) []api.DropStat
}

// PolicySource is implemented by a Source that enforces network policy
// (the agent): the flows its dataplane decided, allowed and denied.
type PolicySource interface {
	PolicyFlows() (allowed, denied uint64)
}

// FlowSource is the flow table (flowtable.Table satisfies it).
type FlowSource interface {
	Stats() flowtable.Stats
}

// Collector is a prometheus.Collector that reads a Source (and, when not
// nil, a FlowSource) on every scrape.
type Collector struct {
	src     Source
	flows   FlowSource
	version string

	vifRxPackets, vifRxBytes, vifTxPackets, vifTxBytes, vifDrops *prometheus.Desc
	vifShortPackets, vifShortBytes                               *prometheus.Desc
	drops, flowsNow, flowCap, flowFull, policyFlows, buildInfo   *prometheus.Desc
}

// NewCollector returns a Collector of src and flows (nil: no flow table,
// no flow metrics); version is reported in xvr_build_info.
func NewCollector(src Source, flows FlowSource, version string) *Collector {
	vif := []string{"vif", "name", "network", "vn"}
	return &Collector{src: src, flows: flows, version: version,
		vifRxPackets: desc("xvr_vif_rx_packets_total", "Packets received on the vif.", vif...),
		vifRxBytes:   desc("xvr_vif_rx_bytes_total", "Bytes received on the vif.", vif...),
		vifTxPackets: desc("xvr_vif_tx_packets_total", "Packets transmitted on the vif.", vif...),
		vifTxBytes:   desc("xvr_vif_tx_bytes_total", "Bytes transmitted on the vif.", vif...),
		vifDrops:     desc("xvr_vif_drops_total", "Packets received on the vif and dropped.", vif...),
		vifShortPackets: desc("xvr_vif_shortcut_packets_total",
			"Packets received on the vif that the XDP shortcut delivered in the kernel (not in rx_packets).", vif...),
		vifShortBytes: desc("xvr_vif_shortcut_bytes_total",
			"Bytes received on the vif that the XDP shortcut delivered in the kernel.", vif...),
		drops:       desc("xvr_drops_total", "Packets dropped by the forwarder, by reason (dropstats).", "reason"),
		flowsNow:    desc("xvr_flows", "Flows (forward and reverse pairs) in the flow table.", "state"),
		flowCap:     desc("xvr_flow_capacity", "Flows the flow table holds at most."),
		flowFull:    desc("xvr_flow_table_full_total", "New flows refused because the flow table was full."),
		policyFlows: desc("xvr_policy_flows_total", "Flows network policy decided (new, and decided again after a policy change), by verdict.", "verdict"),
		buildInfo:   desc("xvr_build_info", "Always 1; the labels say which xvrd runs.", "version", "goversion"),
	}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.vifRxPackets, c.vifRxBytes, c.vifTxPackets, c.vifTxBytes,
		c.vifDrops, c.vifShortPackets, c.vifShortBytes, c.drops, c.flowsNow, c.flowCap, c.flowFull, c.policyFlows, c.buildInfo} {
		ch <- d
	}
}

// Collect reads the live state and sends it as metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	send(ch, c.buildInfo, prometheus.GaugeValue, 1, c.version, runtime.Version())
	for _, v := range c.src.Vifs(ctx) {
		c.collectVif(ch, v)
	}
	for _, d := range c.src.DropStats(ctx) {
		send(ch, c.drops, prometheus.CounterValue, float64(d.Count), d.Reason)
	}
	if c.flows != nil {
		s := c.flows.Stats()
		send(ch, c.flowsNow, prometheus.GaugeValue, float64(s.Flows), "active")
		send(ch, c.flowCap, prometheus.GaugeValue, float64(s.Capacity))
		send(ch, c.flowFull, prometheus.CounterValue, float64(s.Full))
	}
	if ps, ok := c.src.(PolicySource); ok {
		allowed, denied := ps.PolicyFlows()
		send(ch, c.policyFlows, prometheus.CounterValue, float64(allowed), "allow")
		send(ch, c.policyFlows, prometheus.CounterValue, float64(denied), "deny")
	}
}

func (c *Collector) collectVif(ch chan<- prometheus.Metric, v api.Vif) {
	l := []string{strconv.FormatUint(uint64(v.ID), 10), v.Name, v.Network, v.VN}
	for _, m := range []struct {
		d *prometheus.Desc
		n uint64
	}{{c.vifRxPackets, v.RXPackets}, {c.vifRxBytes, v.RXBytes}, {c.vifTxPackets, v.TXPackets},
		{c.vifTxBytes, v.TXBytes}, {c.vifDrops, v.Drops},
		{c.vifShortPackets, v.ShortcutPackets}, {c.vifShortBytes, v.ShortcutBytes}} {
		send(ch, m.d, prometheus.CounterValue, float64(m.n), l...)
	}
}

// send sends one constant metric; a bad label value (invalid UTF-8) becomes
// an invalid metric that the handler reports without failing the scrape.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
