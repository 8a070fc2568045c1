package nettest

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// TestForwardTCPInto reaches a server inside a namespace from the test's
// own 127.0.0.1, at the same port.
func TestForwardTCPInto(t *testing.T) {
	RequireRoot(t)
	n := NewNS(t, "xvrfwd")
	ln, err := listenIn(n.Name, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("inside\n"))
	}()
	f := n.ForwardTCPInto(t, ln.Addr().String(), "")
	if f.Addr().String() != ln.Addr().String() {
		t.Fatalf("forwarder on %v, server on %v", f.Addr(), ln.Addr())
	}
	c, err := net.DialTimeout("tcp", f.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "inside\n" {
		t.Fatalf("read %q, %v", line, err)
	}
}
