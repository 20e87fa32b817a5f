package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// nextUDP turns a client UDP frame into that of the next client port,
// fixing the UDP checksum incrementally.
func nextUDP(f []byte) {
	u := header.UDP(f[14+20:])
	old := u.SrcPort()
	nw := old + 1
	if nw < 1024 {
		nw = 1024
	}
	u.SetSrcPort(nw)
	u.SetChecksum(header.ChecksumUpdate16(u.Checksum(), old, nw))
}

// newSyncLoop is the FullNAT loop with a UDP service on vip:9000 and, if
// on, a sync consumer's policy publishing every new UDP connection.
func newSyncLoop(tb testing.TB, on bool) (*lbLoop, []byte) {
	l := newLBLoop(tb)
	l.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
	if on {
		l.d.syncPol.Store(&SyncPolicy{Threshold: 1, UDP: true})
	}
	l.w.iterate()
	return l, udpFrame(tb, macClient, macDP0, netip.AddrPortFrom(clientIP, 1024), netip.AddrPortFrom(vip, 9000), make([]byte, 18))
}

func TestSyncPublishAllocs(t *testing.T) {
	l, q := newSyncLoop(t, true)
	run := func() {
		nextUDP(q)
		l.rx(t, 0, q)
		l.w.flushAll()
		if l.releaseAll() != 1 {
			t.Fatal("no frame sent")
		}
		if _, ok := l.w.syncOut.Pop(); !ok {
			t.Fatal("new UDP connection not published")
		}
	}
	for i := 0; i < 100; i++ {
		run()
	}
	if allocs := testing.AllocsPerRun(500, run); allocs != 0 {
		t.Errorf("%v allocations per published new connection, want 0", allocs)
	}
	l.w.ctr.publish()
	if got := l.w.ctr.pub[CtrSyncPublished].Load(); got != 601 {
		t.Errorf("sync_published = %d, want 601", got)
	}
}

// benchSyncNew creates one UDP FullNAT connection per op, publishing it
// when on: the difference between on and off is the cost of publishing
// (and of draining the ring, done here between bursts).
func benchSyncNew(b *testing.B, on bool) {
	l, q := newSyncLoop(b, on)
	mq := l.ports[0].MemQueue(0)
	var burst [benchBurst]*pktbuf.Buf
	made := 0
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		if made >= 30000 {
			// keep the table, the port pool and the ring from filling: not timed
			b.StopTimer()
			l.w.sess.Flush(l.w.onExpire)
			made = 0
			b.StartTimer()
		}
		n := min(benchBurst, b.N-done)
		for i := range n {
			nextUDP(q)
			made++
			burst[i] = mq.Alloc()
			burst[i].CopyFrom(q)
			burst[i].Port = 0
		}
		for i := range n {
			l.w.input(burst[i])
			burst[i] = nil
		}
		l.w.flushAll()
		l.releaseAll()
		// the consumer's side, timed too (an upper bound of the worker's
		// share): the default ring stays warm as with a live consumer
		for {
			if _, ok := l.w.syncOut.Pop(); !ok {
				break
			}
		}
		done += n
	}
}

func BenchmarkSyncNewConnUDPOff(b *testing.B) { benchSyncNew(b, false) }
func BenchmarkSyncNewConnUDPOn(b *testing.B)  { benchSyncNew(b, true) }

// BenchmarkSyncPublish is the worker's share alone: one event copied into
// the ring (and popped, to keep it from filling).
func BenchmarkSyncPublish(b *testing.B) {
	l, _ := newSyncLoop(b, true)
	c := session.NewConn(header.ProtoTCP, netip.AddrPortFrom(clientIP, 1024), netip.AddrPortFrom(vip, 80),
		netip.AddrPortFrom(lip, 2048), netip.AddrPortFrom(rs1IP, 8080))
	b.ReportAllocs()
	for b.Loop() {
		l.w.publishSync(&c, SyncUpdate, SyncAdjust{})
		l.w.syncOut.Pop()
	}
}
