package nettest

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"

	"github.com/vishvananda/netns"
)

// Forwarder accepts TCP connections on an address inside a namespace and
// relays each to the same address in the test process's own namespace. It
// lets a daemon in a node namespace reach a server on the test's 127.0.0.1
// (the Kubernetes API server) under the very address its certificate names.
type Forwarder struct {
	ln   net.Listener
	addr string // where it relays to, in the test's namespace
	// dial, if set, opens the relayed connection instead of net.Dial of
	// addr (ForwardTCPInto: inside a namespace).
	dial func() (net.Conn, error)

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// ForwardTCP listens on addr ("127.0.0.1:6443") inside n and relays to addr
// outside; it is closed at t.Cleanup (or earlier by Close).
func (n *NS) ForwardTCP(t testing.TB, addr string) *Forwarder {
	t.Helper()
	return n.ForwardTCPTo(t, addr, addr)
}

// ForwardTCPTo listens on listen inside n and relays to target outside: a
// server of the test made reachable at an address of a test network.
func (n *NS) ForwardTCPTo(t testing.TB, listen, target string) *Forwarder {
	t.Helper()
	ln, err := listenIn(n.Name, listen)
	if err != nil {
		t.Fatalf("nettest: %v", err)
	}
	f := &Forwarder{ln: ln, addr: target, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.Close)
	return f
}

// listenIn opens a TCP listener inside the named namespace. The socket keeps
// its namespace.
func listenIn(name, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(name, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s in netns %s: %w", addr, name, err)
		}
		return nil
	})
	return ln, err
}

// InNetns runs f on a new locked OS thread switched into the named
// namespace and waits for it; sockets f makes keep that namespace and may
// be used from any goroutine. The thread is put back, or left locked (and
// so discarded by the runtime) if that fails.
func InNetns(name string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- fmt.Errorf("reading the thread's netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("opening netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("entering netns %s: %w", name, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		done <- ferr
	}()
	return <-done
}

func (f *Forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c, true) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go f.relay(c)
	}
}

func (f *Forwarder) track(c net.Conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add && f.closed {
		return false
	}
	if add {
		f.conns[c] = true
	} else {
		delete(f.conns, c)
	}
	return true
}

func (f *Forwarder) relay(in net.Conn) {
	defer f.wg.Done()
	defer in.Close()
	dial := f.dial
	if dial == nil {
		dial = func() (net.Conn, error) { return net.Dial("tcp", f.addr) }
	}
	out, err := dial()
	if err != nil {
		return
	}
	if !f.track(out, true) {
		out.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src) // ends when either side closes
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	go pipe(out, in)
	go pipe(in, out)
	wg.Wait()
	out.Close()
	f.track(in, false)
	f.track(out, false)
}

// Close stops accepting and cuts every relayed connection: to the daemon
// inside, the server is gone.
func (f *Forwarder) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	_ = f.ln.Close() // fails only when already closed
	f.wg.Wait()
}
