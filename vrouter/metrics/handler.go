package metrics

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// healthTimeout bounds one health check.
const healthTimeout = 3 * time.Second

// HealthFunc reports why xvrd is unhealthy, or nil.
type HealthFunc func(ctx context.Context) error

// Handler serves reg on /metrics and health on /healthz: 200 "ok" when it
// returns nil, else 503 with the error as one line.
func Handler(reg *prometheus.Registry, health HealthFunc) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, Timeout: 2 * scrapeTimeout}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := health(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy: %s\n", oneLine(err.Error()))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// oneLine keeps the first line of s.
func oneLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\r' {
			return s[:i]
		}
	}
	return s
}
