package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// MaxBodyBytes is the largest request body the server reads.
const MaxBodyBytes = 1 << 20

// NewServer returns the HTTP handler that serves b: the /v1 routes listed in
// docs/api.md. Every answer is JSON; errors are {"error":"..."} with the
// status chosen by the backend's *Error (or 500 for any other error).
func NewServer(b Backend, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{b: b, log: log}
	mux := http.NewServeMux()
	s.routes(mux)
	return s.recoverer(s.logged(jsonFallback(mux)))
}

// server maps HTTP requests onto a Backend.
type server struct {
	b   Backend
	log *slog.Logger
}

func (s *server) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/networks", s.listNetworks)
	mux.HandleFunc("PUT /v1/networks/{namespace}/{name}", s.applyNetwork)
	mux.HandleFunc("GET /v1/networks/{namespace}/{name}", s.getNetwork)
	mux.HandleFunc("DELETE /v1/networks/{namespace}/{name}", s.deleteNetwork)
	mux.HandleFunc("GET /v1/ports", s.listPorts)
	mux.HandleFunc("PUT /v1/ports/{id...}", s.applyPort)
	mux.HandleFunc("GET /v1/ports/{id...}", s.getPort)
	mux.HandleFunc("DELETE /v1/ports/{id...}", s.deletePort)
	mux.HandleFunc("GET /v1/pods", s.listPods)
	mux.HandleFunc("PUT /v1/pods/{namespace}/{name}", s.applyPod)
	mux.HandleFunc("GET /v1/pods/{namespace}/{name}", s.getPod)
	mux.HandleFunc("DELETE /v1/pods/{namespace}/{name}", s.deletePod)
	mux.HandleFunc("GET /v1/pods/{namespace}/{name}/network-status", s.podNetworkStatus)
	mux.HandleFunc("POST /v1/pods/{namespace}/{name}/network-status", s.publishNetworkStatus)
	mux.HandleFunc("POST /v1/gc", s.gc)
	mux.HandleFunc("GET /v1/routes", s.listRoutes)
	mux.HandleFunc("PUT /v1/routes", s.applyRoute)
	mux.HandleFunc("DELETE /v1/routes/{namespace}/{name}/{prefix...}", s.deleteRoute)
	mux.HandleFunc("GET /v1/vifs", s.vifs)
	mux.HandleFunc("GET /v1/rt/{namespace}/{name}", s.routeTable)
	mux.HandleFunc("GET /v1/nh", s.nextHops)
	mux.HandleFunc("GET /v1/dropstats", s.dropStats)
	mux.HandleFunc("GET /v1/flows", s.flows)
	mux.HandleFunc("GET /v1/policies", s.policies)
	mux.HandleFunc("PUT /v1/policies", s.setPolicies)
}

func (s *server) policies(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, s.b.Policies(r.Context()), nil)
}

// setPolicies replaces the node's policy and answers it as now set.
func (s *server) setPolicies(w http.ResponseWriter, r *http.Request) {
	var p Policies
	if !s.decode(w, r, &p) {
		return
	}
	if err := s.b.SetPolicies(r.Context(), p); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	s.reply(w, r, s.b.Policies(r.Context()), nil)
}

func (s *server) flows(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, nonNil(s.b.Flows(r.Context())), nil)
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, s.b.Status(r.Context()), nil)
}

func (s *server) listNetworks(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, nonNil(s.b.ListNetworks(r.Context())), nil)
}

func (s *server) applyNetwork(w http.ResponseWriter, r *http.Request) {
	var n Network
	if !s.decode(w, r, &n) {
		return
	}
	if err := pathAgrees(&n.Namespace, r.PathValue("namespace"), "namespace"); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	if err := pathAgrees(&n.Name, r.PathValue("name"), "name"); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	n.VNName, n.Project, n.VRF, n.Gateway, n.DNS = "", "", 0, "", ""
	out, err := s.b.ApplyNetwork(r.Context(), n)
	s.reply(w, r, out, err)
}

func (s *server) getNetwork(w http.ResponseWriter, r *http.Request) {
	out, err := s.b.GetNetwork(r.Context(), r.PathValue("namespace"), r.PathValue("name"))
	s.reply(w, r, out, err)
}

