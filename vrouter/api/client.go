package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxReplyBytes bounds what the client reads of one answer.
const maxReplyBytes = 64 << 20

// Client talks to xvrd's local API over its unix socket. It is safe for
// concurrent use. Deadlines come from the context of each call; a call
// whose context has none waits as long as xvrd takes.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the xvrd listening on socket
// (DefaultSocket if empty). It does not connect until the first call.
func NewClient(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:       4,
		DisableCompression: true,
	}
	hc := &http.Client{
		Transport: tr,
		// The API never redirects; a redirect is an error, not a hop.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{socket: socket, hc: hc}
}

// Socket is the path the client connects to.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// IgnoreNotFound returns nil for a 404 *Error and err otherwise, for callers
// that treat deleting a missing object as done.
func IgnoreNotFound(err error) error {
	if IsNotFound(err) {
		return nil
	}
	return err
}

// Status returns xvrd's self-description.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// ApplyNetwork creates or updates a network and returns it as stored.
func (c *Client) ApplyNetwork(ctx context.Context, n Network) (Network, error) {
	var out Network
	return out, c.do(ctx, http.MethodPut, networkPath(n.Namespace, n.Name), n, &out)
}

// DeleteNetwork deletes a network; a missing one is a 404 *Error (see IgnoreNotFound).
func (c *Client) DeleteNetwork(ctx context.Context, namespace, name string) error {
	return c.do(ctx, http.MethodDelete, networkPath(namespace, name), nil, nil)
}

// GetNetwork returns one network.
func (c *Client) GetNetwork(ctx context.Context, namespace, name string) (Network, error) {
	var out Network
	return out, c.do(ctx, http.MethodGet, networkPath(namespace, name), nil, &out)
}

// ListNetworks returns every network.
func (c *Client) ListNetworks(ctx context.Context) ([]Network, error) {
	var out []Network
	return out, c.do(ctx, http.MethodGet, "/v1/networks", nil, &out)
}

// ApplyPort creates or updates a port and returns it as stored.
func (c *Client) ApplyPort(ctx context.Context, p Port) (Port, error) {
	var out Port
	return out, c.do(ctx, http.MethodPut, portPath(p.ID), p, &out)
}

// DeletePort deletes a port; a missing one is a 404 *Error (see IgnoreNotFound).
func (c *Client) DeletePort(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, portPath(id), nil, nil)
}

// GetPort returns one port.
func (c *Client) GetPort(ctx context.Context, id string) (Port, error) {
	var out Port
	return out, c.do(ctx, http.MethodGet, portPath(id), nil, &out)
}

// ListPorts returns every port.
func (c *Client) ListPorts(ctx context.Context) ([]Port, error) {
	var out []Port
	return out, c.do(ctx, http.MethodGet, "/v1/ports", nil, &out)
}

// Policies returns the node's network policy.
func (c *Client) Policies(ctx context.Context) (Policies, error) {
	var out Policies
	return out, c.do(ctx, http.MethodGet, "/v1/policies", nil, &out)
}

// SetPolicies replaces the node's network policy.
func (c *Client) SetPolicies(ctx context.Context, p Policies) error {
	var out Policies
	return c.do(ctx, http.MethodPut, "/v1/policies", p, &out)
}

// Flows lists the flow table.
func (c *Client) Flows(ctx context.Context) ([]Flow, error) {
	var out []Flow
	return out, c.do(ctx, http.MethodGet, "/v1/flows", nil, &out)
}

// ApplyPod creates or replaces what xvrd knows of a pod (its annotations).
func (c *Client) ApplyPod(ctx context.Context, p Pod) (Pod, error) {
	var out Pod
	return out, c.do(ctx, http.MethodPut, podPath(p.Namespace, p.Name), p, &out)
}

// DeletePod forgets a pod; a missing one is a 404 *Error (see IgnoreNotFound).
func (c *Client) DeletePod(ctx context.Context, namespace, name string) error {
	return c.do(ctx, http.MethodDelete, podPath(namespace, name), nil, nil)
}

// GetPod returns one pod.
func (c *Client) GetPod(ctx context.Context, namespace, name string) (Pod, error) {
	var out Pod
	return out, c.do(ctx, http.MethodGet, podPath(namespace, name), nil, &out)
}

// ListPods returns every pod xvrd knows.
func (c *Client) ListPods(ctx context.Context) ([]Pod, error) {
	var out []Pod
	return out, c.do(ctx, http.MethodGet, "/v1/pods", nil, &out)
}

// PodNetworkStatus returns the pod's network-status entries, eth0 first.
func (c *Client) PodNetworkStatus(ctx context.Context, namespace, name string) ([]NetworkStatus, error) {
	var out []NetworkStatus
	return out, c.do(ctx, http.MethodGet, podPath(namespace, name)+"/network-status", nil, &out)
}

