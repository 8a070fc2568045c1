package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(handler("pod-a"))
	defer srv.Close()
	for path, want := range map[string]string{"/": "pod-a\n", "/healthz": "ok\n"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("GET %s = %d %q, want 200 %q", path, resp.StatusCode, body, want)
		}
	}
	if resp, err := http.Get(srv.URL + "/other"); err != nil || resp.StatusCode != 404 {
		t.Errorf("GET /other = %v, %v; want 404", resp, err)
	}
}

func TestEcho(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go echo(pc)
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || !strings.EqualFold(string(buf[:n]), "ping") {
		t.Errorf("echo = %q, %v", buf[:n], err)
	}
}

func TestGet(t *testing.T) {
	srv := httptest.NewServer(handler("pod-b"))
	defer srv.Close()
	var b strings.Builder
	if err := get(&b, srv.URL+"/"); err != nil || b.String() != "pod-b\n" {
		t.Fatalf("get: %q, %v", b.String(), err)
	}
	if err := get(io.Discard, srv.URL+"/nope"); err == nil {
		t.Fatal("get of a 404: no error")
	}
}
