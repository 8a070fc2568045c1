package nettest

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MaxRawFrames bounds one RawSend.
const MaxRawFrames = 1_000_000

// TCPTransfer moves size bytes of seeded pseudo-random data over one TCP
// connection from a tcp-source helper in src to a tcp-sink helper listening
// on dst:port in n, and fails t unless both ends report the same byte count
// and SHA-256. It returns the sink's and the source's result lines
// ("bytes=N sha256=HEX").
func (n *NS) TCPTransfer(t testing.TB, src *NS, dst netip.Addr, port, size int) (sink, source string) {
	t.Helper()
	addr := netip.AddrPortFrom(dst, uint16(port)).String()
	sp := n.StartHelper(t, "tcp-sink", addr)
	cp := src.StartHelper(t, "tcp-source", addr, strconv.Itoa(size), "1")
	source = waitResult(t, cp, "tcp-source "+addr, "bytes=", sinkDeadline)
	sink = waitResult(t, sp, "tcp-sink "+addr, "bytes=", 10*time.Second)
	if sink != source {
		t.Fatalf("nettest: TCP transfer to %s: sink got %q, source sent %q", addr, sink, source)
	}
	if want := fmt.Sprintf("bytes=%d ", size); !strings.HasPrefix(sink, want) {
		t.Fatalf("nettest: TCP transfer to %s: %q, want %d bytes", addr, sink, size)
	}
	return sink, source
}

// RawSend sends count (at most MaxRawFrames) frames of kind out of ifname in
// n through an AF_PACKET socket, addressed to dst where the kind has a
// destination MAC, and returns how many the kernel accepted. Kinds: random,
// truncated-eth, truncated-ip, bad-ihl, bad-total-length, ipv6,
// unknown-ethertype, mixed (see FrameKinds).
func (n *NS) RawSend(t testing.TB, ifname string, dst net.HardwareAddr, count int, kind string) int {
	t.Helper()
	p := n.StartHelper(t, "raw-send", ifname, strconv.Itoa(count), kind, dst.String())
	line := waitResult(t, p, "raw-send "+kind+" on "+ifname, "sent=", rawSendLimit+10*time.Second)
	num, _, _ := strings.Cut(strings.TrimPrefix(line, "sent="), " ")
	sent, err := strconv.Atoi(num)
	if err != nil {
		t.Fatalf("nettest: raw-send result %q: %v", line, err)
	}
	return sent
}
