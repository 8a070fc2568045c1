package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/bench/report"
	"github.com/xvr-project/xvr/bench/topo"
)

// iperfResult is the part of `iperf3 -J` the report uses.
type iperfResult struct {
	End struct {
		SumSent struct {
			Retransmits int `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// tcpThroughput runs one iperf3 stream from A to B for d: a one-off server
// (-1) in B, the client in A, both on all CPUs.
func tcpThroughput(t *topo.Topology, d time.Duration) (*report.TCP, error) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		return nil, fmt.Errorf("iperf3 not installed (make bench installs it): %w", err)
	}
	srv := exec.Command("taskset", append([]string{"-c", allCPUs(), "ip"},
		t.B.NS.ExecArgs("iperf3", "-s", "-1", "-p", "5201")...)...)
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start iperf3 server: %w", err)
	}
	defer stopProc(srv)
	time.Sleep(300 * time.Millisecond) // let it listen
	return iperfClient(t, d)
}

func iperfClient(t *topo.Topology, d time.Duration) (*report.TCP, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+15*time.Second)
	defer cancel()
	secs := strconv.Itoa(max(1, int(d.Seconds())))
	out, err := exec.CommandContext(ctx, "taskset", append([]string{"-c", allCPUs(), "ip"},
		t.A.NS.ExecArgs("iperf3", "-c", t.B.IP.Addr().String(), "-p", "5201", "-t", secs, "-J",
			"--connect-timeout", "3000")...)...).Output()
	var res iperfResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return nil, errors.Join(fmt.Errorf("iperf3 output: %w", jerr), err)
	}
	if res.Error != "" {
		return nil, fmt.Errorf("iperf3: %s", res.Error)
	}
	s := res.End.SumReceived
	return &report.TCP{Gbps: s.BitsPerSecond / 1e9, Retransmits: res.End.SumSent.Retransmits, Seconds: s.Seconds}, nil
}

// stopProc ends a process this program started, by its pid (and its own
// group), and reaps it.
func stopProc(c *exec.Cmd) {
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(2 * time.Second):
	}
	_ = unix.Kill(-c.Process.Pid, unix.SIGKILL)
	<-done
}
