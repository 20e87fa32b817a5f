//go:build dpdk

package dpdk

// The cost of the cgo crossing: one op of BenchmarkCgoCrossing is an empty
// call into C; one op of BenchmarkRxEmpty a receive burst that finds
// nothing (one crossing into the PMD); one op of BenchmarkBurstRoundTrip
// is N packets transmitted and received back on a net_ring loopback (two
// crossings), reported per packet as ns/pkt.

import (
	"fmt"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
)

func BenchmarkCgoCrossing(b *testing.B) {
	for b.Loop() {
		cgoNoop()
	}
}

func BenchmarkRxEmpty(b *testing.B) {
	p := open(b, "net_ring5", 1, 1024, 256)
	q := p.DPDKQueue(0)
	var rx [32]*pktbuf.Buf
	for b.Loop() {
		if q.RxBurst(rx[:]) != 0 {
			b.Fatal("received from an idle ring")
		}
	}
}

func BenchmarkBurstRoundTrip(b *testing.B) {
	for i, n := range []int{1, 8, 32, 64} {
		b.Run(fmt.Sprintf("burst=%d", n), func(b *testing.B) {
			p := open(b, fmt.Sprintf("net_ring%d", i), 1, 2048, 512)
			q := p.DPDKQueue(0)
			tx := make([]*pktbuf.Buf, n)
			rx := make([]*pktbuf.Buf, n)
			frame := udpFrame(b, 1000, 0)
			for i := range tx {
				tx[i] = q.Alloc()
				tx[i].CopyFrom(frame)
			}
			b.ReportAllocs()
			for b.Loop() {
				q.TxBurst(tx)
				if got := q.RxBurst(rx); got != n {
					b.Fatalf("RxBurst = %d, want %d", got, n)
				}
				copy(tx, rx) // send the received frames again
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/pkt")
			for _, x := range tx {
				x.Free()
			}
		})
	}
}