// PublishNetworkStatus asks xvrd to publish the pod's network-status (into
// the pod's annotation, with Kubernetes) and returns it.
func (c *Client) PublishNetworkStatus(ctx context.Context, namespace, name string) ([]NetworkStatus, error) {
	var out []NetworkStatus
	return out, c.do(ctx, http.MethodPost, podPath(namespace, name)+"/network-status", nil, &out)
}

// GC deletes the CNI-made ports not listed as valid and says which.
func (c *Client) GC(ctx context.Context, req GCRequest) (GCResult, error) {
	var out GCResult
	return out, c.do(ctx, http.MethodPost, "/v1/gc", req, &out)
}

func podPath(namespace, name string) string {
	return "/v1/pods/" + esc(namespace) + "/" + esc(name)
}

// ApplyRoute creates or updates a static route and returns it as stored.
func (c *Client) ApplyRoute(ctx context.Context, r Route) (Route, error) {
	var out Route
	return out, c.do(ctx, http.MethodPut, "/v1/routes", r, &out)
}

// DeleteRoute deletes the static route for prefix in network ("namespace/name");
// a missing one is a 404 *Error (see IgnoreNotFound).
func (c *Client) DeleteRoute(ctx context.Context, network, prefix string) error {
	p, err := routePath(network, prefix)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil)
}

// ListRoutes returns every static route.
func (c *Client) ListRoutes(ctx context.Context) ([]Route, error) {
	var out []Route
	return out, c.do(ctx, http.MethodGet, "/v1/routes", nil, &out)
}

// Vifs returns the forwarder's interfaces with their counters.
func (c *Client) Vifs(ctx context.Context) ([]Vif, error) {
	var out []Vif
	return out, c.do(ctx, http.MethodGet, "/v1/vifs", nil, &out)
}

// RouteTable returns the forwarding table of network ("namespace/name").
func (c *Client) RouteTable(ctx context.Context, network string) ([]RouteEntry, error) {
	ns, name, ok := strings.Cut(network, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return nil, BadRequest("network %q is not namespace/name", network)
	}
	var out []RouteEntry
	return out, c.do(ctx, http.MethodGet, "/v1/rt/"+esc(ns)+"/"+esc(name), nil, &out)
}

// NextHops returns the forwarder's next hops.
func (c *Client) NextHops(ctx context.Context) ([]NextHop, error) {
	var out []NextHop
	return out, c.do(ctx, http.MethodGet, "/v1/nh", nil, &out)
}

// DropStats returns the drop counters by reason.
func (c *Client) DropStats(ctx context.Context) ([]DropStat, error) {
	var out []DropStat
	return out, c.do(ctx, http.MethodGet, "/v1/dropstats", nil, &out)
}

func esc(s string) string { return url.PathEscape(s) }

func networkPath(namespace, name string) string {
	return "/v1/networks/" + esc(namespace) + "/" + esc(name)
}

// portPath escapes the whole ID, '/' included, so that the mux never
// cleans or redirects it; the server unescapes it back.
func portPath(id string) string { return "/v1/ports/" + esc(id) }

func routePath(network, prefix string) (string, error) {
	ns, name, ok := strings.Cut(network, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", BadRequest("network %q is not namespace/name", network)
	}
	return "/v1/routes/" + esc(ns) + "/" + esc(name) + "/" + esc(prefix), nil
}

// do sends one request with in (if not nil) as its JSON body and decodes
// the answer into out (if not nil). A non-2xx answer is returned as *Error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	req, err := c.request(ctx, method, path, in)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return fmt.Errorf("reading xvrd's answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return replyError(resp.StatusCode, body)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decoding xvrd's answer to %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) request(ctx context.Context, method, path string, in any) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://xvrd"+path, body)
	if err != nil {
		return nil, fmt.Errorf("making request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// replyError makes the *Error for a non-2xx answer: the server's message
// when the body is {"error":...}, else the status text and a bit of the body.
func replyError(status int, body []byte) error {
	var e Error
	if json.Unmarshal(body, &e) == nil && e.Msg != "" {
		return &Error{Status: status, Msg: e.Msg}
	}
	msg := http.StatusText(status)
	if s := strings.TrimSpace(string(body)); s != "" {
		msg += ": " + truncate(s, 200)
	}
	return &Error{Status: status, Msg: fmt.Sprintf("xvrd answered %d %s", status, msg)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// transportError names the socket and drops *url.Error's "Put
// \"http://xvrd/...\":" prefix, which names a host that does not exist;
// the cause stays wrapped.
func (c *Client) transportError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return fmt.Errorf("cannot reach xvrd at %s: %w", c.socket, oe.Err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("xvrd at %s: %w", c.socket, err)
}
