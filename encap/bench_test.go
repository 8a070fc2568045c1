package encap

import (
	"testing"
)

// reportPPS adds the packets-per-second metric, one packet per iteration.
func reportPPS(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pps")
}

// BenchmarkEncap encapsulates a 64-byte inner frame in place. Each iteration
// also restores the 14-byte inner Ethernet header (MPLSoUDP overwrites it)
// and hashes the flow, as the forwarder would.
func BenchmarkEncap(b *testing.B) {
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		b.Run(k.String(), func(b *testing.B) {
			inner := innerFrame(b, 1000, 2000, 64)
			buf, off := inChunk(inner)
			o := testOuter()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				copy(buf[off:off+14], inner)
				if _, _, err := Encap(buf, off, 64, k, 1000, o, FlowEntropy(buf[off+14:off+64])); err != nil {
					b.Fatal(err)
				}
			}
			reportPPS(b)
		})
	}
}

// BenchmarkDecap validates and locates the inner packet of a frame made from
// a 64-byte inner frame (outer UDP checksum zero, as xvr sends).
func BenchmarkDecap(b *testing.B) {
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		b.Run(k.String(), func(b *testing.B) {
			buf, off, n := encapped(b, k, 1000, innerFrame(b, 1000, 2000, 64))
			var d Decapped
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := Decap(buf, off, n, &d); err != nil {
					b.Fatal(err)
				}
			}
			reportPPS(b)
		})
	}
}

// BenchmarkDecapInnerEthernet is Decap plus InnerEthernet: the whole
// receive-side cost per packet. Each iteration first restores the outer
// headers (a copy of 46 or 50 bytes) that InnerEthernet overwrote.
func BenchmarkDecapInnerEthernet(b *testing.B) {
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		b.Run(k.String(), func(b *testing.B) {
			buf, off, n := encapped(b, k, 1000, innerFrame(b, 1000, 2000, 64))
			hdrs := append([]byte(nil), buf[off:off+n-64+14]...)
			var d Decapped
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				copy(buf[off:], hdrs)
				if err := Decap(buf, off, n, &d); err != nil {
					b.Fatal(err)
				}
				InnerEthernet(buf, &d, rtrMAC, podMAC)
			}
			reportPPS(b)
		})
	}
}

func BenchmarkFlowEntropy(b *testing.B) {
	ip := innerFrame(b, 1000, 2000, 64)[14:]
	b.ReportAllocs()
	b.ResetTimer()
	var sink uint16
	for range b.N {
		sink += FlowEntropy(ip)
	}
	_ = sink
	reportPPS(b)
}
