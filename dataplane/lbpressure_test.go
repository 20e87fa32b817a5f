package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// newPressureDP: one worker with a table of 16 connections at the given
// high-water mark, the FullNAT TCP service VIP:80 → rs1:8080.
func newPressureDP(t *testing.T, highWater int) *testDP {
	td := fixture{Options: Options{ConnCapacity: 16, SessionHighWater: highWater}, addrs: lbAddrs, lbNeighbors: true}.build(t)
	td.service(ipvs.TCP, vip, 80, "rr", lip, netip.AddrPortFrom(rs1IP, 8080))
	return td
}

// synThrough sends a client's SYN to VIP:80 and returns the SYN the real
// server gets (decoded), failing unless exactly one comes out.
func synThrough(t *testing.T, td *testDP, client netip.AddrPort) decoded {
	t.Helper()
	d := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0,
		syn: true, seq: 1000, mss: 1460}), 1)
	if !d.tcp.SYN || d.tcp.ACK || d.src.Addr() != lip || d.dst != netip.AddrPortFrom(rs1IP, 8080) || d.tcp.Seq != 1000 {
		t.Fatalf("SYN of %s out: %s -> %s syn=%v ack=%v seq=%d", client, d.src, d.dst, d.tcp.SYN, d.tcp.ACK, d.tcp.Seq)
	}
	return d
}

func connsByClient(t *testing.T, td *testDP) map[netip.AddrPort]ConnInfo {
	t.Helper()
	cs, err := td.d.Conns(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := map[netip.AddrPort]ConnInfo{}
	for _, c := range cs {
		m[c.Client] = c
	}
	return m
}

// TestTableFullEvictsOldestEmbryonic: a table full of SYN_RECV
// connections takes a new client's SYN by evicting the oldest one, which
// gives back its local port and destination count as an expired one does.
func TestTableFullEvictsOldestEmbryonic(t *testing.T) {
	// the mark at 100 %: every flood conn has the normal SYN_RECV timeout,
	// so the oldest is also the nearest to expiry
	td := newPressureDP(t, 100)
	rs := netip.AddrPortFrom(rs1IP, 8080)
	lports := map[netip.AddrPort]uint16{}
	for i := range 16 {
		c := netip.AddrPortFrom(clientIP, uint16(10000+i))
		lports[c] = synThrough(t, td, c).src.Port()
	}
	if !td.w.sess.Full() {
		t.Fatalf("table holds %d of %d", td.w.sess.Len(), td.w.sess.Capacity())
	}
	oldest := netip.AddrPortFrom(clientIP, 10000)
	newcomer := netip.AddrPortFrom(clientIP, 20000)
	out := synThrough(t, td, newcomer)

	if got := td.sum(CtrLBEvictedEmbryonic); got != 1 {
		t.Errorf("lb_evicted_embryonic = %d, want 1", got)
	}
	for _, c := range []Counter{CtrLBEvictedClosing, CtrDropLBTableFull, CtrLBConnsExpired, CtrDropLBInsertFailed} {
		if got := td.sum(c); got != 0 {
			t.Errorf("%s = %d, want 0", c, got)
		}
	}
	if got := td.sum(CtrLBNewConns); got != 17 {
		t.Errorf("lb_new_conns = %d, want 17", got)
	}
	conns := connsByClient(t, td)
	if len(conns) != 16 {
		t.Fatalf("%d conns listed, want 16", len(conns))
	}
	if _, ok := conns[oldest]; ok {
		t.Errorf("the oldest conn (%s) is still there", oldest)
	}
	if c, ok := conns[newcomer]; !ok || c.State != session.StateSynRecv || c.Local != out.src {
		t.Errorf("new conn = %+v %v, want SYN_RECV from %s", c, ok, out.src)
	}
	for i := 1; i < 16; i++ {
		if _, ok := conns[netip.AddrPortFrom(clientIP, uint16(10000+i))]; !ok {
			t.Errorf("conn of client port %d evicted, want only the oldest", 10000+i)
		}
	}
	// released as an expired conn: destination count and local port
	d := td.d.IPVS().Table().Services[0].Dests[0]
	if a, in := d.C.Active.Load(), d.C.Inactive.Load(); a != 0 || in != 16 {
		t.Errorf("ActiveConn %d InActConn %d, want 0 16", a, in)
	}
	if free := td.w.pool.Free(lip, rs); free != td.w.pool.PortsPerServer()-16 {
		t.Errorf("%d ports free towards %s, want %d", free, rs, td.w.pool.PortsPerServer()-16)
	}
	// the real server's SYN-ACK to the evicted conn's local port finds
	// no connection
	td.inject(1, tcpFrame(t, tcpSeg{src: rs, dst: netip.AddrPortFrom(lip, lports[oldest]), smac: macRS1, dmac: macDP1,
		syn: true, ack: true, seq: 5000, ackn: 1001}))
	td.stepAll()
	if fs := td.outAll(0); len(fs) != 0 || td.sum(CtrDropLBNoConn) != 1 {
		t.Errorf("SYN-ACK to the evicted conn: %d frames out, drop_lb_no_conn %d", len(fs), td.sum(CtrDropLBNoConn))
	}
	// the newcomer's handshake completes
	sa := td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: out.src, smac: macRS1, dmac: macDP1,
		syn: true, ack: true, seq: 5000, ackn: 1001}), 0)
	if sa.src != netip.AddrPortFrom(vip, 80) || sa.dst != newcomer || !sa.tcp.SYN || !sa.tcp.ACK {
		t.Errorf("newcomer's SYN-ACK out: %s -> %s", sa.src, sa.dst)
	}
}

