package main

import (
	"fmt"
	"log/slog"
	"runtime"

	"github.com/xvr-project/xvr/internal/cpuset"
)

// placeThreads gives the Go runtime a P for every poller and one more, so
// that a poller back from poll(2) never waits for a P another goroutine
// holds (under taskset to one CPU the runtime would make one P, and the
// poller would wait up to the 10 ms preemption tick behind the API or a
// sweep). With -poller-cpus it keeps every thread xvrd has off the
// pollers' CPUs (threads started later inherit that), as OVS's
// pmd-cpu-mask does, and returns the CPUs for the pollers to pin
// themselves to.
func placeThreads(o options, log *slog.Logger) ([]int, error) {
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), o.pollers+1))
	cpus, err := cpuset.Parse(o.pollerCPUs)
	if err != nil {
		return nil, fmt.Errorf("-poller-cpus: %w", err)
	}
	if len(cpus) == 0 {
		return nil, nil
	}
	allowed, err := cpuset.Allowed()
	if err != nil {
		return nil, err
	}
	for _, c := range cpus {
		if !allowed.IsSet(c) {
			return nil, fmt.Errorf("-poller-cpus %s: CPU %d is not one xvrd may run on", o.pollerCPUs, c)
		}
	}
	rest := cpuset.Without(allowed, cpus)
	if rest.Count() == 0 {
		log.Warn("-poller-cpus names every CPU xvrd may run on: its other threads share them with the pollers",
			"poller_cpus", o.pollerCPUs)
		return cpus, nil
	}
	if err := cpuset.PinProcess(rest); err != nil {
		return nil, fmt.Errorf("keeping xvrd's threads off the pollers' CPUs: %w", err)
	}
	return cpus, nil
}
