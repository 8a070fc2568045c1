package topo

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc CPU times (USER_HZ, 100 on every Linux ABI).
const userHZ = 100

// ProcCPU returns the user plus system CPU time of process pid (all its
// threads), from /proc/PID/stat (10 ms resolution).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read proc stat: %w", err)
	}
	return ParseProcStat(string(b))
}

// ParseProcStat sums utime and stime (fields 14 and 15) of a /proc/PID/stat
// line; the command name (field 2) may hold spaces and parentheses.
func ParseProcStat(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the name", len(f))
	}
	return sumTicks(f[11], f[12])
}

// SystemCPU is the machine's CPU time split as the report needs it.
type SystemCPU struct {
	Busy    time.Duration // user, nice, system, irq, softirq (all CPUs)
	SoftIRQ time.Duration // softirq only (packet processing in the kernel)
}

// Sub returns s - o.
func (s SystemCPU) Sub(o SystemCPU) SystemCPU {
	return SystemCPU{Busy: s.Busy - o.Busy, SoftIRQ: s.SoftIRQ - o.SoftIRQ}
}

// ReadSystemCPU reads the first line of /proc/stat.
func ReadSystemCPU() (SystemCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return SystemCPU{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return ParseSystemCPU(line)
}

// ParseSystemCPU parses the aggregate "cpu" line of /proc/stat.
func ParseSystemCPU(line string) (SystemCPU, error) {
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return SystemCPU{}, fmt.Errorf("/proc/stat starts with %q", line)
	}
	busy, err := sumTicks(f[1], f[2], f[3], f[6], f[7])
	if err != nil {
		return SystemCPU{}, err
	}
	soft, err := sumTicks(f[7])
	return SystemCPU{Busy: busy, SoftIRQ: soft}, err
}

func sumTicks(fields ...string) (time.Duration, error) {
	var sum uint64
	for _, f := range fields {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu ticks %q: %w", f, err)
		}
		sum += v
	}
	return time.Duration(sum) * time.Second / userHZ, nil
}