// TestServerACKKeepsFloodEvictable: under a SYN flood from spoofed
// sources, a reused local port can still name an old half-open connection
// at the real server, which answers the new SYN with a bare ACK for the
// old one. That ACK does not establish the conn (session/state.go): a
// table full of such conns stays SYN_RECV, counts no active connection,
// and still takes a new client's SYN by evicting one.
func TestServerACKKeepsFloodEvictable(t *testing.T) {
	td := newPressureDP(t, 100)
	rs := netip.AddrPortFrom(rs1IP, 8080)
	for i := range 16 {
		c := netip.AddrPortFrom(clientIP, uint16(10000+i))
		out := synThrough(t, td, c)
		back := td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: out.src, smac: macRS1, dmac: macDP1,
			ack: true, seq: 7000, ackn: 424242}), 0)
		if back.dst != c || back.tcp.SYN || !back.tcp.ACK {
			t.Fatalf("the server's ACK to %s out: %s -> %s syn=%v ack=%v", out.src, back.src, back.dst, back.tcp.SYN, back.tcp.ACK)
		}
	}
	for c, info := range connsByClient(t, td) {
		if info.State != session.StateSynRecv {
			t.Errorf("conn of %s is %v after the server's ACK, want SYN_RECV", c, info.State)
		}
	}
	d := td.d.IPVS().Table().Services[0].Dests[0]
	if a, in := d.C.Active.Load(), d.C.Inactive.Load(); a != 0 || in != 16 {
		t.Errorf("ActiveConn %d InActConn %d, want 0 16", a, in)
	}
	// the newcomer evicts the oldest; the server's ACK told the sequence
	// number its old half-open connection expects: the RST to it carries
	// that number, so the server drops that connection at once
	newcomer := netip.AddrPortFrom(clientIP, 20000)
	td.inject(0, tcpFrame(t, tcpSeg{src: newcomer, dst: netip.AddrPortFrom(vip, 80), smac: macClient, dmac: macDP0, syn: true, seq: 1000}))
	td.stepAll()
	fs := td.outAll(1)
	if len(fs) != 2 {
		t.Fatalf("%d frames to the server, want the evicted conn's RST and the newcomer's SYN", len(fs))
	}
	if r := decodeL4(t, fs[0]); !r.tcp.RST || r.tcp.Seq != 424242 || r.dst != rs || r.src.Addr() != lip {
		t.Errorf("first frame to the server: %s -> %s rst=%v seq=%d, want a RST with seq 424242", r.src, r.dst, r.tcp.RST, r.tcp.Seq)
	}
	if s := decodeL4(t, fs[1]); !s.tcp.SYN || s.tcp.Seq != 1000 {
		t.Errorf("second frame to the server: syn=%v seq=%d, want the newcomer's SYN", s.tcp.SYN, s.tcp.Seq)
	}
	if ev, full := td.sum(CtrLBEvictedEmbryonic), td.sum(CtrDropLBTableFull); ev != 1 || full != 0 {
		t.Errorf("lb_evicted_embryonic %d, drop_lb_table_full %d, want 1 0", ev, full)
	}
	if _, ok := connsByClient(t, td)[newcomer]; !ok {
		t.Errorf("the newcomer's conn is not listed")
	}
}