func (s *server) deleteNetwork(w http.ResponseWriter, r *http.Request) {
	err := s.b.DeleteNetwork(r.Context(), r.PathValue("namespace"), r.PathValue("name"))
	s.reply(w, r, nil, err)
}

func (s *server) listPorts(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, nonNil(s.b.ListPorts(r.Context())), nil)
}

func (s *server) applyPort(w http.ResponseWriter, r *http.Request) {
	var p Port
	if !s.decode(w, r, &p) {
		return
	}
	if err := pathAgrees(&p.ID, r.PathValue("id"), "id"); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	p.Vif, p.State, p.PrefixLen, p.Gateway = 0, "", 0, ""
	out, err := s.b.ApplyPort(r.Context(), p)
	s.reply(w, r, out, err)
}

func (s *server) getPort(w http.ResponseWriter, r *http.Request) {
	out, err := s.b.GetPort(r.Context(), r.PathValue("id"))
	s.reply(w, r, out, err)
}

func (s *server) deletePort(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, nil, s.b.DeletePort(r.Context(), r.PathValue("id")))
}

func (s *server) listPods(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, nonNil(s.b.ListPods(r.Context())), nil)
}

func (s *server) applyPod(w http.ResponseWriter, r *http.Request) {
	var p Pod
	if !s.decode(w, r, &p) {
		return
	}
	if err := pathAgrees(&p.Namespace, r.PathValue("namespace"), "namespace"); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	if err := pathAgrees(&p.Name, r.PathValue("name"), "name"); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	out, err := s.b.ApplyPod(r.Context(), p)
	s.reply(w, r, out, err)
}

func (s *server) getPod(w http.ResponseWriter, r *http.Request) {
	out, err := s.b.GetPod(r.Context(), r.PathValue("namespace"), r.PathValue("name"))
	s.reply(w, r, out, err)
}

func (s *server) deletePod(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, nil, s.b.DeletePod(r.Context(), r.PathValue("namespace"), r.PathValue("name")))
}

func (s *server) podNetworkStatus(w http.ResponseWriter, r *http.Request) {
	out, err := s.b.PodNetworkStatus(r.Context(), r.PathValue("namespace"), r.PathValue("name"))
	s.reply(w, r, nonNil(out), err)
}

func (s *server) publishNetworkStatus(w http.ResponseWriter, r *http.Request) {
	out, err := s.b.PublishNetworkStatus(r.Context(), r.PathValue("namespace"), r.PathValue("name"))
	s.reply(w, r, nonNil(out), err)
}

func (s *server) gc(w http.ResponseWriter, r *http.Request) {
	var req GCRequest
	if !s.decode(w, r, &req) {
		return
	}
	out, err := s.b.GC(r.Context(), req)
	if out.Removed == nil {
		out.Removed = []string{}
	}
	s.reply(w, r, out, err)
}

func (s *server) listRoutes(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, nonNil(s.b.ListRoutes(r.Context())), nil)
}

func (s *server) applyRoute(w http.ResponseWriter, r *http.Request) {
	var rt Route
	if !s.decode(w, r, &rt) {
		return
	}
	out, err := s.b.ApplyRoute(r.Context(), rt)
	s.reply(w, r, out, err)
}

func (s *server) deleteRoute(w http.ResponseWriter, r *http.Request) {
	network := r.PathValue("namespace") + "/" + r.PathValue("name")
	s.reply(w, r, nil, s.b.DeleteRoute(r.Context(), network, r.PathValue("prefix")))
}

func (s *server) vifs(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, nonNil(s.b.Vifs(r.Context())), nil)
}

func (s *server) routeTable(w http.ResponseWriter, r *http.Request) {
	network := r.PathValue("namespace") + "/" + r.PathValue("name")
	out, err := s.b.RouteTable(r.Context(), network)
	s.reply(w, r, nonNil(out), err)
}

func (s *server) nextHops(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, nonNil(s.b.NextHops(r.Context())), nil)
}

func (s *server) dropStats(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, nonNil(s.b.DropStats(r.Context())), nil)
}

