package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinProcess pins every thread of this process to cpu; threads the runtime
// starts later inherit the mask. The generator runs in this process.
func pinProcess(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("list threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin thread %d to cpu %d: %w", tid, cpu, err)
		}
	}
	return nil
}

// allCPUs is the taskset list of every CPU, for helper processes (ping,
// iperf3) that should not inherit the generator's pinning.
func allCPUs() string {
	return "0-" + strconv.Itoa(runtime.NumCPU()-1)
}
