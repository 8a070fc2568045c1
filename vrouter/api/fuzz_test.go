package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/api/apitest"
)

// fuzzRoutes are the API's routes with the method they are served under,
// and a few neighbours they are not: {x} is replaced by fuzzed segments.
var fuzzRoutes = []struct{ method, path string }{
	{"GET", "/v1/status"},
	{"GET", "/v1/networks"},
	{"PUT", "/v1/networks/{x}/{x}"},
	{"GET", "/v1/networks/{x}/{x}"},
	{"DELETE", "/v1/networks/{x}/{x}"},
	{"GET", "/v1/ports"},
	{"PUT", "/v1/ports/{x}"},
	{"GET", "/v1/ports/{x}"},
	{"DELETE", "/v1/ports/{x}"},
	{"GET", "/v1/pods"},
	{"PUT", "/v1/pods/{x}/{x}"},
	{"GET", "/v1/pods/{x}/{x}"},
	{"DELETE", "/v1/pods/{x}/{x}"},
	{"GET", "/v1/pods/{x}/{x}/network-status"},
	{"POST", "/v1/gc"},
	{"GET", "/v1/routes"},
	{"PUT", "/v1/routes"},
	{"DELETE", "/v1/routes/{x}/{x}/{x}"},
	{"GET", "/v1/vifs"},
	{"GET", "/v1/rt/{x}/{x}"},
	{"GET", "/v1/nh"},
	{"GET", "/v1/dropstats"},
	{"GET", "/v1/flows"},
	{"PATCH", "/v1/networks/{x}/{x}"}, // not served: 405
	{"BREW", "/v1/ports/{x}"},
	{"GET", "/{x}"},
	{"GET", "/v1/policies"},
	{"PUT", "/v1/policies"},
}

var fuzzContentTypes = []string{"", "application/json", "application/json; charset=utf-8", "text/plain",
	"application/json; charset", "multipart/form-data; boundary=x", "\x00"}

// fuzzSeeds are bodies a hostile or broken client sends.
var fuzzSeeds = []string{
	`{"namespace":"default","name":"vn-left-1","cidr":"198.18.10.0/24"}`,
	`{"id":"c1/eth0","network":"default/vn-left-1","hostIfName":"xvr1","ip":"198.18.10.7","mac":"02:00:00:00:00:07"}`,
	`{"network":"default/vn-left-1","prefix":"198.18.10.99/32","nextHop":{"type":"tunnel","node":"198.18.200.2","label":1002}}`,
	`{"validAttachments":[{"containerID":"c1","ifname":"eth0"}]}`,
	`{"namespace":"default","name":"p","annotations":{"k8s.v1.cni.cncf.io/networks":"vn-left-1"}}`,
	`{}`, `[]`, `null`, `"x"`, `1e999`, `{"cidr":"198.18.10.0/33"}`, `{"ip":"::1"}`, `{"mac":"ff:ff:ff:ff:ff:ff"}`,
	`{"vrf":4294967296}`, `{"name":"\u0000"}`, `{"a":1}`, `{} {}`, `{"cidr":`, "\xff\xfe", strings.Repeat("[", 10000),
	`{"validAttachments":null}`, `{"nextHop":{"type":"ecmp"}}`, `{"id":"../../etc/passwd"}`,
}

// policySeeds are bodies for PUT /v1/policies, good and bad.
var policySeeds = []string{
	`{"enforce":true,"interfaces":[{"pod":{"namespace":"x","name":"a"},"network":"default/cluster-wide-default",` +
		`"policy":{"ingress":true,"ingressRules":[{"policy":"NetworkPolicy x/p","peers":[{"cidr":"198.18.0.0/16","except":["198.18.1.0/24"]}],` +
		`"ports":[{"protocol":"TCP","port":80,"endPort":90}]}]}}]}`,
	`{"interfaces":[{"pod":{"namespace":"x","name":"a"},"network":"n/m","policy":{"egress":true,"egressRules":[{"peers":[{"cidr":"198.18.0.0/33"}]}]}}]}`,
	`{"interfaces":[{"policy":{"ingressRules":[{"ports":[{"protocol":"ICMP","port":70000}]}]}}]}`,
	`{"enforce":"yes"}`, `{"interfaces":{}}`,
}

