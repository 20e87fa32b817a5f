package dataplane

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// persistDP: two workers, a persistent TCP service on vip:81 (rr, -p 300
// -M 255.255.255.0) over rs1:8080 and rs2:8080.
func persistDP(t *testing.T, o Options) (*testDP, ipvs.ServiceKey) {
	t.Helper()
	if o.Workers == 0 {
		o.Workers = 2
	}
	o.ConnCapacity = 1 << 12
	td := fixture{Options: o, addrs: lbAddrs, lbNeighbors: true}.build(t)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 81}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr", Persistent: true, PersistTimeout: 300, PersistPrefix: 24}); err != nil {
		t.Fatal(err)
	}
	for _, rs := range []netip.Addr{rs1IP, rs2IP} {
		if err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs, 8080), Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
			t.Fatal(err)
		}
	}
	if err := td.d.AddLAddr(k, ipvs.LAddr{Addr: lip}); err != nil {
		t.Fatal(err)
	}
	return td, k
}

// synVia sends a SYN of client to dst on the given queue (so the given
// worker) and returns the real server it went to.
func (td *testDP) synVia(t *testing.T, queue int, client, dst netip.AddrPort) netip.AddrPort {
	t.Helper()
	td.injectQ(0, queue, tcpFrame(t, tcpSeg{src: client, dst: dst, smac: macClient, dmac: macDP0, syn: true, seq: 1}))
	td.stepAll()
	fs := td.outAll(1)
	if len(fs) != 1 {
		ctr, _ := td.d.workers[queue].Stats()
		t.Fatalf("SYN of %s on queue %d: %d frames out, want 1; counters %v", client, queue, len(fs), nonZero(ctr))
	}
	d := decodeL4(t, fs[0])
	if d.src.Addr() != lip || !d.tcp.SYN {
		t.Fatalf("SYN out %s -> %s", d.src, d.dst)
	}
	return d.dst
}

