package dataplane

import (
	"testing"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
)

func TestZZProbeLoop(t *testing.T) {
	td := newTestDP(t)
	q := td.ports[0].MemQueue(0)
	q.Loop = true
	for _, burst := range []int{1, 2, 32} {
		var rx, tx [64]*pktbuf.Buf
		f := func() {
			for i := 0; i < burst; i++ {
				tx[i] = q.Alloc()
			}
			q.TxBurst(tx[:burst])
			n := q.RxBurst(rx[:])
			for i := 0; i < n; i++ {
				rx[i].Free()
			}
		}
		for i := 0; i < 100; i++ {
			f()
		}
		t.Log(burst, testing.AllocsPerRun(1000, f))
	}
}