// FuzzAPIRequest sends fuzzed requests (route, path segments, content type,
// body, optionally beyond the 1 MiB limit) to every endpoint of the server
// over the in-memory fake backend: each answer is a JSON 2xx/4xx, never a
// 5xx (the fake returns no internal errors, so a 500 is a server bug or a
// recovered panic) and never a redirect; then the server still answers a
// good request.
func FuzzAPIRequest(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(uint8(i), uint8(i), "default", "vn-left-1", []byte(s), false)
	}
	f.Add(uint8(6), uint8(0), "c1", "eth0%2F..", []byte(fuzzSeeds[1]), true)
	f.Add(uint8(25), uint8(1), "..", "//", []byte(nil), false)
	for _, s := range policySeeds {
		f.Add(uint8(27), uint8(1), "", "", []byte(s), false)
	}
	h := api.NewServer(apitest.NewBackend(), slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, route, ctype uint8, seg1, seg2 string, body []byte, huge bool) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		segs := []string{seg1, seg2, seg1 + "/" + seg2}
		n := 0
		path := rt.path
		for strings.Contains(path, "{x}") {
			path = strings.Replace(path, "{x}", segs[n%len(segs)], 1)
			n++
		}
		if huge {
			body = bytes.Repeat(append(body, ' '), api.MaxBodyBytes/(len(body)+1)+1)
		}
		code, out := serveFuzzed(t, h, rt.method, path, fuzzContentTypes[int(ctype)%len(fuzzContentTypes)], body)
		if code >= 500 || code < 200 || code >= 300 && code < 400 {
			t.Fatalf("%s %q (%d body bytes) answered %d: %s", rt.method, path, len(body), code, out)
		}
		if huge && (rt.method == "PUT" || rt.method == "POST") && code == http.StatusOK {
			t.Fatalf("%s %q with a %d-byte body answered 200", rt.method, path, len(body))
		}
		if code, out := serveFuzzed(t, h, "GET", "/v1/status", "", nil); code != http.StatusOK {
			t.Fatalf("status after %s %q: %d %s", rt.method, path, code, out)
		}
	})
}

// serveFuzzed serves one request built without the checks of
// http.NewRequest (any path, any method token) and returns its status and
// body; any answer but 204 must be JSON.
func serveFuzzed(t *testing.T, h http.Handler, method, path, ctype string, body []byte) (int, string) {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: "xvrd", Path: path}
	if p, err := url.PathUnescape(path); err == nil {
		u.Path, u.RawPath = p, path // the escaped form is what a client sends
	}
	r := httptest.NewRequest("GET", "http://xvrd/", bytes.NewReader(body))
	r.Method, r.URL, r.RequestURI = method, u, u.RequestURI()
	r.ContentLength = int64(len(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusNoContent && (res.Header.Get("Content-Type") != "application/json" || !json.Valid(out)) {
		t.Fatalf("%s %q answered %d with %q %q, want JSON", method, path, res.StatusCode, res.Header.Get("Content-Type"), out)
	}
	return res.StatusCode, string(out)
}

// FuzzAPIWire writes fuzzed bytes as they come onto a connection of the
// real http.Server on a unix socket (malformed request lines, headers,
// chunking, pipelining): every response it gets is below 500 (or net/http's
// 505 for an unknown HTTP version), the server
// closes or answers within a bounded time, and it still serves a good
// request on a new connection.
func FuzzAPIWire(f *testing.F) {
	for _, s := range []string{
		"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
		"PUT /v1/networks/default/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{}",
		"PUT /v1/networks/default/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"PUT /v1/ports/a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{",
		"GET /v1/../../etc HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/vifs HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/9.9\r\n\r\n", "\x00\x01\x02", "GET " + strings.Repeat("a", 70000) + " HTTP/1.1\r\n\r\n",
		"POST /v1/gc HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
		"GET /v1/status HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 5000) + "\r\n",
	} {
		f.Add([]byte(s))
	}
	sock := apitest.Serve(f, apitest.NewBackend())
	c := api.NewClient(sock)
	f.Cleanup(c.Close)
	f.Fuzz(func(t *testing.T, raw []byte) {
		conn, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(raw); err != nil {
			t.Logf("write: %v", err) // the server may close on a bad request before reading it all
		}
		if err := conn.(*net.UnixConn).CloseWrite(); err != nil {
			t.Logf("close write: %v", err)
		}
		checkResponses(t, conn)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Status(ctx); err != nil {
			t.Fatalf("status after %q: %v", raw, err)
		}
	})
}

// checkResponses reads conn to EOF and fails t on a status line of 500 or
// more, or when the server neither answers nor closes in time.
func checkResponses(t *testing.T, conn net.Conn) {
	t.Helper()
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "HTTP/1.1 ")
		if !ok || len(rest) < 3 {
			continue
		}
		// 505 and 501 are net/http's own answers, before any handler runs,
		// to an unknown HTTP version and to a transfer coding it does not
		// implement (RFC 9112 6.1: "Transfer-Encoding:" with an empty or
		// unknown value): protocol refusals, not server failures.
		if code, err := strconv.Atoi(rest[:3]); err == nil && code >= 500 &&
			code != http.StatusHTTPVersionNotSupported && code != http.StatusNotImplemented { // no handler of ours answers 501
			t.Fatalf("response %q", line)
		}
	}
	var ne net.Error
	if err := sc.Err(); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server neither answered nor closed in 10 s: %v", err)
	} else if err != nil {
		t.Logf("reading responses: %v", err) // a reset is the server refusing the bytes
	}
}
