package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/vrouter/api"
)

type fakeSource struct {
	vifs  []api.Vif
	drops []api.DropStat
}

func (f *fakeSource) Vifs(context.Context) []api.Vif           { return f.vifs }
func (f *fakeSource) DropStats(context.Context) []api.DropStat { return f.drops }

type fakeFlows flowtable.Stats

func (f fakeFlows) Stats() flowtable.Stats { return flowtable.Stats(f) }

func newFake() *fakeSource {
	return &fakeSource{
		vifs: []api.Vif{
			{ID: 0, Name: "eth1", Type: "fabric", RXPackets: 10, RXBytes: 1000, TXPackets: 20, TXBytes: 2000, Drops: 1},
			{ID: 3, Name: "xvp1h", Network: "default/vn-left-1", VN: "k8s-vn-left-1-pod-network", RXPackets: 5, RXBytes: 420, TXPackets: 4, TXBytes: 336,
				ShortcutPackets: 9, ShortcutBytes: 576},
		},
		drops: []api.DropStat{{Reason: "no_route", Count: 7}, {Reason: "ttl_exceeded", Count: 0}},
	}
}

func TestCollector(t *testing.T) {
	c := NewCollector(newFake(), fakeFlows{Flows: 12, Capacity: 4096, Full: 3}, "v1.2.3")
	want := `
# HELP xvr_vif_rx_packets_total Packets received on the vif.
# TYPE xvr_vif_rx_packets_total counter
xvr_vif_rx_packets_total{name="eth1",network="",vif="0",vn=""} 10
xvr_vif_rx_packets_total{name="xvp1h",network="default/vn-left-1",vif="3",vn="k8s-vn-left-1-pod-network"} 5
# HELP xvr_vif_tx_bytes_total Bytes transmitted on the vif.
# TYPE xvr_vif_tx_bytes_total counter
xvr_vif_tx_bytes_total{name="eth1",network="",vif="0",vn=""} 2000
xvr_vif_tx_bytes_total{name="xvp1h",network="default/vn-left-1",vif="3",vn="k8s-vn-left-1-pod-network"} 336
# HELP xvr_vif_drops_total Packets received on the vif and dropped.
# TYPE xvr_vif_drops_total counter
xvr_vif_drops_total{name="eth1",network="",vif="0",vn=""} 1
xvr_vif_drops_total{name="xvp1h",network="default/vn-left-1",vif="3",vn="k8s-vn-left-1-pod-network"} 0
# HELP xvr_drops_total Packets dropped by the forwarder, by reason (dropstats).
# TYPE xvr_drops_total counter
xvr_drops_total{reason="no_route"} 7
xvr_drops_total{reason="ttl_exceeded"} 0
# HELP xvr_flows Flows (forward and reverse pairs) in the flow table.
# TYPE xvr_flows gauge
xvr_flows{state="active"} 12
# HELP xvr_flow_capacity Flows the flow table holds at most.
# TYPE xvr_flow_capacity gauge
xvr_flow_capacity 4096
# HELP xvr_flow_table_full_total New flows refused because the flow table was full.
# TYPE xvr_flow_table_full_total counter
xvr_flow_table_full_total 3
# HELP xvr_build_info Always 1; the labels say which xvrd runs.
# TYPE xvr_build_info gauge
xvr_build_info{goversion="` + runtime.Version() + `",version="v1.2.3"} 1
`
	names := []string{"xvr_vif_rx_packets_total", "xvr_vif_tx_bytes_total", "xvr_vif_drops_total",
		"xvr_drops_total", "xvr_flows", "xvr_flow_capacity", "xvr_flow_table_full_total", "xvr_build_info"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c, "xvr_vif_rx_bytes_total", "xvr_vif_tx_packets_total"); n != 4 {
		t.Fatalf("rx_bytes and tx_packets series: %d, want 4", n)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP xvr_vif_rx_bytes_total Bytes received on the vif.
# TYPE xvr_vif_rx_bytes_total counter
xvr_vif_rx_bytes_total{name="eth1",network="",vif="0",vn=""} 1000
xvr_vif_rx_bytes_total{name="xvp1h",network="default/vn-left-1",vif="3",vn="k8s-vn-left-1-pod-network"} 420
`), "xvr_vif_rx_bytes_total"); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP xvr_vif_shortcut_packets_total Packets received on the vif that the XDP shortcut delivered in the kernel (not in rx_packets).
# TYPE xvr_vif_shortcut_packets_total counter
xvr_vif_shortcut_packets_total{name="eth1",network="",vif="0",vn=""} 0
xvr_vif_shortcut_packets_total{name="xvp1h",network="default/vn-left-1",vif="3",vn="k8s-vn-left-1-pod-network"} 9
# HELP xvr_vif_shortcut_bytes_total Bytes received on the vif that the XDP shortcut delivered in the kernel.
# TYPE xvr_vif_shortcut_bytes_total counter
xvr_vif_shortcut_bytes_total{name="eth1",network="",vif="0",vn=""} 0
xvr_vif_shortcut_bytes_total{name="xvp1h",network="default/vn-left-1",vif="3",vn="k8s-vn-left-1-pod-network"} 576
`), "xvr_vif_shortcut_packets_total", "xvr_vif_shortcut_bytes_total"); err != nil {
		t.Fatal(err)
	}
}

