package topo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// daemon is a long-running process that Build started (xvrd, ovsdb-server,
// ovs-vswitchd): its own process group, its output in a log file, stopped
// by its pid only.
type daemon struct {
	name string // for messages
	cmd  *exec.Cmd
	log  string
}

// startDaemon execs argv with env (nil: this process's) and output to
// logPath (and to log when non-nil). taskset and `ip netns exec` exec in
// place, so the pid is the daemon's.
func startDaemon(name string, argv, env []string, logPath string, log io.Writer) (*daemon, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	defer logf.Close() // the child has its own descriptor
	d := &daemon{name: name, log: logPath, cmd: exec.Command(argv[0], argv[1:]...)}
	d.cmd.Env = env
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if log != nil {
		w := io.MultiWriter(logf, log)
		d.cmd.Stdout, d.cmd.Stderr = w, w
	}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return d, nil
}

// Pid is the daemon's process id.
func (d *daemon) Pid() int { return d.cmd.Process.Pid }

// LogTail returns the end of the daemon's log.
func (d *daemon) LogTail() string {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// stop sends SIGTERM to the daemon's pid (and group), SIGKILL after 5 s,
// and reaps it. It never signals a reaped pid: exited() does not reap.
func (d *daemon) stop() error {
	pid := d.cmd.Process.Pid
	var errs []error
	if err := unix.Kill(-pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		errs = append(errs, fmt.Errorf("sigterm %s: %w", d.name, err))
	}
	for deadline := time.Now().Add(5 * time.Second); !d.exited() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !d.exited() {
		errs = append(errs, fmt.Errorf("%s ignored sigterm for 5s", d.name))
		if err := unix.Kill(-pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("sigkill %s: %w", d.name, err))
		}
	}
	_ = d.cmd.Wait() // its exit status after a signal says nothing
	return errors.Join(errs...)
}

// exited reports whether the daemon has exited, without reaping it.
func (d *daemon) exited() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, d.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
	return err != nil || info.Signo != 0
}

// CPUTime returns the daemon's user plus system CPU time (all threads).
func (d *daemon) CPUTime() (time.Duration, error) {
	return ProcCPU(d.cmd.Process.Pid)
}
