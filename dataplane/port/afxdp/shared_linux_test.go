//go:build linux

package afxdp

import (
	"bytes"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
)

// addPair adds a second veth pair to the lab.
func (l *lab) addPair(t testing.TB, dev, peer string) {
	t.Helper()
	run(t, "ip", "-n", l.ns, "link", "add", "name", dev, "type", "veth", "peer", "name", peer)
	run(t, "ip", "-n", l.ns, "link", "set", "dev", dev, "up")
	run(t, "ip", "-n", l.ns, "link", "set", "dev", peer, "up")
}

// TestSharedUMEM forwards frames between two ports whose queues share one
// UMEM (port.Config.Share): each frame received on one port is rewritten
// in place (its Ethernet addresses) and transmitted on the other from the
// very frame it arrived in — the tx descriptor points at the receive
// buffer, no copy — in both directions, through rings small enough that
// every frame of the UMEM passes through both ports many times. Every
// frame arrives intact and every frame comes back to the one pool. The
// UMEM's first port then closes and the other still transmits.
func TestSharedUMEM(t *testing.T) {
	l := newLab(t, 1)
	l.addPair(t, "xdp1", "peer1")
	pa := l.open(t, port.Config{Name: "dpa", Device: labDev, RxRing: 32, TxRing: 32, FrameCount: 256, ZeroCopy: "off"})
	pb := l.open(t, port.Config{Name: "dpb", Device: "xdp1", RxRing: 32, TxRing: 32, ZeroCopy: "off", Share: pa})
	qa, qb := pa.XSKQueue(0), pb.XSKQueue(0)
	if qa.Pool() != qb.Pool() || !qa.SharedUMEM() || !qb.SharedUMEM() {
		t.Fatalf("queues do not share their pool (shared %v, %v)", qa.SharedUMEM(), qb.SharedUMEM())
	}
	if pb.Mode() != "copy" {
		t.Fatalf("sharing port mode %s, want copy (the UMEM's)", pb.Mode())
	}
	peerA, peerB := l.packet(t, labPeer), l.packet(t, "peer1")
	bufs := make([]*pktbuf.Buf, 32)
	// forward receives on from, rewrites the addresses for dst and sends
	// on to; it checks the tx descriptors point at the received frames
	forward := func(from, to *Queue, dst, src []byte) int {
		n := from.RxBurst(bufs)
		addrs := make([]uint64, n)
		for i, b := range bufs[:n] {
			copy(b.Bytes()[0:6], dst)
			copy(b.Bytes()[6:12], src)
			addrs[i] = b.Addr + uint64(b.Offset())
		}
		prod := to.x.tx.cachedProd
		if k := to.TxBurst(bufs[:n]); k != n {
			t.Fatalf("TxBurst took %d of %d", k, n)
		}
		for i := range addrs {
			if d := to.x.tx.descs[(prod+uint32(i))&to.x.tx.mask]; d.Addr != addrs[i] {
				t.Fatalf("frame %d sent from UMEM address %#x, received at %#x: copied", i, d.Addr, addrs[i])
			}
		}
		return n
	}
	const rounds, batch = 40, 24 // 960 frames each way through 256
	for r := 0; r < rounds; r++ {
		for _, dir := range []struct {
			name             string
			in, out          *packetSock
			from, to         *Queue
			fromPort, toPort *Port
		}{{"a→b", peerA, peerB, qa, qb, pa, pb}, {"b→a", peerB, peerA, qb, qa, pb, pa}} {
			marker := []byte("gvsxdp-shared-" + dir.name)
			var sent [][]byte
			for i := 0; i < batch; i++ {
				f := udpFrame(t, dir.in.mac, dir.fromPort.MAC(), uint16(7000+i), marker, r*batch+i, 20+(r*batch+i)%1200)
				sent = append(sent, f)
				dir.in.send(t, f)
			}
			moved := 0
			got := dir.out.recv(t, marker, batch, func() {
				if moved < batch {
					moved += forward(dir.from, dir.to, dir.out.mac, dir.toPort.MAC())
				}
				qa.Flush()
				qb.Flush()
			})
			if len(got) != batch {
				t.Fatalf("round %d %s: %d of %d frames arrived (%d forwarded)", r, dir.name, len(got), batch, moved)
			}
			for i := range got {
				want := append(append(append([]byte(nil), dir.out.mac...), dir.toPort.MAC()...), sent[i][12:]...)
				if !bytes.Equal(got[i], want) {
					t.Fatalf("round %d %s frame %d:\n got %x\nwant %x", r, dir.name, i, got[i], want)
				}
				checkUDP(t, got[i])
			}
		}
	}
	for _, p := range []*Port{pa, pb} {
		if s := p.Stats(); s.RxPackets != rounds*batch || s.TxPackets != rounds*batch || s.RxDropped != 0 || s.TxDropped != 0 {
			t.Errorf("%s: Stats %+v", p.Name(), s)
		}
	}
	if !waitTrue(func() bool {
		qa.Flush()
		qb.Flush()
		_, ta := qa.InFlight()
		_, tb := qb.InFlight()
		return ta+tb == 0
	}) {
		t.Fatal("frames still in flight")
	}
	ra, _ := qa.InFlight()
	rb, _ := qb.InFlight()
	if pool := qa.Pool(); pool.Free()+ra+rb != pool.Size() || pool.Size() != 256 {
		t.Errorf("shared pool: %d free + %d + %d lent for rx, of %d frames", pool.Free(), ra, rb, pool.Size())
	}

	// the port the UMEM was registered on goes; the other keeps sending
	if err := pa.Close(); err != nil {
		t.Fatal(err)
	}
	marker := []byte("gvsxdp-shared-after")
	b := qb.Alloc()
	f := udpFrame(t, pb.MAC(), peerB.mac, 7999, marker, 0, 100)
	if b == nil || !b.CopyFrom(f) {
		t.Fatal("no buffer after the first port closed")
	}
	if qb.TxBurst([]*pktbuf.Buf{b}) != 1 {
		t.Fatal("TxBurst refused")
	}
	if got := peerB.recv(t, marker, 1, qb.Flush); len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Fatalf("after the first port closed: %d frames", len(got))
	}
	if qb.SharedUMEM() {
		t.Error("SharedUMEM still true with one port left")
	}
}