func templates(t *testing.T, td *testDP) []ConnInfo {
	t.Helper()
	all, err := td.d.Conns(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []ConnInfo
	for _, c := range all {
		if c.Template {
			out = append(out, c)
		}
	}
	return out
}

func destByAddr(td *testDP, k ipvs.ServiceKey, a netip.AddrPort) *ipvs.Dest {
	for _, d := range td.d.IPVS().Table().Service(k).Dests {
		if d.Spec.Addr == a {
			return d
		}
	}
	return nil
}

// TestPersistenceAcrossWorkers: a client network's connections, arriving
// on both workers from many source ports, all meet one real server; the
// template is listed as LVS lists it and counted on its real server.
func TestPersistenceAcrossWorkers(t *testing.T) {
	td, k := persistDP(t, Options{})
	vipPort := netip.AddrPortFrom(vip, 81)
	first := td.synVia(t, 1, netip.AddrPortFrom(clientIP, 30000), vipPort)
	for i := 1; i < 40; i++ {
		// two addresses of the client's /24, both workers
		src := clientIP
		if i%3 == 0 {
			src = netip.MustParseAddr("10.1.0.77")
		}
		if got := td.synVia(t, i%2, netip.AddrPortFrom(src, uint16(30000+i)), vipPort); got != first {
			t.Fatalf("connection %d (%s, worker %d) went to %s, the client's first to %s", i, src, i%2, got, first)
		}
	}
	if n := td.sum(CtrLBPersistReused); n != 39 {
		t.Errorf("lb_persist_reused = %d, want 39", n)
	}
	ts := templates(t, td)
	if len(ts) != 1 {
		t.Fatalf("templates %+v, want one", ts)
	}
	tp := ts[0]
	if tp.Client != netip.MustParseAddrPort("10.1.0.0:0") || tp.Virtual != vipPort || tp.Dest != first || tp.State.String() != "NONE" ||
		tp.Worker != -1 || tp.Local.IsValid() || tp.Expires <= 290*time.Second || tp.Expires > 300*time.Second {
		t.Errorf("template %+v", tp)
	}
	if d := destByAddr(td, k, first); d.C.Persist.Load() != 1 {
		t.Errorf("PersistConn of %s = %d, want 1", first, d.C.Persist.Load())
	}
	// another client network gets a template of its own
	td.synVia(t, 0, netip.MustParseAddrPort("10.9.0.5:1000"), vipPort)
	if ts := templates(t, td); len(ts) != 2 {
		t.Fatalf("%d templates after a second client network, want 2", len(ts))
	}
	// ipvsadm -L -c for one service lists its templates only
	other := td.service(ipvs.TCP, vip, 82, "rr", lip, netip.AddrPortFrom(rs1IP, 8080))
	if cs, _ := td.d.Conns(&other); len(cs) != 0 {
		t.Errorf("listing of %s shows %d entries", other, len(cs))
	}
}

// TestPersistenceQuiescedDest: a quiesced real server keeps its persistent
// clients (LVS's default) while new clients go elsewhere; with
// expire_quiescent_template the client is scheduled anew.
func TestPersistenceQuiescedDest(t *testing.T) {
	for _, expireQuiescent := range []bool{false, true} {
		td, k := persistDP(t, Options{ExpireQuiescentTemplate: expireQuiescent})
		vipPort := netip.AddrPortFrom(vip, 81)
		a := td.synVia(t, 0, netip.AddrPortFrom(clientIP, 31000), vipPort)
		if err := td.d.EditDest(k, ipvs.DestSpec{Addr: a, Weight: 0, Fwd: ipvs.FwdFullNAT}); err != nil {
			t.Fatal(err)
		}
		got := td.synVia(t, 1, netip.AddrPortFrom(clientIP, 31001), vipPort)
		if !expireQuiescent && got != a {
			t.Errorf("persistent client moved off its quiesced real server %s to %s", a, got)
		}
		if expireQuiescent && got == a {
			t.Errorf("expire_quiescent_template: the client still goes to its quiesced real server %s", a)
		}
		// a new client never gets the quiesced one
		for i := 0; i < 4; i++ {
			src := netip.AddrFrom4([4]byte{10, 9, byte(i), 1})
			if n := td.synVia(t, i%2, netip.AddrPortFrom(src, 2000), vipPort); n == a {
				t.Errorf("new client %s scheduled to the quiesced real server", src)
			}
		}
		if expireQuiescent {
			if d := destByAddr(td, k, a); d.C.Persist.Load() != 0 {
				t.Errorf("the quiesced real server still counts %d templates after its client moved", d.C.Persist.Load())
			}
		}
	}
}

// TestPersistenceDestRemoved: the template of a removed real server is
// re-pointed at the client's next connection, and the counts move.
func TestPersistenceDestRemoved(t *testing.T) {
	td, k := persistDP(t, Options{})
	vipPort := netip.AddrPortFrom(vip, 81)
	a := td.synVia(t, 0, netip.AddrPortFrom(clientIP, 32000), vipPort)
	if err := td.d.DelDest(k, a, false); err != nil {
		t.Fatal(err)
	}
	b := td.synVia(t, 1, netip.AddrPortFrom(clientIP, 32001), vipPort)
	if b == a {
		t.Fatalf("went to the removed real server %s", a)
	}
	if c := td.synVia(t, 0, netip.AddrPortFrom(clientIP, 32002), vipPort); c != b {
		t.Errorf("after re-pointing, the client went to %s and %s", b, c)
	}
	if ts := templates(t, td); len(ts) != 1 || ts[0].Dest != b {
		t.Errorf("templates %+v, want one to %s", ts, b)
	}
	if d := destByAddr(td, k, b); d.C.Persist.Load() != 1 {
		t.Errorf("PersistConn of %s = %d, want 1", b, d.C.Persist.Load())
	}
}

// TestPersistenceExpiry: a template outlives its timeout while it controls
// a connection (re-armed, as LVS does), and goes once it controls none and
// its time has passed.
func TestPersistenceExpiry(t *testing.T) {
	td, k := persistDP(t, Options{Workers: 1})
	if err := td.d.SetTimeouts(0, 0, 0); err != nil {
		t.Fatal(err)
	}
	vipPort := netip.AddrPortFrom(vip, 81)
	a := td.synVia(t, 0, netip.AddrPortFrom(clientIP, 33000), vipPort)
	// 200 s: the SYN_RECV connection (60 s) is gone, the template (300 s) stays
	td.d.start = td.d.start.Add(-200 * time.Second)
	td.stepAll()
	td.stepAll()
	if n := td.w.sess.Len(); n != 0 {
		t.Fatalf("%d connections left", n)
	}
	td.d.expireTemplates()
	ts := templates(t, td)
	if len(ts) != 1 || ts[0].Expires > 100*time.Second {
		t.Fatalf("templates %+v, want one with about 100 s left", ts)
	}
	// a connection of the client re-arms it to 300 s, to the same server
	if got := td.synVia(t, 0, netip.AddrPortFrom(clientIP, 33001), vipPort); got != a {
		t.Fatalf("the client went to %s, its template says %s", got, a)
	}
	if ts := templates(t, td); ts[0].Expires < 290*time.Second {
		t.Errorf("template not re-armed by a connection: %s left", ts[0].Expires)
	}
	// hold that connection: establish it (established lasts 900 s)
	td.inject(1, tcpFrame(t, tcpSeg{src: a, dst: netip.AddrPortFrom(lip, td.lastLPort(t)), smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 9, ackn: 2}))
	td.stepAll()
	td.outAll(0)
	td.inject(0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 33001), dst: vipPort, smac: macClient, dmac: macDP0, ack: true, seq: 2, ackn: 10}))
	td.stepAll()
	td.outAll(1)
	// 400 s later the template's time has passed, but it controls a
	// connection: re-armed, not removed
	td.d.start = td.d.start.Add(-400 * time.Second)
	td.stepAll()
	td.d.expireTemplates()
	if ts := templates(t, td); len(ts) != 1 || ts[0].Expires < 290*time.Second {
		t.Fatalf("a template controlling a connection: %+v, want it re-armed", ts)
	}
	// the connection ends; 300 s later the template goes
	td.d.start = td.d.start.Add(-1000 * time.Second)
	td.stepAll()
	td.stepAll()
	if n := td.w.sess.Len(); n != 0 {
		t.Fatalf("%d connections left after 1000 s", n)
	}
	td.d.expireTemplates()
	if ts := templates(t, td); len(ts) != 0 {
		t.Fatalf("templates %+v left after their time with no connection", ts)
	}
	if d := destByAddr(td, k, a); d.C.Persist.Load() != 0 {
		t.Errorf("PersistConn = %d after the template went", d.C.Persist.Load())
	}
}

