package nettest

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a background process started by NS.Start in its own process
// group. Its stdout and stderr go to one buffer, read with Output.
type Proc struct {
	cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{} // closed once the process has been reaped
	err  error         // cmd.Wait's result, valid after done

	mu     sync.Mutex
	exited bool // the process is a zombie or reaped: its pgid may be gone
}

// Start runs args inside n in the background. In t.Cleanup the process
// group is killed with SIGKILL (if still running) and the process reaped.
func (n *NS) Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	p, err := startProc(exec.Command("ip", n.execArgs(args)...))
	if err != nil {
		t.Fatalf("nettest: starting %v in netns %s: %v", args, n.Name, err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		_ = p.Wait(10 * time.Second)
	})
	return p
}

// StartHost is Start in the test process's own namespace, for daemons that
// live beside the test rather than on a node (the Kubernetes controller).
func StartHost(t testing.TB, args ...string) *Proc {
	t.Helper()
	p, err := startProc(exec.Command(args[0], args[1:]...))
	if err != nil {
		t.Fatalf("nettest: starting %v: %v", args, err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		_ = p.Wait(10 * time.Second)
	})
	return p
}

// Spawn is StartHost without the cleanup: the caller stops p (Signal or
// Kill, then Wait). For daemons a test stops and starts again.
func Spawn(args ...string) (*Proc, error) {
	p, err := startProc(exec.Command(args[0], args[1:]...))
	if err != nil {
		return nil, fmt.Errorf("nettest: starting %v: %w", args, err)
	}
	return p, nil
}

func startProc(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second // do not hang on pipes a stray child holds
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	go p.reap()
	return p, nil
}

// reap waits for the exit without reaping first (WNOWAIT), so that Kill can
// never signal a recycled pid, then reaps.
func (p *Proc) reap() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	p.mu.Lock()
	p.exited = true
	p.mu.Unlock()
	p.err = p.cmd.Wait()
	close(p.done)
}

// Kill sends SIGKILL to the process group of p, unless p has exited.
func (p *Proc) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return nil
	}
	if err := unix.Kill(-p.cmd.Process.Pid, unix.SIGKILL); err != nil {
		return fmt.Errorf("kill process group %d: %w", p.cmd.Process.Pid, err)
	}
	return nil
}

// Signal sends sig to the process group of p, unless p has exited.
func (p *Proc) Signal(sig unix.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return nil
	}
	if err := unix.Kill(-p.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signal %v to process group %d: %w", sig, p.cmd.Process.Pid, err)
	}
	return nil
}

// Wait waits up to timeout for p to exit and returns its exit error. It does
// not kill p on timeout.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("process %d still running after %v", p.cmd.Process.Pid, timeout)
	}
}

// Output returns what p wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
