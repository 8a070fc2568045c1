package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/vrouter/agent"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/metrics"
)

// ops is what an operator watches: metrics, health and systemd's notify
// socket.
type ops struct {
	reg     *prometheus.Registry
	api     *metrics.APIMetrics
	ag      statuser
	running *atomic.Int32 // pollers whose Run has not returned
	pollers int
	log     *slog.Logger
}

func newOps(ag *agent.Agent, flows *flowtable.Table, running *atomic.Int32, busy []metrics.BusySource, log *slog.Logger) (*ops, error) {
	o := &ops{reg: prometheus.NewRegistry(), api: metrics.NewAPIMetrics(), ag: ag, running: running, pollers: len(busy), log: log}
	var fs metrics.FlowSource
	if flows != nil {
		fs = flows
	}
	for _, c := range []prometheus.Collector{metrics.NewCollector(ag, fs, version), o.api, metrics.NewPollerCollector(busy),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := o.reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return o, nil
}

// statuser is the part of the agent the health check asks.
type statuser interface {
	Status(ctx context.Context) api.Status
}

// health is nil when every poller runs and the agent answers in time.
func (o *ops) health(ctx context.Context) error {
	if n := int(o.running.Load()); n < o.pollers {
		return fmt.Errorf("%d of %d pollers running", n, o.pollers)
	}
	done := make(chan struct{})
	go func() {
		o.ag.Status(ctx)
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("the agent does not answer")
	}
}

// serveMetrics serves /metrics and /healthz on addr until ctx is done;
// an empty addr serves nothing.
func (o *ops) serveMetrics(ctx context.Context, addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for metrics on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: metrics.Handler(o.reg, o.health), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("serving metrics", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { srv.Close() }) //nolint:errcheck // closing on shutdown
	o.log.Info("serving metrics", "addr", ln.Addr().String())
	return nil
}

// notify sends state to systemd; without NOTIFY_SOCKET it does nothing.
func (o *ops) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		o.log.Warn("notifying systemd", "state", state, "err", err)
	}
}

// watchdog pets systemd's watchdog at half its interval while healthy,
// until ctx is done; without WATCHDOG_USEC it returns at once.
func (o *ops) watchdog(ctx context.Context) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		if err != nil {
			o.log.Warn("reading the systemd watchdog interval", "err", err)
		}
		return
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			o.petIfHealthy(ctx, every/2)
		}
	}
}

func (o *ops) petIfHealthy(ctx context.Context, within time.Duration) {
	hctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if err := o.health(hctx); err != nil {
		o.log.Warn("unhealthy: not petting the watchdog", "err", err)
		return
	}
	o.notify(daemon.SdNotifyWatchdog)
}
