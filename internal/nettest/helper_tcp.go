package nettest

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"time"
)

const (
	sinkDeadline = 120 * time.Second // whole life of a tcp-sink or tcp-source
	dialRetryFor = 10 * time.Second
	maxTransfer  = 1 << 34 // 16 GiB
)

// tcpSink: ADDR:PORT. Accepts one connection, reads to EOF, prints
// "bytes=N sha256=HEX".
func tcpSink(args []string, out io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: tcp-sink ADDR:PORT")
	}
	deadline := time.Now().Add(sinkDeadline)
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	if err := ln.(*net.TCPListener).SetDeadline(deadline); err != nil {
		return fmt.Errorf("listener deadline: %w", err)
	}
	conn, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("conn deadline: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, conn)
	if err != nil {
		return fmt.Errorf("read after %d bytes: %w", n, err)
	}
	return printDigest(out, n, h)
}

// tcpSource: ADDR:PORT BYTES SEED. Connects (retrying), writes BYTES of
// PCG(SEED) data, prints "bytes=N sha256=HEX" of what it wrote.
func tcpSource(args []string, out io.Writer) error {
	if len(args) != 3 {
		return errors.New("usage: tcp-source ADDR:PORT BYTES SEED")
	}
	size, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || size < 0 || size > maxTransfer {
		return fmt.Errorf("bad BYTES %q (0..%d)", args[1], int64(maxTransfer))
	}
	seed, err := strconv.ParseUint(args[2], 10, 64)
	if err != nil {
		return fmt.Errorf("bad SEED %q: %w", args[2], err)
	}
	conn, err := dialRetry(args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(sinkDeadline)); err != nil {
		return fmt.Errorf("conn deadline: %w", err)
	}
	h := sha256.New()
	if err := writeSeeded(io.MultiWriter(conn, h), size, seed); err != nil {
		return err
	}
	if err := conn.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return printDigest(out, size, h)
}

func dialRetry(addr string) (net.Conn, error) {
	stop := time.Now().Add(dialRetryFor)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn, nil
		}
		if time.Now().After(stop) {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeSeeded writes size bytes from a PCG stream seeded with seed.
func writeSeeded(w io.Writer, size int64, seed uint64) error {
	rng := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	buf := make([]byte, 64<<10)
	for done := int64(0); done < size; {
		for i := 0; i+8 <= len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		chunk := buf[:min(int64(len(buf)), size-done)]
		if _, err := w.Write(chunk); err != nil {
			return fmt.Errorf("write after %d bytes: %w", done, err)
		}
		done += int64(len(chunk))
	}
	return nil
}

func printDigest(out io.Writer, n int64, h hash.Hash) error {
	_, err := fmt.Fprintf(out, "bytes=%d sha256=%x\n", n, h.Sum(nil))
	return err
}
