package metrics

import (
	"cmp"
	"github.com/xvr-project/xvr/vrouter/api"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// APIMetrics counts and times the local API's requests by method, route and
// status code.
type APIMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewAPIMetrics returns unregistered API metrics; register them (they are
// a prometheus.Collector) and wrap the API handler with Wrap.
func NewAPIMetrics() *APIMetrics {
	l := []string{"method", "route", "code"}
	return &APIMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xvr_api_requests_total",
			Help: "Requests served by the local API."}, l),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xvr_api_request_duration_seconds",
			Help: "Time to serve a local API request.", Buckets: prometheus.DefBuckets}, l),
	}
}

// Describe implements prometheus.Collector.
func (m *APIMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *APIMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
}

// Wrap returns next counted and timed. The route is the pattern of the
// http.ServeMux that served the request (it sets Request.Pattern on the
// request it was given), without its method, or "unmatched".
func (m *APIMetrics) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cw := &api.StatusWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		l := prometheus.Labels{"method": method(r.Method), "route": route(r.Pattern), "code": strconv.Itoa(cmp.Or(cw.Status(), http.StatusOK))}
		m.requests.With(l).Inc()
		m.duration.With(l).Observe(time.Since(start).Seconds())
	})
}

// method keeps the label's values few: hostile methods become "other".
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch:
		return m
	}
	return "other"
}

// route strips the method from a ServeMux pattern ("GET /v1/ports" →
// "/v1/ports").
func route(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		return strings.TrimSpace(pattern[i+1:])
	}
	return pattern
}