// policySource is a Source that enforces policy.
type policySource struct {
	*fakeSource
	allowed, denied uint64
}

func (p *policySource) PolicyFlows() (uint64, uint64) { return p.allowed, p.denied }

func TestCollectorPolicyFlows(t *testing.T) {
	src := &policySource{fakeSource: newFake(), allowed: 40, denied: 2}
	want := `
# HELP xvr_policy_flows_total Flows network policy decided (new, and decided again after a policy change), by verdict.
# TYPE xvr_policy_flows_total counter
xvr_policy_flows_total{verdict="allow"} 40
xvr_policy_flows_total{verdict="deny"} 2
`
	if err := testutil.CollectAndCompare(NewCollector(src, nil, "dev"), strings.NewReader(want), "xvr_policy_flows_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(NewCollector(newFake(), nil, "dev"), "xvr_policy_flows_total"); n != 0 {
		t.Fatalf("policy series from a source without policy: %d", n)
	}
}

func TestCollectorNoFlowTable(t *testing.T) {
	c := NewCollector(newFake(), nil, "dev")
	if n := testutil.CollectAndCount(c, "xvr_flows", "xvr_flow_capacity"); n != 0 {
		t.Fatalf("flow series without a flow table: %d", n)
	}
}

// TestCollectorLive: the collector reads at scrape time, not at creation.
func TestCollectorLive(t *testing.T) {
	src := newFake()
	c := NewCollector(src, nil, "dev")
	src.drops[0].Count = 99
	want := `
# HELP xvr_drops_total Packets dropped by the forwarder, by reason (dropstats).
# TYPE xvr_drops_total counter
xvr_drops_total{reason="no_route"} 99
xvr_drops_total{reason="ttl_exceeded"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "xvr_drops_total"); err != nil {
		t.Fatal(err)
	}
}

// TestCollectorBadLabel: invalid UTF-8 in a name fails that series only.
func TestCollectorBadLabel(t *testing.T) {
	src := newFake()
	src.vifs[1].Name = "bad\xff"
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src, nil, "dev"))
	srv := httptest.NewServer(Handler(reg, func(context.Context) error { return nil }))
	defer srv.Close()
	body, code := get(t, srv.URL+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, `xvr_drops_total{reason="no_route"} 7`) {
		t.Fatalf("scrape with a bad label: %d\n%s", code, body)
	}
}

func TestAPIMetrics(t *testing.T) {
	m := NewAPIMetrics()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ports/{id...}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") })
	mux.HandleFunc("PUT /v1/networks/{namespace}/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	})
	h := m.Wrap(mux)
	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/ports/a/eth0"}, {"GET", "/v1/ports/b/eth1"}, {"PUT", "/v1/networks/default/x"},
		{"GET", "/nonsense/1"}, {"BREW", "/v1/ports/a"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(req.method, req.path, nil))
	}
	want := `
# HELP xvr_api_requests_total Requests served by the local API.
# TYPE xvr_api_requests_total counter
xvr_api_requests_total{code="200",method="GET",route="/v1/ports/{id...}"} 2
xvr_api_requests_total{code="400",method="PUT",route="/v1/networks/{namespace}/{name}"} 1
xvr_api_requests_total{code="404",method="GET",route="unmatched"} 1
xvr_api_requests_total{code="405",method="other",route="unmatched"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "xvr_api_requests_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m, "xvr_api_request_duration_seconds"); n != 4 {
		t.Fatalf("duration series: %d, want 4", n)
	}
}

func TestHealthz(t *testing.T) {
	var fail error
	srv := httptest.NewServer(Handler(prometheus.NewRegistry(), func(context.Context) error { return fail }))
	defer srv.Close()
	if body, code := get(t, srv.URL+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthy: %d %q", code, body)
	}
	fail = errors.New("poller 1 stopped\nsecond line")
	if body, code := get(t, srv.URL+"/healthz"); code != http.StatusServiceUnavailable || body != "unhealthy: poller 1 stopped\n" {
		t.Fatalf("unhealthy: %d %q", code, body)
	}
}

func get(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.StatusCode
}