// nonNil makes a nil list encode as [] rather than null.
func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

// pathAgrees fills an empty body field from the path, or checks that the
// body's value is the path's.
func pathAgrees(body *string, path, field string) error {
	if *body == "" {
		*body = path
		return nil
	}
	if *body != path {
		return BadRequest("%s %q in the body does not match %q in the path", field, *body, path)
	}
	return nil
}

// decode reads exactly one JSON object of at most MaxBodyBytes into v,
// rejecting unknown fields; on failure it answers the request and returns false.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := checkContentType(r); err != nil {
		s.reply(w, r, nil, err)
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err = dec.Token(); errors.Is(err, io.EOF) {
			return true
		}
		err = errors.New("unexpected data after the JSON object")
	}
	s.reply(w, r, nil, bodyError(err))
	return false
}

// bodyError turns a decoding error into the *Error answered for it.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return Errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return BadRequest("empty request body")
	default:
		return BadRequest("invalid request body: %v", err)
	}
}

func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return Errorf(http.StatusUnsupportedMediaType, "content type %q is not application/json", ct)
	}
	return nil
}

// reply writes v as JSON with status 200, or err as {"error":...} with its
// status. A nil v with a nil err is answered 204 No Content.
func (s *server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		status := StatusOf(err)
		if status < 400 || status > 599 {
			status = http.StatusInternalServerError
		}
		if status >= 500 {
			s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeJSON(w, status, &Error{Msg: err.Error()})
		return
	}
	if v == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(&Error{Msg: fmt.Sprintf("encoding reply: %v", err)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// logged logs every request at debug level with its status and duration.
func (s *server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		s.log.Debug("api request", "method", r.Method, "path", r.URL.Path,
			"status", sw.Status(), "took", time.Since(start))
	})
}

// recoverer turns a panic in a handler into a logged 500 so that one bad
// request never takes xvrd down.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &StatusWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("api handler panicked", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if sw.Status() == 0 {
				writeJSON(sw, http.StatusInternalServerError, &Error{Msg: "internal error"})
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// StatusWriter remembers the status written through it (the server's log
// and panic recovery, and vrouter/metrics' request counts use it).
type StatusWriter struct {
	http.ResponseWriter
	status int
}

// Status is the status written so far, 0 before anything was.
func (w *StatusWriter) Status() int { return w.status }

// WriteHeader records status and passes it on.
func (w *StatusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

// Write records an implicit 200 and passes b on.
func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// jsonFallback makes the mux's own answers (404 and 405 for requests that
// match no route, redirects of unclean paths) JSON errors like every other
// answer. A redirect becomes a 404: API clients must name the clean path.
func jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(&fallbackWriter{ResponseWriter: w, r: r}, r)
	})
}

// fallbackWriter rewrites a non-JSON error or redirect into a JSON error and
// drops the body written after it.
type fallbackWriter struct {
	http.ResponseWriter
	r       *http.Request
	swallow bool
}

func (w *fallbackWriter) WriteHeader(status int) {
	h := w.Header()
	if status < 300 || h.Get("Content-Type") == "application/json" {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.swallow = true
	if status < 400 {
		status = http.StatusNotFound
		h.Del("Location")
	}
	h.Del("X-Content-Type-Options")
	msg := fmt.Sprintf("%s %s: %s", w.r.Method, w.r.URL.Path, strings.ToLower(http.StatusText(status)))
	writeJSON(w.ResponseWriter, status, &Error{Msg: msg})
}

func (w *fallbackWriter) Write(b []byte) (int, error) {
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *fallbackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Listen opens xvrd's unix socket at path, readable and writable by root
// only. It creates the parent directory (mode 0700) if needed and replaces a
// stale socket file left by a dead xvrd, but fails if a live server answers
// on path or if path is something other than a socket. The socket is created
// under umask 0177, so it is never reachable by others, not even briefly;
// the umask is process-wide, so call Listen before starting other work.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restricting socket mode: %w", err)
	}
	return l, nil
}

// removeStale removes path if it is a unix socket nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking socket path: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another xvrd is serving on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("probing existing socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}
