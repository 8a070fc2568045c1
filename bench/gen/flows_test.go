package gen

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/internal/nettest"
)

func flowFrame(t testing.TB) []byte {
	t.Helper()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	f, err := FrameUDP(64, mac, mac, netip.MustParseAddrPort("198.18.0.1:49152"), netip.MustParseAddrPort("198.18.0.2:9"))
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(f[ethHdrLen+ipv4HdrLen+6:], 0)
	return f
}

// flowOf reads back what flowCycle wrote: the source address's last byte,
// the source port, and whether the IPv4 checksum verifies.
func flowOf(f []byte) (last byte, port uint16, sumOK bool) {
	return f[ethHdrLen+15], binary.BigEndian.Uint16(f[udpSportOff:]), fold(sum16(f[ethHdrLen:ethHdrLen+ipv4HdrLen], 0)) == 0xffff
}

// Frame i carries flow i mod n: source port FlowPortBase + k mod
// MaxPortFlows, and past MaxPortFlows the next source address step.
func TestFlowCycle(t *testing.T) {
	frame := flowFrame(t)
	n := uint32(MaxPortFlows + 5)
	c := newFlowCycle(frame, n)
	want := map[uint64][2]int{ // frame index -> (address last byte, port)
		0:                {1, FlowPortBase},
		1:                {1, FlowPortBase + 1},
		MaxPortFlows - 1: {1, 65535},
		MaxPortFlows:     {1 ^ 1<<4, FlowPortBase},
		MaxPortFlows + 4: {1 ^ 1<<4, FlowPortBase + 4},
		uint64(n):        {1, FlowPortBase}, // the cycle starts again
		uint64(n) + 1:    {1, FlowPortBase + 1},
		2*uint64(n) - 1:  {1 ^ 1<<4, FlowPortBase + 4},
	}
	seen := map[[2]int]bool{}
	g := make([]byte, len(frame))
	for i := uint64(0); i < 2*uint64(n); i++ {
		copy(g, frame)
		c.write(g)
		last, port, ok := flowOf(g)
		if !ok {
			t.Fatalf("frame %d: IPv4 checksum does not verify", i)
		}
		if w, ok := want[i]; ok && (int(last) != w[0] || int(port) != w[1]) {
			t.Errorf("frame %d: source .%d port %d, want .%d port %d", i, last, port, w[0], w[1])
		}
		if i < uint64(n) {
			seen[[2]int{int(last), int(port)}] = true
		}
	}
	if len(seen) != int(n) {
		t.Errorf("%d distinct flows in the first %d frames, want %d", len(seen), n, n)
	}
	if c := newFlowCycle(frame, MaxFlows); len(c.hdrs) != 16 {
		t.Errorf("MaxFlows: %d source addresses, want 16", len(c.hdrs))
	}
}

// The AF_XDP generator sends what the cycle numbers: a packet socket on
// the peer sees the ports in turn, across sends.
func TestAFXDPFlows(t *testing.T) {
	nettest.RequireRoot(t)
	ns := nettest.NewNS(t, "xgf")
	a, b := nettest.Name(t, "xgfa"), nettest.Name(t, "xgfb")
	ns.AddVeth(t, a, b)
	var got []uint16
	err := InNetNS(ns.Name, func() error {
		ia, err := net.InterfaceByName(a)
		if err != nil {
			return err
		}
		ib, err := net.InterfaceByName(b)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ib.Index}); err != nil {
			return err
		}
		g, err := NewGeneratorMode(ia.Index, flowFrame(t), ModeAFXDP)
		if err != nil {
			return err
		}
		defer g.Close()
		if err := g.SetFlows(3); err != nil {
			return err
		}
		for _, n := range []uint32{4, 3} {
			if _, err := g.Send(n); err != nil {
				return err
			}
		}
		got = readPorts(t, fd, 7)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint16{1024, 1025, 1026, 1024, 1025, 1026, 1024}
	if len(got) != len(want) {
		t.Fatalf("peer saw ports %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("peer saw ports %v, want %v", got, want)
		}
	}
}

// readPorts reads up to n UDP source ports of frames to port 9 from fd.
func readPorts(t *testing.T, fd, n int) []uint16 {
	t.Helper()
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1}); err != nil {
		t.Fatal(err)
	}
	var ports []uint16
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(3 * time.Second); len(ports) < n && time.Now().Before(deadline); {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			break
		}
		if m >= udpSportOff+4 && binary.BigEndian.Uint16(buf[udpSportOff+2:]) == 9 {
			ports = append(ports, binary.BigEndian.Uint16(buf[udpSportOff:]))
		}
	}
	return ports
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