// lastLPort is the local port of the worker's newest connection.
func (td *testDP) lastLPort(t *testing.T) uint16 {
	t.Helper()
	cs, _ := td.d.Conns(nil)
	var p uint16
	for _, c := range cs {
		if !c.Template && c.Client.Port() == 33001 {
			p = c.Local.Port()
		}
	}
	if p == 0 {
		t.Fatal("no connection of port 33001")
	}
	return p
}

// TestPersistentPortZero: a port-0 service takes every port of its VIP;
// a real server without a port gets the port the client asked for, and
// the client's connections to any port meet one real server.
func TestPersistentPortZero(t *testing.T) {
	td := fixture{Options: Options{Workers: 2, ConnCapacity: 1 << 12}, addrs: lbAddrs, lbNeighbors: true}.build(t)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err == nil {
		t.Fatal("a port-0 service without persistence was accepted")
	}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr", Persistent: true, PersistTimeout: 60}); err != nil {
		t.Fatal(err)
	}
	for _, rs := range []netip.Addr{rs1IP, rs2IP} {
		if err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs, 0), Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
			t.Fatal(err)
		}
	}
	if err := td.d.AddLAddr(k, ipvs.LAddr{Addr: lip}); err != nil {
		t.Fatal(err)
	}
	var server netip.Addr
	for i, port := range []uint16{443, 22, 8080, 443} {
		got := td.synVia(t, i%2, netip.AddrPortFrom(clientIP, uint16(34000+i)), netip.AddrPortFrom(vip, port))
		if got.Port() != port {
			t.Errorf("SYN to port %d reached %s", port, got)
		}
		if i == 0 {
			server = got.Addr()
		} else if got.Addr() != server {
			t.Errorf("port %d: %s, the client's first connection went to %s", port, got.Addr(), server)
		}
	}
	ts := templates(t, td)
	if len(ts) != 1 || ts[0].Virtual != netip.AddrPortFrom(vip, 0) || ts[0].Dest != netip.AddrPortFrom(server, 0) ||
		ts[0].Client != netip.AddrPortFrom(clientIP, 0) {
		t.Errorf("templates %+v", ts)
	}
	// a more specific service wins over the port-0 one
	td.service(ipvs.TCP, vip, 8443, "rr", lip, netip.AddrPortFrom(rs1IP, 9443))
	if got := td.synVia(t, 0, netip.AddrPortFrom(clientIP, 34100), netip.AddrPortFrom(vip, 8443)); got != netip.AddrPortFrom(rs1IP, 9443) {
		t.Errorf("SYN to the port-8443 service went to %s", got)
	}
}

