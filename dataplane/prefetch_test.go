package dataplane

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/session"
)

// TestPrefetchedBurst: with more connections than session.PrefetchWorth
// the worker prefetches each burst's lookups; a burst mixing segments of
// random established connections with frames the prefetch pass cannot
// read (cut short, IPv6, to a port without a service) comes out as
// without it: every segment translated for its own connection (decoded
// with gopacket: the local port the connection was given, the real
// server), in order, and the others dropped and counted.
func TestPrefetchedBurst(t *testing.T) {
	l := newLBLoop(t)
	flows := session.PrefetchWorth + 500
	ports, lports := establishMany(t, l, flows)
	if l.w.sess.Len() < session.PrefetchWorth {
		t.Fatalf("%d connections: the burst would not be prefetched", l.w.sess.Len())
	}
	r := rand.New(rand.NewPCG(11, 12))
	data := func(i int) []byte {
		return tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, ports[i]), dst: l.vipPort, smac: macClient, dmac: macDP0,
			ack: true, psh: true, seq: 2, ackn: 1, payload: []byte("prefetched")})
	}
	short := data(0)[:30]
	v6 := udpFrameAny(t, macClient, macDP0, netip.MustParseAddrPort("[2001:db8::7]:5000"), netip.MustParseAddrPort("[2001:db8::100]:53"), []byte("x"), false)
	noSvc := udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, 5000), netip.AddrPortFrom(vip, 81), []byte("x"))
	for round := 0; round < 20; round++ {
		var want []int // flow of each segment, in burst order
		frames := make([][]byte, 0, benchBurst)
		odd := 0
		for len(frames) < benchBurst {
			switch r.IntN(8) {
			case 0:
				frames = append(frames, []([]byte){short, v6, noSvc}[r.IntN(3)])
				odd++
			default:
				i := r.IntN(flows)
				want = append(want, i)
				frames = append(frames, data(i))
			}
		}
		l.w.ctr.publish()
		before := l.counter(CtrLBIn)
		q := l.ports[0].MemQueue(0)
		for i, f := range frames {
			l.w.rx[i] = q.Alloc()
			l.w.rx[i].CopyFrom(f)
		}
		l.w.inputBurst(0, len(frames))
		l.w.flushAll()
		out := l.sinks[1].out
		if len(out) != len(want) {
			t.Fatalf("round %d: %d segments sent for %d (and %d others)", round, len(out), len(want), odd)
		}
		for k, b := range out {
			d := decodeL4(t, b.Bytes())
			i := want[k]
			if d.src != netip.AddrPortFrom(lip, lports[i]) || d.dst != l.rs || d.tcp == nil || string(d.tcp.Payload) != "prefetched" {
				t.Fatalf("round %d, segment %d (client port %d): sent %v → %v, want %v → %v", round, k, ports[i], d.src, d.dst,
					netip.AddrPortFrom(lip, lports[i]), l.rs)
			}
		}
		l.releaseAll()
		l.w.ctr.publish()
		if got := l.counter(CtrLBIn) - before; got != uint64(len(want)) {
			t.Fatalf("round %d: lb_in grew by %d for %d segments", round, got, len(want))
		}
	}
	l.checkPools(t)
}
