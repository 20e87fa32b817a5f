package dataplane

// Hooks for listing tests in package dataplane_test (which can import the
// API server and the ipvsadm client code without an import cycle).

import (
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/session"
)

// ListChunkSize is listChunkSize.
const ListChunkSize = listChunkSize

// FillConnsClient returns the client of conn i (counted over all workers)
// that FillConns inserts: 100.64.0.0 + i, for i < 1<<22.
func FillConnsClient(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}), 1024+uint16(i%7))
}

// FillConns inserts n UDP conns of service UDP vip into each worker's
// table the way lbNew does (session.Table.Insert at the worker's tick);
// worker w's conn j has client FillConnsClient(w*n+j). The workers must
// not be running yet.
func FillConns(d *Dataplane, vip netip.AddrPort, laddr netip.Addr, n int) error {
	for _, w := range d.workers {
		tick := uint32(d.clock() / int64(w.sessTick))
		for j := 0; j < n; j++ {
			i := w.id*n + j
			dest := netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16 + byte(j>>16), byte(j >> 8), byte(j)}), 53)
			c := session.NewConn(header.ProtoUDP, FillConnsClient(i), vip, netip.AddrPortFrom(laddr, uint16(1025+j%50000)), dest)
			if _, err := w.sess.Insert(c, tick); err != nil {
				return err
			}
		}
	}
	return nil
}

// ResetLoopStats zeroes every worker's longest loop and listing maxima.
func ResetLoopStats(d *Dataplane) {
	for _, w := range d.workers {
		w.loop.longest.Store(0)
		w.list.maxPerLoop.Store(0)
		w.list.maxStepNs.Store(0)
		w.list.stepNs.Store(0)
		w.list.steps.Store(0)
	}
}

// ListingStats returns, per worker, the most conns one loop copied for a
// listing, the chunks handed over, and the longest and mean listing step.
func ListingStats(d *Dataplane) (maxPerLoop, chunks []uint64, maxStep, meanStep []time.Duration) {
	for _, w := range d.workers {
		maxPerLoop = append(maxPerLoop, w.list.maxPerLoop.Load())
		chunks = append(chunks, w.list.chunks.Load())
		maxStep = append(maxStep, time.Duration(w.list.maxStepNs.Load()))
		meanStep = append(meanStep, time.Duration(w.list.stepNs.Load()/max(1, w.list.steps.Load())))
	}
	return
}

// WholeTableCopy times what a listing cost a worker before listings were
// chunked: copying its whole table in one go. Workers must be stopped.
func WholeTableCopy(d *Dataplane, worker int) (time.Duration, int) {
	w := d.workers[worker]
	start := time.Now()
	var out []ConnInfo
	for _, c := range w.sess.All() {
		out = append(out, ConnInfo{Worker: w.id, Proto: c.Proto, State: c.State, Client: unmapAP(c.CAddrPort()),
			Virtual: unmapAP(c.VAddrPort()), Local: unmapAP(c.LAddrPort()), Dest: unmapAP(c.DAddrPort())})
	}
	return time.Since(start), len(out)
}
