// Package cpuset parses CPU lists ("1", "0,2-3", as taskset -c and
// /sys/devices/system/cpu/online write them) and pins threads to CPUs: xvrd
// gives each poller its own CPU and keeps its other threads off them, as
// OVS's pmd-cpu-mask and a DPDK vRouter's forwarding cores do.
package cpuset

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxCPUs is how many CPUs a unix.CPUSet holds.
const maxCPUs = len(unix.CPUSet{}) * 64

// Parse reads a CPU list: comma-separated CPUs and ranges lo-hi. The CPUs
// come back in the order written, without repeats; "" is no CPU.
func Parse(list string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := cpuNumber(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", list, err)
		}
		b := a
		if isRange {
			if b, err = cpuNumber(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", list, err)
			}
			if b < a {
				return nil, fmt.Errorf("cpu list %q: range %d-%d runs backwards", list, a, b)
			}
		}
		for c := a; c <= b; c++ {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out, nil
}

func cpuNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= maxCPUs {
		return 0, fmt.Errorf("%q is not a CPU number", s)
	}
	return n, nil
}

// Set makes a CPU set of cpus.
func Set(cpus ...int) unix.CPUSet {
	var s unix.CPUSet
	for _, c := range cpus {
		s.Set(c)
	}
	return s
}

// PinThread pins the calling OS thread to set; the caller must hold it
// (runtime.LockOSThread).
func PinThread(set unix.CPUSet) error {
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pinning thread to cpus %v: %w", members(set), err)
	}
	return nil
}

// PinProcess pins every thread this process has to set. Threads the Go
// runtime starts later inherit the mask of the thread that starts them,
// or of its template thread when that one is locked (a poller).
func PinProcess(set unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("listing threads: %w", err)
	}
	var errs []error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: it ended
			errs = append(errs, fmt.Errorf("pinning thread %d to cpus %v: %w", tid, members(set), err))
		}
	}
	return errors.Join(errs...)
}

// Allowed is the calling thread's CPU set.
func Allowed() (unix.CPUSet, error) {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		return s, fmt.Errorf("reading cpu affinity: %w", err)
	}
	return s, nil
}

// Without is s less cpus.
func Without(s unix.CPUSet, cpus []int) unix.CPUSet {
	for _, c := range cpus {
		s.Clear(c)
	}
	return s
}

// members lists the CPUs of s.
func members(s unix.CPUSet) []int {
	var out []int
	for c := range maxCPUs {
		if s.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}
