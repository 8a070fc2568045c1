package kubetest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/xvr-project/xvr/internal/nettest"
)

// egressProxy is the HTTP CONNECT proxy kube-apiserver's "cluster" egress
// selector (--egress-selector-config-file) sends its connections to nodes
// through (kubelet: logs, exec, port-forward; pod and service proxies). A
// connection to a Node's address that StartKubelet routed (its name,
// which kube-apiserver prefers, and its NodeIP) goes to
// 127.0.0.1 at the same port inside the kubelet's namespace (or the
// test's), where kubelet listens; any other goes where it asked, from the
// test's namespace. So an API server on the test's 127.0.0.1 reaches
// kubelets in node namespaces without an interface of the test's
// namespace, and no kubelet listens on an address of the machine.
type egressProxy struct {
	ln net.Listener

	mu     sync.Mutex
	routes map[string]string // node name or IP -> its kubelet's netns name ("": the test's)
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// egressConfig is the EgressSelectorConfiguration for a proxy on socket.
func egressConfig(socket string) string {
	return fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, socket)
}

// startEgressProxy serves on the unix socket dir/egress.sock and writes
// the selector config to dir/egress.yaml, whose path it returns.
func startEgressProxy(dir string) (*egressProxy, string, error) {
	sock := filepath.Join(dir, "egress.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, "", fmt.Errorf("kubetest: egress proxy: %w", err)
	}
	cfg := filepath.Join(dir, "egress.yaml")
	if err := os.WriteFile(cfg, []byte(egressConfig(sock)), 0o600); err != nil {
		ln.Close()
		return nil, "", fmt.Errorf("kubetest: %w", err)
	}
	p := &egressProxy{ln: ln, routes: map[string]string{}, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, cfg, nil
}

// route makes connections to each host go to 127.0.0.1 in netns.
func (p *egressProxy) route(netns string, hosts ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range hosts {
		p.routes[h] = netns
	}
}

// unroute removes the hosts' routes.
func (p *egressProxy) unroute(hosts ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range hosts {
		delete(p.routes, h)
	}
}

func (p *egressProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c, true) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *egressProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add && p.closed {
		return false
	}
	if add {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

// serve answers one CONNECT and relays the tunnel.
func (p *egressProxy) serve(in net.Conn) {
	defer p.wg.Done()
	defer p.track(in, false)
	defer in.Close()
	br := bufio.NewReader(in)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		fmt.Fprintf(in, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	out, err := p.dial(req.Host)
	if err != nil {
		fmt.Fprintf(in, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\n%v", err)
		return
	}
	if !p.track(out, true) {
		out.Close()
		return
	}
	defer p.track(out, false)
	defer out.Close()
	if _, err := fmt.Fprintf(in, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, br); closeWrite(out); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); closeWrite(in); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// dial connects to hostport inside the namespace routed for its host, or
// from the test's namespace.
func (p *egressProxy) dial(hostport string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	netns, ok := p.routes[host]
	p.mu.Unlock()
	switch {
	case !ok:
		return net.Dial("tcp", hostport)
	case netns == "":
		return net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	default:
		return (&nettest.NS{Name: netns}).DialTCP(net.JoinHostPort("127.0.0.1", port))
	}
}

// close stops the proxy and cuts its tunnels.
func (p *egressProxy) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
