package nettest

import (
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
)

// MaxNameLen is the longest interface name Linux accepts (IFNAMSIZ - 1).
const MaxNameLen = 15

var nameSeq atomic.Uint64

// RequireRoot skips t unless the process runs as root, and fails t when the
// `ip` tool (iproute2) is missing: CI installs it, so its absence is a bug.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("nettest: needs root (network namespaces, veth, XDP); run the tests as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("nettest: iproute2 `ip` not found: %v", err)
	}
}

// Name returns a name unique to this process and call, usable for a network
// namespace and for a link: prefix, the pid and a counter (both base 36).
// It fails t when the result would exceed MaxNameLen or prefix holds a
// character that is not a lowercase letter, digit or '-'.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	if !validPrefix(prefix) {
		t.Fatalf("nettest: bad name prefix %q: use [a-z0-9-]", prefix)
	}
	name := prefix + strconv.FormatInt(int64(os.Getpid()), 36) + "-" +
		strconv.FormatUint(nameSeq.Add(1), 36)
	if len(name) > MaxNameLen {
		t.Fatalf("nettest: name %q longer than %d bytes: shorten prefix %q", name, MaxNameLen, prefix)
	}
	return name
}

func validPrefix(p string) bool {
	for _, c := range []byte(p) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
