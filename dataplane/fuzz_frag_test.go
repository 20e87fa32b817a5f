package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/ipvs"
)

// newFragFuzzDP is newLBFuzzDP with an IPv6 UDP service as well.
func newFragFuzzDP(t testing.TB) *testDP {
	td := newLBFuzzDP(t)
	td.service(ipvs.UDP, vip6, lbFuzzUDPPort, "rr", lip6, netip.AddrPortFrom(rs1IP6, 9001))
	return td
}

// fragFuzzSeeds: fragmented UDP datagrams of both families to the VIP in
// order, reversed and with a fragment repeated, and the real server's
// fragmented answers on both queues (one of them another worker's).
func fragFuzzSeeds(t testing.TB) [][]lbFuzzFrame {
	var seeds [][]lbFuzzFrame
	for _, v6 := range []bool{false, true} {
		client, v, rs := netip.AddrPortFrom(clientIP, 40003), netip.AddrPortFrom(vip, lbFuzzUDPPort), netip.AddrPortFrom(rs1IP, 9001)
		mk := udpFrame
		if v6 {
			client, v, rs = netip.AddrPortFrom(clientIP6, 40003), netip.AddrPortFrom(vip6, lbFuzzUDPPort), netip.AddrPortFrom(rs1IP6, 9001)
			mk = udp6Frame
		}
		req := fragment(t, mk(t, macClient, macDP0, client, v, datagram(600)), 256, 11)
		td := newFragFuzzDP(t)
		td.injectQ(0, 0, req[0])
		td.stepAll()
		out := td.outAll(1)
		if len(out) != 1 {
			t.Fatalf("seed first fragment: %d frames out", len(out))
		}
		l := netip.AddrPortFrom(parseFrag(t, out[0]).src, parseUDPPorts(t, out))
		resp := fragment(t, mk(t, macRS1, macDP1, rs, l, datagram(500)), 200, 12)
		in := func(fs ...[]byte) (r []lbFuzzFrame) {
			for _, f := range fs {
				r = append(r, lbFuzzFrame{0, 0, f})
			}
			return r
		}
		seeds = append(seeds, in(req...), in(req[2], req[1], req[0]), in(req[1], req[1], req[0], req[2], req[2]))
		for q := 0; q < 2; q++ {
			s := in(req...)
			for _, i := range []int{1, 0, 2} {
				s = append(s, lbFuzzFrame{1, q, resp[i]})
			}
			seeds = append(seeds, s)
		}
	}
	return seeds
}

// FuzzInputFragments runs sequences of fragments (and anything else)
// through the fragment path of two workers. Beyond not panicking: every
// frame sent is well formed, tx_packets matches what left, no more frames
// leave than came in, and once the hold timeout has passed nothing is
// held and every buffer is back in its pool.
func FuzzInputFragments(f *testing.F) {
	for _, s := range fragFuzzSeeds(f) {
		f.Add(encodeLBFuzz(s))
		cut := append([]lbFuzzFrame(nil), s...)
		cut[0].frame = cut[0].frame[:len(cut[0].frame)/2]
		f.Add(encodeLBFuzz(cut))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		td := newFragFuzzDP(t)
		frames, sent := decodeLBFuzz(in), 0
		for _, fr := range frames {
			clean := len(fr.frame) >= 14 && frameProblem(fr.frame) == ""
			before := td.sum(CtrTxPackets)
			if !td.ports[fr.port].MemQueue(fr.queue).Inject(fr.frame) {
				t.Fatal("inject: ring full")
			}
			settle(td)
			outs := [][][]byte{td.outAll(0), td.outAll(1)}
			n := len(outs[0]) + len(outs[1])
			if tx := td.sum(CtrTxPackets) - before; tx != uint64(n) {
				t.Fatalf("tx_packets += %d, %d frames sent", tx, n)
			}
			for p, fs := range outs {
				for _, o := range fs {
					checkTransmitted(t, p, fr.frame, o, clean)
				}
			}
			sent += n
		}
		if sent > 2*len(frames) { // a frame and an ICMP error at most
			t.Fatalf("%d frames sent for %d", sent, len(frames))
		}
		td.d.start = td.d.start.Add(-2 * fragHoldTimeout)
		settle(td)
		for i, w := range td.d.workers {
			w.dropHeld()
			if w.frag.held != 0 {
				t.Fatalf("worker %d holds %d fragments after the timeout", i, w.frag.held)
			}
		}
		for i, p := range td.ports {
			for q := 0; q < p.NumQueues(); q++ {
				if pool := p.MemQueue(q).Pool(); pool.Free() != pool.Size() {
					t.Fatalf("port %d queue %d: %d of %d buffers free", i, q, pool.Free(), pool.Size())
				}
			}
		}
	})
}
