package nettest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawFrame: IFNAME COUNT HEXFRAME. Sends the one frame COUNT times through
// an AF_PACKET socket and prints "sent=N failed=M".
func rawFrame(args []string, out io.Writer) error {
	if len(args) != 3 {
		return errors.New("usage: raw-frame IFNAME COUNT HEXFRAME")
	}
	count, err := strconv.Atoi(args[1])
	if err != nil || count < 0 || count > MaxRawFrames {
		return fmt.Errorf("bad COUNT %q (0..%d)", args[1], MaxRawFrames)
	}
	frame, err := hex.DecodeString(args[2])
	if err != nil || len(frame) < ethHdrLen || len(frame) > maxFrame {
		return fmt.Errorf("bad HEXFRAME (%d bytes, want %d..%d): %v", len(frame), ethHdrLen, maxFrame, err)
	}
	ifi, err := net.InterfaceByName(args[0])
	if err != nil {
		return fmt.Errorf("interface %s: %w", args[0], err)
	}
	sent, failed, err := sendFrames(ifi.Index, count, func() []byte { return frame })
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "sent=%d failed=%d\n", sent, failed)
	return err
}

// SendFrame sends frame (a whole Ethernet frame, as built by the test)
// count times out of ifname in n and returns how many were sent.
func (n *NS) SendFrame(t testing.TB, ifname string, frame []byte, count int) int {
	t.Helper()
	p := n.StartHelper(t, "raw-frame", ifname, strconv.Itoa(count), hex.EncodeToString(frame))
	line := waitResult(t, p, "raw-frame on "+ifname, "sent=", rawSendLimit+10*time.Second)
	num, _, _ := strings.Cut(strings.TrimPrefix(line, "sent="), " ")
	sent, err := strconv.Atoi(num)
	if err != nil {
		t.Fatalf("nettest: raw-frame result %q: %v", line, err)
	}
	return sent
}
