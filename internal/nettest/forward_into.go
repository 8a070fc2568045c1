package nettest

import (
	"fmt"
	"net"
	"testing"
)

// ForwardTCPInto is ForwardTCPTo the other way round: it listens on listen
// in the test process's own namespace and relays each connection to
// target inside n, so a server of the test's namespace (kube-apiserver)
// reaches a daemon in a node namespace (kubelet, for logs and exec). An
// empty target is the listener's own address (its port when listen's is
// 0). It is closed at t.Cleanup (or earlier by Close).
func (n *NS) ForwardTCPInto(t testing.TB, listen, target string) *Forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("nettest: %v", err)
	}
	if target == "" {
		target = ln.Addr().String()
	}
	name := n.Name
	f := &Forwarder{ln: ln, addr: target, conns: map[net.Conn]bool{}, dial: func() (net.Conn, error) { return dialIn(name, target) }}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.Close)
	return f
}

// Addr is the address the forwarder listens on.
func (f *Forwarder) Addr() net.Addr { return f.ln.Addr() }

// dialIn connects to addr from inside the named namespace, as listenIn
// listens there.
func dialIn(name, addr string) (net.Conn, error) {
	var c net.Conn
	err := InNetns(name, func() (err error) {
		c, err = net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("dialing %s in netns %s: %w", addr, name, err)
		}
		return nil
	})
	return c, err
}

// DialTCP connects to addr from inside n; the connection keeps n's
// network namespace whatever goroutine uses it.
func (n *NS) DialTCP(addr string) (net.Conn, error) { return dialIn(n.Name, addr) }
