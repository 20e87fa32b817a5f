package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/session"
)

// BenchmarkListingStep is one worker loop's share of a listing: walking
// listChunkSize ids of a 500,000-conn table into a chunk. Run with
// -benchtime=2000x (each op is one step; the walk wraps around).
func BenchmarkListingStep(b *testing.B) {
	const n = 500_000
	t, err := session.New(session.Options{Capacity: n})
	if err != nil {
		b.Fatal(err)
	}
	vip := netip.MustParseAddrPort("10.1.0.100:53")
	for j := 0; j < n; j++ {
		c := session.NewConn(header.ProtoUDP, FillConnsClient(j), vip, netip.AddrPortFrom(netip.MustParseAddr("10.2.0.100"), uint16(1025+j%50000)),
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16 + byte(j>>16), byte(j >> 8), byte(j)}), 53))
		if _, err := t.Insert(c, 0); err != nil {
			b.Fatal(err)
		}
	}
	l := newConnListing(nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copied, _, done := l.step(t, 0)
		if copied != listChunkSize && !done {
			b.Fatalf("step copied %d", copied)
		}
		select {
		case c := <-l.full:
			l.free <- c
		default:
		}
		if done {
			l.cursor = 0
		}
	}
	b.ReportMetric(float64(listChunkSize), "conns/op")
}
