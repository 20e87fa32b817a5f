package dataplane

import (
	"math"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/ipvs"
)

// seekDP: two workers, the FullNAT TCP service VIP:80 → rs1:8080.
func seekDP(t *testing.T) *testDP {
	td := fixture{Options: Options{Workers: 2, ConnCapacity: 1 << 10}, addrs: lbAddrs, lbNeighbors: true}.build(t)
	td.service(ipvs.TCP, vip, 80, "rr", lip, netip.AddrPortFrom(rs1IP, 8080))
	return td
}

func (td *testDP) workerSum(i int, c Counter) uint64 {
	ctr, _ := td.d.workers[i].Stats()
	return ctr[c]
}

// TestSeekMovedFlow: a client's connection made on worker 0, whose
// segments then arrive on worker 1's queue (veth picks a queue by the
// sender's hash, which Linux changes after a retransmission timeout):
// worker 1 has no connection for them and hands them to worker 0, which
// forwards them as its own. A segment of no connection at all is looked
// for once on each worker and dropped by the last, not handed back.
func TestSeekMovedFlow(t *testing.T) {
	td := seekDP(t)
	client, vport := netip.AddrPortFrom(clientIP, 40000), netip.AddrPortFrom(vip, 80)
	syn := td.oneOut(t, 0, 0, tcpFrame(t, tcpSeg{src: client, dst: vport, smac: macClient, dmac: macDP0, syn: true, seq: 100}), 1)
	if !syn.tcp.SYN || syn.src.Addr() != lip {
		t.Fatalf("SYN out: %s -> %s syn=%v", syn.src, syn.dst, syn.tcp.SYN)
	}
	ack := td.oneOut(t, 0, 1, tcpFrame(t, tcpSeg{src: client, dst: vport, smac: macClient, dmac: macDP0, ack: true, seq: 101, ackn: 5001,
		payload: []byte("GET / HTTP/1.0\r\n\r\n")}), 1)
	if ack.src != syn.src || ack.dst != syn.dst || ack.tcp.SYN || !ack.tcp.ACK || ack.tcp.Seq != 101 || string(ack.tcp.Payload) != "GET / HTTP/1.0\r\n\r\n" {
		t.Errorf("the moved segment out: %s -> %s seq %d ack=%v payload %q, want %s -> %s seq 101 with its payload",
			ack.src, ack.dst, ack.tcp.Seq, ack.tcp.ACK, ack.tcp.Payload, syn.src, syn.dst)
	}
	if got := td.workerSum(1, CtrLBSeekOut); got != 1 {
		t.Errorf("worker 1 lb_seek_out = %d, want 1", got)
	}
	if got := td.sum(CtrDropLBNotSYN); got != 0 {
		t.Errorf("drop_lb_not_syn = %d, want 0", got)
	}

	// no connection anywhere: worker 1 hands it on, worker 0 drops it
	stray := netip.AddrPortFrom(clientIP, 40001)
	td.injectQ(0, 1, tcpFrame(t, tcpSeg{src: stray, dst: vport, smac: macClient, dmac: macDP0, ack: true, seq: 7, ackn: 9}))
	for range 3 {
		td.stepAll()
	}
	if fs := td.outAll(1); len(fs) != 0 {
		t.Errorf("%d frames out for a segment of no connection", len(fs))
	}
	if s1, s0, d0, d1 := td.workerSum(1, CtrLBSeekOut), td.workerSum(0, CtrLBSeekOut),
		td.workerSum(0, CtrDropLBNotSYN), td.workerSum(1, CtrDropLBNotSYN); s1 != 2 || s0 != 0 || d0 != 1 || d1 != 0 {
		t.Errorf("lb_seek_out %d/%d, drop_lb_not_syn %d/%d (workers 1/0, 0/1), want 2/0 and 1/0", s1, s0, d0, d1)
	}
}

// TestSeekBudget: beyond its budget a worker drops stray segments where
// they land (lb_seek_limited, drop_lb_not_syn) instead of handing them on.
func TestSeekBudget(t *testing.T) {
	td := seekDP(t)
	w := td.d.workers[1]
	w.seekRate = tokenBucket{rate: math.SmallestNonzeroFloat64, burst: 3, tokens: 3} // a budget of 3, not refilled
	for i := range 5 {
		td.injectQ(0, 1, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, uint16(41000+i)), dst: netip.AddrPortFrom(vip, 80),
			smac: macClient, dmac: macDP0, ack: true, seq: 7, ackn: 9}))
	}
	for range 3 {
		td.stepAll()
	}
	if s, l, d1, d0 := td.workerSum(1, CtrLBSeekOut), td.workerSum(1, CtrLBSeekLimited),
		td.workerSum(1, CtrDropLBNotSYN), td.workerSum(0, CtrDropLBNotSYN); s != 3 || l != 2 || d1 != 2 || d0 != 3 {
		t.Errorf("worker 1: lb_seek_out %d lb_seek_limited %d drop_lb_not_syn %d; worker 0 drop_lb_not_syn %d; want 3 2 2 3", s, l, d1, d0)
	}
}
