// Command test-app is the workload of the project's Kubernetes tests and
// demo (image xvr.local/test-app, scripts/images.sh): an HTTP server that
// answers GET / with the pod's hostname and GET /healthz with "ok", and a
// UDP echo on the same port number, so one Service port name serves both
// protocols. Built static (CGO_ENABLED=0). As a client, it GETs a URL
// (its host resolved with the pod's resolv.conf, Go's resolver) and
// prints the body, for tests that `kubectl exec` into a pod.
//
//	test-app [-port 8080]
//	test-app get URL
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		if err := get(os.Stdout, os.Args[2]); err != nil {
			log.Fatal(err)
		}
		return
	}
	port := flag.Int("port", 8080, "TCP (HTTP) and UDP (echo) `port`")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, ":"+strconv.Itoa(*port)); err != nil {
		log.Fatal(err)
	}
}

// get writes the body of GET url to w, bounded to 5 s.
func get(w io.Writer, url string) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

func run(ctx context.Context, addr string) error {
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	defer pc.Close()
	go echo(pc)
	srv := &http.Server{Addr: addr, Handler: handler(host), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Printf("test-app %s: HTTP and UDP echo on %s", host, addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handler answers / with host and /healthz with ok.
func handler(host string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, host) })
	return mux
}

// echo sends every datagram back to where it came from until pc closes.
func echo(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], from)
	}
}
