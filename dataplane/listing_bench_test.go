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

// TestServeListingAllocs: a worker loop's listing step allocates nothing.
func TestServeListingAllocs(t *testing.T) {
	td := newLBTestDP(t, 1)
	if err := FillConns(td.d, netip.MustParseAddrPort("10.1.0.100:53"), netip.MustParseAddr("10.2.0.100"), 5000); err != nil {
		t.Fatal(err)
	}
	w := td.d.workers[0]
	l := newConnListing(nil)
	w.list.open = append(w.list.open, l)
	listed := 0
	allocs := testing.AllocsPerRun(50, func() {
		if len(w.list.open) == 0 { // the walk is over: list again
			l.cursor = 0
			w.list.open = append(w.list.open, l)
		}
		w.serveListing()
		select {
		case c := <-l.full:
			listed += len(c.recs)
			l.free <- c
		default:
		}
	})
	if allocs != 0 {
		t.Errorf("serveListing allocates %.1f times per loop", allocs)
	}
	if listed < 5000 {
		t.Errorf("listed %d conns, want at least one whole table (5000)", listed)
	}
}