// TestOnePacketScheduling: -o spreads the datagrams of one flow over the
// real servers and leaves no connection behind.
func TestOnePacketScheduling(t *testing.T) {
	td := fixture{Options: Options{Workers: 1, ConnCapacity: 1 << 12}, addrs: lbAddrs, lbNeighbors: true}.build(t)
	k := ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip, Port: 514}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr", OnePacket: true}); err != nil {
		t.Fatal(err)
	}
	for _, rs := range []netip.Addr{rs1IP, rs2IP} {
		if err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs, 5140), Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
			t.Fatal(err)
		}
	}
	if err := td.d.AddLAddr(k, ipvs.LAddr{Addr: lip}); err != nil {
		t.Fatal(err)
	}
	client := netip.AddrPortFrom(clientIP, 5000)
	seen := map[netip.Addr]int{}
	for i := 0; i < 6; i++ {
		msg := []byte{'m', byte('0' + i)}
		d := td.one(t, 0, udpFrame(t, macClient, macDP0, client, netip.AddrPortFrom(vip, 514), msg), 1)
		if d.src.Addr() != lip || d.dst.Port() != 5140 || string(d.udp.Payload) != string(msg) {
			t.Fatalf("datagram %d out %s -> %s %q", i, d.src, d.dst, d.udp.Payload)
		}
		seen[d.dst.Addr()]++
	}
	if seen[rs1IP] != 3 || seen[rs2IP] != 3 {
		t.Errorf("one flow's datagrams went %v, want 3 and 3 (rr, each scheduled)", seen)
	}
	if n := td.w.sess.Len(); n != 0 {
		t.Errorf("%d connections after one-packet datagrams", n)
	}
	if td.sum(CtrLBOnePacket) != 6 {
		t.Errorf("lb_one_packet = %d", td.sum(CtrLBOnePacket))
	}
	if svc := td.d.IPVS().Table().Service(k); svc.Dests[0].Stats.Conns.Load()+svc.Dests[1].Stats.Conns.Load() != 6 {
		t.Error("one-packet datagrams not counted as connections")
	}
}

// TestConhashQUICConnectionID: conhash with the qid target keeps a QUIC
// connection on one real server when the client's port changes (the
// payload reaches the scheduler), and spreads different connections.
func TestConhashQUICConnectionID(t *testing.T) {
	td := fixture{Options: Options{Workers: 1, ConnCapacity: 1 << 12}, addrs: lbAddrs, lbNeighbors: true}.build(t)
	k := ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip, Port: 443}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "conhash", SchedFlags: []string{"qid"}}); err != nil {
		t.Fatal(err)
	}
	for _, rs := range []netip.Addr{rs1IP, rs2IP} {
		if err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs, 4433), Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
			t.Fatal(err)
		}
	}
	if err := td.d.AddLAddr(k, ipvs.LAddr{Addr: lip}); err != nil {
		t.Fatal(err)
	}
	long := func(cid byte) []byte { // a QUIC long header with an 8-byte DCID
		return append([]byte{0xc0, 0, 0, 0, 1, 8}, cid, cid, cid, cid, cid, cid, cid, cid, 0, 0)
	}
	perCID := map[byte]netip.Addr{}
	servers := map[netip.Addr]bool{}
	port := uint16(6000)
	for cid := byte(1); cid <= 16; cid++ {
		for rep := 0; rep < 3; rep++ { // the same connection id from three client ports
			port++
			d := td.one(t, 0, udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, port), netip.AddrPortFrom(vip, 443), long(cid)), 1)
			if prev, ok := perCID[cid]; ok && prev != d.dst.Addr() {
				t.Fatalf("connection id %d went to %s and %s", cid, prev, d.dst.Addr())
			}
			perCID[cid] = d.dst.Addr()
			servers[d.dst.Addr()] = true
		}
	}
	if len(servers) != 2 {
		t.Errorf("16 connection ids all went to %v: the QUIC id is not what was hashed", servers)
	}
}

// TestPersistenceSyncedConnection: a connection installed by session sync
// (a failover) leaves its client a template to the connection's real
// server, so the client's next connection goes there; dpip flow answers
// from the template.
func TestPersistenceSyncedConnection(t *testing.T) {
	td, k := persistDP(t, Options{})
	vipPort := netip.AddrPortFrom(vip, 81)
	rs2 := netip.AddrPortFrom(rs2IP, 8080)
	client := netip.AddrPortFrom(clientIP, 35000)
	res, err := td.d.InstallSynced([]SyncConn{{Kind: SyncUpdate, Proto: 6, State: session.StateEstablished,
		Client: client, Virtual: vipPort, Local: netip.AddrPortFrom(lip, 2050), Dest: rs2}})
	if err != nil || res.Installed != 1 {
		t.Fatalf("InstallSynced = %+v, %v", res, err)
	}
	if ts := templates(t, td); len(ts) != 1 || ts[0].Dest != rs2 {
		t.Fatalf("templates %+v, want one to %s", ts, rs2)
	}
	if d := destByAddr(td, k, rs2); d.C.Persist.Load() != 1 {
		t.Errorf("PersistConn of %s = %d", rs2, d.C.Persist.Load())
	}
	a, err := td.d.SimulateFlow(ipvs.TCP, netip.AddrPortFrom(clientIP, 35001), vipPort)
	if err != nil || !a.Predicted || a.Dest != rs2 {
		t.Errorf("SimulateFlow = %+v, %v; want the template's %s", a, err, rs2)
	}
	for i := 0; i < 4; i++ {
		if got := td.synVia(t, i%2, netip.AddrPortFrom(clientIP, uint16(35001+i)), vipPort); got != rs2 {
			t.Fatalf("new connection %d went to %s, the synced one to %s", i, got, rs2)
		}
	}
}
