package main

import (
	"runtime"
	"strconv"

	"github.com/xvr-project/xvr/internal/cpuset"
)

// pinProcess pins every thread of this process to cpu; threads the runtime
// starts later inherit the mask. The generator runs in this process.
func pinProcess(cpu int) error {
	return cpuset.PinProcess(cpuset.Set(cpu))
}

// allCPUs is the taskset list of every CPU, for helper processes (ping,
// iperf3) that should not inherit the generator's pinning.
func allCPUs() string {
	return "0-" + strconv.Itoa(runtime.NumCPU()-1)
}