// TestTableFullOfEstablishedRefuses: established connections are never
// evicted: a new SYN is refused and counted.
func TestTableFullOfEstablishedRefuses(t *testing.T) {
	td := newPressureDP(t, 0)
	rs := netip.AddrPortFrom(rs1IP, 8080)
	for i := range 16 {
		fullNATHandshake(t, td, netip.AddrPortFrom(clientIP, uint16(10000+i)), netip.AddrPortFrom(vip, 80), rs)
	}
	// the mark is 90 % of 16, rounded up: 15; the 16th SYN found 15 conns
	if got := td.sum(CtrLBPressureNew); got != 1 {
		t.Errorf("lb_pressure_new = %d, want 1", got)
	}
	td.inject(0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 20000), dst: netip.AddrPortFrom(vip, 80),
		smac: macClient, dmac: macDP0, syn: true, seq: 1, mss: 1460}))
	td.stepAll()
	if fs := td.outAll(1); len(fs) != 0 {
		t.Fatalf("%d frames sent to the real servers, want the SYN refused", len(fs))
	}
	if got := td.sum(CtrDropLBTableFull); got != 1 {
		t.Errorf("drop_lb_table_full = %d, want 1", got)
	}
	if got := td.sum(CtrLBPressureNew); got != 2 {
		t.Errorf("lb_pressure_new = %d, want 2", got)
	}
	if e, c := td.sum(CtrLBEvictedEmbryonic), td.sum(CtrLBEvictedClosing); e != 0 || c != 0 {
		t.Errorf("evicted %d embryonic, %d closing, want none", e, c)
	}
	conns := connsByClient(t, td)
	if len(conns) != 16 {
		t.Fatalf("%d conns, want 16", len(conns))
	}
	for cl, c := range conns {
		if c.State != session.StateEstablished {
			t.Errorf("%s: %v, want ESTABLISHED", cl, c.State)
		}
	}
	if free := td.w.pool.Free(lip, rs); free != td.w.pool.PortsPerServer()-16 {
		t.Errorf("%d ports free, want %d (the refused SYN's port given back)", free, td.w.pool.PortsPerServer()-16)
	}
	d := td.d.IPVS().Table().Services[0].Dests[0]
	if a, in := d.C.Active.Load(), d.C.Inactive.Load(); a != 16 || in != 0 {
		t.Errorf("ActiveConn %d InActConn %d, want 16 0", a, in)
	}
}

// TestPressureShortensSynRecv: at and above the mark, a new conn and one
// touched (the real server's SYN-ACK) take the short SYN_RECV timeout.
func TestPressureShortensSynRecv(t *testing.T) {
	td := newPressureDP(t, 50) // 8 of 16
	rs := netip.AddrPortFrom(rs1IP, 8080)
	var first decoded
	for i := range 9 {
		d := synThrough(t, td, netip.AddrPortFrom(clientIP, uint16(10000+i)))
		if i == 0 {
			first = d
		}
	}
	if got := td.sum(CtrLBPressureNew); got != 1 {
		t.Errorf("lb_pressure_new = %d, want 1 (the 9th SYN)", got)
	}
	conns := connsByClient(t, td)
	short := session.DefaultPressureTimeouts().SynRecv
	for i := range 9 {
		c := conns[netip.AddrPortFrom(clientIP, uint16(10000+i))]
		if c.State != session.StateSynRecv {
			t.Fatalf("conn %d: %v", i, c.State)
		}
		// conns 0-6 were made and forwarded below the mark; conn 7 took
		// the table to the mark and its SYN was forwarded (a touch) there
		if i < 7 && c.Expires <= short {
			t.Errorf("conn %d made below the mark expires in %v, want the normal minute", i, c.Expires)
		}
		if i >= 7 && c.Expires > short {
			t.Errorf("conn %d made at the mark expires in %v, want at most %v", i, c.Expires, short)
		}
	}
	// the first conn's SYN-ACK arrives under pressure: it shrinks
	td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: first.src, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 5000, ackn: 1001}), 0)
	c := connsByClient(t, td)[netip.AddrPortFrom(clientIP, 10000)]
	if c.State != session.StateSynRecv || c.Expires > short {
		t.Errorf("first conn after its SYN-ACK: %v expires in %v, want SYN_RECV within %v", c.State, c.Expires, short)
	}
	u := td.d.LBUsage()[0]
	if !u.Pressure || u.HighWater != 8 || u.Conns != 9 {
		t.Errorf("LBUsage = %+v, want pressure at 9 of mark 8", u)
	}
}

// TestEvictionAllocs: a SYN that evicts an embryonic conn from a full
// table (and the release of the evicted conn) allocates nothing.
func TestEvictionAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	td := newPressureDP(t, 90)
	l := &loopDP{testDP: td}
	for p, mp := range td.ports {
		s := &sinkQueue{Queue: mp.MemQueue(0), out: make([]*pktbuf.Buf, 0, 2*txBufSize)}
		td.w.queues[p] = s
		l.sinks = append(l.sinks, s)
	}
	td.w.iterate()
	syn := tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 10000), dst: netip.AddrPortFrom(vip, 80),
		smac: macClient, dmac: macDP0, syn: true, seq: 1, mss: 1460})
	send := func() {
		nextSYN(syn)
		l.rx(t, 0, syn)
		l.w.flushAll()
		if n := l.releaseAll(); n != 1 {
			panic("a SYN was not forwarded")
		}
	}
	for range 16 {
		send()
	}
	if !td.w.sess.Full() {
		t.Fatalf("table holds %d of %d", td.w.sess.Len(), td.w.sess.Capacity())
	}
	if allocs := testing.AllocsPerRun(1000, send); allocs != 0 {
		t.Errorf("%v allocations per evicting SYN, want 0", allocs)
	}
	td.w.ctr.publish()
	if got := td.sum(CtrLBEvictedEmbryonic); got < 1000 {
		t.Errorf("lb_evicted_embryonic = %d, want every SYN to have evicted one", got)
	}
	if got := td.sum(CtrDropLBTableFull); got != 0 {
		t.Errorf("drop_lb_table_full = %d, want 0", got)
	}
	l.checkPools(t)
}
