package nettest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// HelperEnv names the environment variable that turns a re-executed test
// binary into one of the helper programs.
const HelperEnv = "XVR_NETTEST_HELPER"

// helpers are the programs MaybeRunHelper can run; each gets the arguments
// after "--" and writes its one result line to out.
var helpers = map[string]func(args []string, out io.Writer) error{
	"tcp-sink":   tcpSink,
	"tcp-source": tcpSource,
	"raw-send":   rawSend,
	"raw-frame":  rawFrame,
}

// MaybeRunHelper runs the helper named by $XVR_NETTEST_HELPER and exits the
// process; without the variable it returns at once. Call it first thing in
// TestMain of every package that uses TCPTransfer or RawSend:
//
//	func TestMain(m *testing.M) { nettest.MaybeRunHelper(); os.Exit(m.Run()) }
func MaybeRunHelper() {
	name := os.Getenv(HelperEnv)
	if name == "" {
		return
	}
	os.Exit(runHelper(name, helperArgs(os.Args), os.Stdout, os.Stderr))
}

func runHelper(name string, args []string, out, errOut io.Writer) int {
	fn, ok := helpers[name]
	if !ok {
		fmt.Fprintf(errOut, "nettest helper: unknown helper %q\n", name)
		return 2
	}
	if err := fn(args, out); err != nil {
		fmt.Fprintf(errOut, "nettest helper %s: %v\n", name, err)
		return 1
	}
	return 0
}

// helperArgs returns the arguments after the first "--".
func helperArgs(argv []string) []string {
	for i, a := range argv {
		if a == "--" {
			return argv[i+1:]
		}
	}
	return nil
}

// StartHelper runs the helper name with args inside n as a child copy of the
// test binary (see MaybeRunHelper), like Start.
func (n *NS) StartHelper(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("nettest: test binary path: %v", err)
	}
	argv := append([]string{exe, "-test.run=^$", "--"}, args...)
	cmd := exec.Command("ip", n.execArgs(argv)...)
	cmd.Env = append(os.Environ(), HelperEnv+"="+name)
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("nettest: starting helper %s in netns %s: %v", name, n.Name, err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		_ = p.Wait(10 * time.Second)
	})
	return p
}

// waitResult waits for a helper and returns its last output line that
// starts with key, failing t when the helper fails or prints none.
func waitResult(t testing.TB, p *Proc, what, key string, timeout time.Duration) string {
	t.Helper()
	if err := p.Wait(timeout); err != nil {
		t.Fatalf("nettest: %s: %v\n%s", what, err, p.Output())
	}
	line := lastLineWith(p.Output(), key)
	if line == "" {
		t.Fatalf("nettest: %s printed no %q line (does TestMain call nettest.MaybeRunHelper?):\n%s",
			what, key, p.Output())
	}
	return line
}

func lastLineWith(out, prefix string) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return lines[i]
		}
	}
	return ""
}
