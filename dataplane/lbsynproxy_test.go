package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

func optWS(s byte) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{s}}
}

func optTS(val, ecr uint32) layers.TCPOption {
	d := binary.BigEndian.AppendUint32(nil, val)
	return layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: binary.BigEndian.AppendUint32(d, ecr)}
}

var optSACKPerm = layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}

func optSACK(edges ...uint32) layers.TCPOption {
	var d []byte
	for _, e := range edges {
		d = binary.BigEndian.AppendUint32(d, e)
	}
	return layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: uint8(2 + len(d)), OptionData: d}
}

// tcpOpt returns the data of the option kind in a decoded segment.
func tcpOpt(tcp *layers.TCP, kind layers.TCPOptionKind) ([]byte, bool) {
	for _, o := range tcp.Options {
		if o.OptionType == kind {
			return o.OptionData, true
		}
	}
	return nil, false
}

// spConnT drives one connection through a SYN-proxy service.
type spConnT struct {
	t               *testing.T
	td              *testDP
	client, vip, rs netip.AddrPort
	local           netip.AddrPort
	cisn, cookie    uint32
	gvsTS           uint32
	extra           int
	clientSeg       func(s tcpSeg) []byte
	serverSeg       func(s tcpSeg) []byte
}

func newSPTest(t *testing.T, v6 bool) *spConnT {
	td := newLBTestDP(t, 1)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}
	c := &spConnT{t: t, td: td, client: netip.AddrPortFrom(clientIP, 40000), vip: netip.AddrPortFrom(vip, 80),
		rs: netip.AddrPortFrom(rs1IP, 8080), cisn: 1000}
	if v6 {
		k = td.service(ipvs.TCP, vip6, 80, "rr", lip6, netip.AddrPortFrom(rs1IP6, 8080))
		c.client, c.vip, c.rs = netip.AddrPortFrom(clientIP6, 40000), netip.AddrPortFrom(vip6, 80), netip.AddrPortFrom(rs1IP6, 8080)
	}
	if err := td.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "rr", SynProxy: true}); err != nil {
		t.Fatal(err)
	}
	c.clientSeg = func(s tcpSeg) []byte {
		s.src, s.dst, s.smac, s.dmac = c.client, c.vip, macClient, macDP0
		return tcpFrame(t, s)
	}
	c.serverSeg = func(s tcpSeg) []byte {
		s.src, s.dst, s.smac, s.dmac = c.rs, c.local, macRS1, macDP1
		return tcpFrame(t, s)
	}
	return c
}

func (c *spConnT) conns() int { return c.td.w.sess.Len() }

// handshake: the client's SYN is answered by GVS alone (no connection),
// its ACK makes the connection and GVS's SYN to the real server.
func (c *spConnT) handshake() decoded {
	t := c.t
	opts := []layers.TCPOption{optSACKPerm, optTS(777, 0), nopOpt, optWS(6)}
	sa := c.td.one(t, 0, c.clientSeg(tcpSeg{syn: true, seq: c.cisn, mss: 1460, opts: opts}), 0)
	if c.conns() != 0 {
		t.Fatalf("%d connections after a SYN, want none", c.conns())
	}
	if sa.src != c.vip || sa.dst != c.client || !sa.tcp.SYN || !sa.tcp.ACK || sa.tcp.Ack != c.cisn+1 || sa.ttl != 63 {
		t.Fatalf("SYN-ACK %s -> %s SYN %v ACK %v ack %d ttl %d", sa.src, sa.dst, sa.tcp.SYN, sa.tcp.ACK, sa.tcp.Ack, sa.ttl)
	}
	if !bytes.Equal(sa.dstMAC, macClient) {
		t.Errorf("SYN-ACK to MAC %s, want the client's", sa.dstMAC)
	}
	mss, _ := tcpOpt(sa.tcp, layers.TCPOptionKindMSS)
	extra := c.extra // room for what GVS inserts: the TOA, or a proxy protocol header
	if extra == 0 {
		extra = 8
		if c.client.Addr().Is6() {
			extra = 20
		}
	}
	wantMSS := uint16(1500 - 20 - 20 - extra)
	if c.client.Addr().Is6() {
		wantMSS = uint16(1500 - 40 - 20 - extra)
	}
	if len(mss) != 2 || binary.BigEndian.Uint16(mss) != wantMSS {
		t.Errorf("SYN-ACK MSS %x, want %d", mss, wantMSS)
	}
	if ws, _ := tcpOpt(sa.tcp, layers.TCPOptionKindWindowScale); len(ws) != 1 || ws[0] != 7 {
		t.Errorf("SYN-ACK wscale %v, want 7", ws)
	}
	if _, ok := tcpOpt(sa.tcp, layers.TCPOptionKindSACKPermitted); !ok {
		t.Error("SYN-ACK without SACK permitted")
	}
	ts, _ := tcpOpt(sa.tcp, layers.TCPOptionKindTimestamps)
	if len(ts) != 8 || binary.BigEndian.Uint32(ts[4:]) != 777 {
		t.Fatalf("SYN-ACK timestamps %x, want an echo of 777", ts)
	}
	c.cookie, c.gvsTS = sa.tcp.Seq, binary.BigEndian.Uint32(ts)

	syn := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: c.cookie + 1, opts: []layers.TCPOption{optTS(778, c.gvsTS)}}), 1)
	if c.conns() != 1 {
		t.Fatalf("%d connections after a valid ACK, want 1", c.conns())
	}
	if syn.dst != c.rs || !syn.tcp.SYN || syn.tcp.ACK || syn.tcp.Seq != c.cisn {
		t.Fatalf("SYN to server %s -> %s SYN %v ACK %v seq %d", syn.src, syn.dst, syn.tcp.SYN, syn.tcp.ACK, syn.tcp.Seq)
	}
	c.local = syn.src
	wantMSS = 1460 // the client's, in the cookie's table
	if c.client.Addr().Is6() {
		wantMSS = 1440 // the IPv6 table's step below 1460
	}
	if m, _ := tcpOpt(syn.tcp, layers.TCPOptionKindMSS); binary.BigEndian.Uint16(m) != wantMSS {
		t.Errorf("SYN to server MSS %x, want %d", m, wantMSS)
	}
	if ws, _ := tcpOpt(syn.tcp, layers.TCPOptionKindWindowScale); len(ws) != 1 || ws[0] != 6 {
		t.Errorf("SYN to server wscale %v, want the client's 6", ws)
	}
	if ts, _ := tcpOpt(syn.tcp, layers.TCPOptionKindTimestamps); binary.BigEndian.Uint32(ts) != 778 {
		t.Errorf("SYN to server TSval %x, want the client's 778", ts)
	}
	return syn
}

// TestSynProxy: the whole life of a proxied connection, IPv4 and IPv6:
// cookie SYN-ACK, the server's handshake with the client's held request
// and the TOA, then sequence, SACK, timestamp and window shifting both
// ways, and FIN/RST.
func TestSynProxy(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		c := newSPTest(t, v6)
		c.handshake()
		// the request arrives before the server answers: held
		req := []byte("GET / HTTP/1.1\r\n\r\n")
		c.td.inject(0, c.clientSeg(tcpSeg{ack: true, psh: true, seq: c.cisn + 1, ackn: c.cookie + 1, payload: req,
			opts: []layers.TCPOption{optTS(779, c.gvsTS)}}))
		c.td.stepAll()
		if n := len(c.td.outAll(1)); n != 0 || c.td.sum(CtrLBSynProxyHeld) != 1 {
			t.Fatalf("request before the server's answer: %d frames out, held %d", n, c.td.sum(CtrLBSynProxyHeld))
		}
		// the server's SYN-ACK (wscale 9, its own clock) → the ACK with the request and the TOA
		const sisn, sts = 90000, 5000000
		ack := c.td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: sisn, ackn: c.cisn + 1, mss: 1460,
			opts: []layers.TCPOption{optSACKPerm, optTS(sts, 778), nopOpt, optWS(9)}}), 1)
		if ack.src != c.local || ack.dst != c.rs || ack.tcp.SYN || !ack.tcp.ACK || ack.tcp.Seq != c.cisn+1 || ack.tcp.Ack != sisn+1 {
			t.Fatalf("handshake ACK %s -> %s seq %d ack %d", ack.src, ack.dst, ack.tcp.Seq, ack.tcp.Ack)
		}
		if !bytes.Equal(ack.tcp.Payload, req) {
			t.Fatalf("handshake ACK payload %q, want the held request", ack.tcp.Payload)
		}
		wantGVSTOA(t, "handshake ACK", ack, c.client)
		if ts, _ := tcpOpt(ack.tcp, layers.TCPOptionKindTimestamps); binary.BigEndian.Uint32(ts[4:]) != sts {
			t.Errorf("handshake ACK TSecr %x, want the server's %d", ts, sts)
		}
		conn := c.td.w.sess.Get(0)
		if conn.State != session.StateEstablished {
			t.Fatalf("state %s after the server's handshake", conn.State)
		}
		// server → client: seq into the cookie's space, TSval into GVS's clock, window 9 → 7
		resp := []byte("HTTP/1.1 200 OK\r\n\r\n")
		out := c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, psh: true, seq: sisn + 1, ackn: c.cisn + 1 + uint32(len(req)), payload: resp,
			opts: []layers.TCPOption{nopOpt, nopOpt, optTS(sts+10, 779)}}), 0)
		if out.src != c.vip || out.dst != c.client || out.tcp.Seq != c.cookie+1 || out.tcp.Ack != c.cisn+1+uint32(len(req)) {
			t.Fatalf("response %s -> %s seq %d (want %d) ack %d", out.src, out.dst, out.tcp.Seq, c.cookie+1, out.tcp.Ack)
		}
		if out.tcp.Window != 65535 { // 65535<<9>>7 saturates
			t.Errorf("response window %d, want 65535", out.tcp.Window)
		}
		if ts, _ := tcpOpt(out.tcp, layers.TCPOptionKindTimestamps); binary.BigEndian.Uint32(ts) != c.gvsTS+10 || binary.BigEndian.Uint32(ts[4:]) != 779 {
			t.Errorf("response TS %x, want %d/779", ts, c.gvsTS+10)
		}
		small := c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: sisn + 1 + uint32(len(resp)), ackn: c.cisn + 1 + uint32(len(req))}), 0)
		if small.tcp.Window != 65535 {
			t.Errorf("window: %d", small.tcp.Window)
		}
		// client → server: ack and SACK edges into the server's space, TSecr into its clock
		in := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1 + uint32(len(req)), ackn: c.cookie + 1 + uint32(len(resp)),
			opts: []layers.TCPOption{nopOpt, nopOpt, optTS(780, c.gvsTS+10), nopOpt, nopOpt, optSACK(c.cookie+100, c.cookie+200)}}), 1)
		if in.tcp.Ack != sisn+1+uint32(len(resp)) || in.tcp.Seq != c.cisn+1+uint32(len(req)) {
			t.Errorf("client ACK seq %d ack %d, want %d %d", in.tcp.Seq, in.tcp.Ack, c.cisn+1+uint32(len(req)), sisn+1+uint32(len(resp)))
		}
		if s, _ := tcpOpt(in.tcp, layers.TCPOptionKindSACK); len(s) != 8 || binary.BigEndian.Uint32(s) != sisn+100 || binary.BigEndian.Uint32(s[4:]) != sisn+200 {
			t.Errorf("SACK %x, want %d-%d", s, sisn+100, sisn+200)
		}
		if ts, _ := tcpOpt(in.tcp, layers.TCPOptionKindTimestamps); binary.BigEndian.Uint32(ts[4:]) != sts+10 {
			t.Errorf("client TSecr %x, want %d", ts, sts+10)
		}
		// FIN from the server, shifted; RST from the client passes
		fin := c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, fin: true, seq: sisn + 1 + uint32(len(resp)), ackn: c.cisn + 1 + uint32(len(req))}), 0)
		if !fin.tcp.FIN || fin.tcp.Seq != c.cookie+1+uint32(len(resp)) {
			t.Errorf("FIN seq %d", fin.tcp.Seq)
		}
		rst := c.td.one(t, 0, c.clientSeg(tcpSeg{rst: true, ack: true, seq: c.cisn + 1 + uint32(len(req)), ackn: c.cookie + 2 + uint32(len(resp))}), 1)
		if !rst.tcp.RST || rst.tcp.Ack != sisn+2+uint32(len(resp)) {
			t.Errorf("RST ack %d", rst.tcp.Ack)
		}
		for _, ctr := range []Counter{CtrLBSynProxyCookies, CtrLBSynProxyConns, CtrLBSynProxyEstablished} {
			if c.td.sum(ctr) != 1 {
				t.Errorf("%s = %d, want 1", ctr, c.td.sum(ctr))
			}
		}
	}
}

// TestSynProxyCookieChecks: a wrong cookie, a stale one and a retransmitted
// SYN; an ACK that lost its way (the third ACK lost, data first) still
// opens the connection.
func TestSynProxyCookieChecks(t *testing.T) {
	c := newSPTest(t, false)
	syn := c.clientSeg(tcpSeg{syn: true, seq: c.cisn, mss: 1460})
	a := c.td.one(t, 0, syn, 0)
	b := c.td.one(t, 0, syn, 0)
	if a.tcp.Seq != b.tcp.Seq {
		t.Errorf("a retransmitted SYN got cookie %d, the first %d", b.tcp.Seq, a.tcp.Seq)
	}
	for _, ackn := range []uint32{a.tcp.Seq, a.tcp.Seq + 2, a.tcp.Seq ^ 1<<20} {
		c.td.inject(0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: ackn}))
	}
	c.td.inject(0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 2, ackn: a.tcp.Seq + 1})) // another ISN
	c.td.stepAll()
	if n := len(c.td.outAll(1)); n != 0 || c.conns() != 0 || c.td.sum(CtrDropLBSynProxyBadCookie) != 4 {
		t.Fatalf("bad cookies: %d frames out, %d conns, %d counted", n, c.conns(), c.td.sum(CtrDropLBSynProxyBadCookie))
	}
	// two rotations: stale
	c.td.d.cookies.Rotate(c.td.d.cookies.Period() + 1)
	c.td.d.cookies.Rotate(c.td.d.cookies.Period() + 1)
	c.td.inject(0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: a.tcp.Seq + 1}))
	c.td.stepAll()
	if c.conns() != 0 || c.td.sum(CtrDropLBSynProxyStaleCookie) != 1 {
		t.Fatalf("stale cookie: %d conns, %d counted", c.conns(), c.td.sum(CtrDropLBSynProxyStaleCookie))
	}
	// lost third ACK: the first data segment opens the connection, is
	// held, and reaches the server with the handshake's ACK
	a = c.td.one(t, 0, syn, 0)
	req := []byte("hello")
	s := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, psh: true, seq: c.cisn + 1, ackn: a.tcp.Seq + 1, payload: req}), 1)
	if !s.tcp.SYN || len(s.tcp.Payload) != 0 {
		t.Fatalf("data first: SYN %v payload %q", s.tcp.SYN, s.tcp.Payload)
	}
	c.local = s.src
	// a replayed ACK of the same cookie finds the connection: no second one
	c.td.inject(0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: a.tcp.Seq + 1}))
	c.td.stepAll()
	if c.conns() != 1 || len(c.td.outAll(1)) != 0 {
		t.Fatalf("replayed ACK: %d conns", c.conns())
	}
	ack := c.td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: 1, ackn: c.cisn + 1, mss: 1460}), 1)
	if !bytes.Equal(ack.tcp.Payload, req) || !ack.tcp.PSH {
		t.Fatalf("handshake ACK payload %q", ack.tcp.Payload)
	}
	// the server repeats its SYN-ACK (GVS's ACK lost): answered again, the
	// client sees nothing
	again := c.td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: 1, ackn: c.cisn + 1, mss: 1460}), 1)
	if again.tcp.SYN || !again.tcp.ACK || again.tcp.Seq != c.cisn+1 || again.tcp.Ack != 2 {
		t.Fatalf("repeated SYN-ACK answered with seq %d ack %d", again.tcp.Seq, again.tcp.Ack)
	}
}

// TestSynProxyServerRefuses: a RST from the real server resets the client
// at the cookie's sequence number and ends the connection.
func TestSynProxyServerRefuses(t *testing.T) {
	c := newSPTest(t, false)
	c.handshake()
	rst := c.td.one(t, 1, c.serverSeg(tcpSeg{rst: true, ack: true, ackn: c.cisn + 1}), 0)
	if !rst.tcp.RST || rst.tcp.Seq != c.cookie+1 || rst.src != c.vip || rst.dst != c.client {
		t.Fatalf("client reset %s -> %s RST %v seq %d, want %d", rst.src, rst.dst, rst.tcp.RST, rst.tcp.Seq, c.cookie+1)
	}
	if c.td.sum(CtrLBSynProxyServerReset) != 1 {
		t.Error("lb_synproxy_server_reset not counted")
	}
}

// TestSynProxyRetryAndStorm: the client's retransmitted first segment
// re-sends the SYN up to max_retries; more segments than the storm
// threshold reset it.
func TestSynProxyRetryAndStorm(t *testing.T) {
	c := newSPTest(t, false)
	c.handshake()
	data := c.clientSeg(tcpSeg{ack: true, psh: true, seq: c.cisn + 1, ackn: c.cookie + 1, payload: []byte("x")})
	c.td.inject(0, data) // held
	c.td.stepAll()
	for i := 0; i < 3; i++ {
		if s := c.td.one(t, 0, data, 1); !s.tcp.SYN {
			t.Fatalf("retransmission %d: not a SYN", i)
		}
	}
	for i := 0; i < 5; i++ { // beyond max_retries: dropped
		c.td.inject(0, data)
	}
	c.td.stepAll()
	if n := len(c.td.outAll(1)); n != 0 || c.td.sum(CtrLBSynProxyRetries) != 3 {
		t.Fatalf("after the retries: %d frames, %d retries", n, c.td.sum(CtrLBSynProxyRetries))
	}
	// 1 held + 3 retries + 5 dropped = 9 segments counted; the 10th reaches the threshold, the 11th resets
	c.td.inject(0, data)
	c.td.stepAll()
	r := c.td.one(t, 0, data, 0)
	if !r.tcp.RST || c.td.sum(CtrLBSynProxyAckStorm) != 1 {
		t.Fatalf("storm: RST %v counted %d", r.tcp.RST, c.td.sum(CtrLBSynProxyAckStorm))
	}
}

// TestSynProxyAllocs: answering SYNs, checking cookies and forwarding a
// proxied connection's segments both ways allocate nothing.
func TestSynProxyAllocs(t *testing.T) {
	l := newLBLoop(t)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}
	if err := l.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "rr", SynProxy: true}); err != nil {
		t.Fatal(err)
	}
	l.w.iterate() // takes the new service table
	cseg := func(s tcpSeg) []byte {
		s.src, s.dst, s.smac, s.dmac = l.client, l.vipPort, macClient, macDP0
		return tcpFrame(t, s)
	}
	syn := cseg(tcpSeg{syn: true, seq: 1, mss: 1460, opts: []layers.TCPOption{optSACKPerm, optTS(1, 0), nopOpt, optWS(6)}})
	sa := decodeL4(t, l.pass(t, 0, 0, syn))
	// the flood's SYNs come from another port: this one's is the connection's now
	other := tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(l.client.Addr(), 40001), dst: l.vipPort, smac: macClient, dmac: macDP0,
		syn: true, seq: 1, mss: 1460, opts: []layers.TCPOption{optSACKPerm, optTS(1, 0), nopOpt, optWS(6)}})
	first := decodeL4(t, l.pass(t, 0, 1, cseg(tcpSeg{ack: true, seq: 2, ackn: sa.tcp.Seq + 1})))
	sseg := func(s tcpSeg) []byte {
		s.src, s.dst, s.smac, s.dmac = l.rs, first.src, macRS1, macDP1
		return tcpFrame(t, s)
	}
	l.pass(t, 1, 1, sseg(tcpSeg{syn: true, ack: true, seq: 1, ackn: 2, mss: 1460, opts: []layers.TCPOption{optTS(5, 1)}}))
	in := cseg(tcpSeg{ack: true, psh: true, seq: 2, ackn: sa.tcp.Seq + 1, payload: make([]byte, 64), opts: []layers.TCPOption{optTS(2, 9)}})
	out := sseg(tcpSeg{ack: true, psh: true, seq: 2, ackn: 66, payload: make([]byte, 64), opts: []layers.TCPOption{optTS(6, 2)}})
	l.pass(t, 0, 1, in)
	l.pass(t, 1, 0, out)
	if n := testing.AllocsPerRun(200, func() {
		l.rx(t, 0, other)
		l.rx(t, 0, in)
		l.rx(t, 1, out)
		l.w.flushAll()
		if l.releaseAll() != 3 {
			t.Fatal("a segment was dropped")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per round", n)
	}
	l.checkPools(t)
}

// TestSynProxySyncFailover: an established proxied connection is
// published with its adjustment, and a second dataplane that installs it
// forwards it with the same shifts (the client keeps its view across a
// failover); a record naming an adjustment on UDP is refused.
func TestSynProxySyncFailover(t *testing.T) {
	a := newSPTest(t, false)
	setSync(a.td, SyncPolicy{Threshold: 1})
	a.handshake()
	const sisn = 70000
	a.td.one(t, 1, a.serverSeg(tcpSeg{syn: true, ack: true, seq: sisn, ackn: a.cisn + 1, mss: 1460, opts: []layers.TCPOption{optWS(9)}}), 1)
	if ev := popSync(a.td); len(ev) != 0 {
		t.Fatalf("published before a client segment of the established connection: %+v", ev)
	}
	a.td.one(t, 0, a.clientSeg(tcpSeg{ack: true, seq: a.cisn + 1, ackn: a.cookie + 1}), 1)
	ev := popSync(a.td)
	if len(ev) != 1 || !ev[0].Adjust.Present || ev[0].Adjust.SeqDelta != sisn-a.cookie || ev[0].Adjust.OutScales != 9<<4|7 {
		t.Fatalf("events %+v, want one with the adjustment (delta %d, scales 9->7)", ev, sisn-a.cookie)
	}

	b := newSPTest(t, false)
	res, err := b.td.d.InstallSynced(ev)
	if err != nil || res != (SyncInstallResult{Installed: 1}) {
		t.Fatalf("InstallSynced = %+v, %v", res, err)
	}
	b.local = a.local
	out := b.td.one(t, 1, b.serverSeg(tcpSeg{ack: true, psh: true, seq: sisn + 1, ackn: a.cisn + 1, payload: []byte("after failover")}), 0)
	if out.tcp.Seq != a.cookie+1 || string(out.tcp.Payload) != "after failover" || out.dst != a.client {
		t.Fatalf("server segment on the peer: seq %d (want %d) to %s", out.tcp.Seq, a.cookie+1, out.dst)
	}
	in := b.td.one(t, 0, b.clientSeg(tcpSeg{ack: true, seq: a.cisn + 1, ackn: a.cookie + 15}), 1)
	if in.tcp.Ack != sisn+15 || in.dst != a.rs {
		t.Fatalf("client segment on the peer: ack %d (want %d)", in.tcp.Ack, sisn+15)
	}
	bad := ev[0]
	bad.Proto = header.ProtoUDP
	bad.State = session.StateUDP
	bad.Client = netip.AddrPortFrom(clientIP, 1)
	if res, _ := b.td.d.InstallSynced([]SyncConn{bad}); res.Refused != 1 {
		t.Errorf("an adjusted UDP record: %+v, want refused", res)
	}
}

// TestSynProxyMalformedFlood: malformed TCP at a SYN-proxy service — bad
// data offsets, options running past the header, zero-length options, bad
// checksums, flag combinations — sends nothing, makes no connection, and
// every frame is counted by exactly one drop counter.
func TestSynProxyMalformedFlood(t *testing.T) {
	c := newSPTest(t, false)
	good := func(s tcpSeg) []byte { return c.clientSeg(s) }
	tcpOff := 14 + 20
	setDoff := func(f []byte, words byte) []byte { f[tcpOff+12] = words<<4 | f[tcpOff+12]&15; return f }
	opt := func(b ...byte) layers.TCPOption {
		return layers.TCPOption{OptionType: layers.TCPOptionKind(b[0]), OptionLength: b[1], OptionData: b[2:]}
	}
	resum := func(edit func([]byte), f []byte) []byte { // edits the TCP header, fixes its checksum
		edit(f)
		tcp := f[tcpOff:]
		tcp[16], tcp[17] = 0, 0
		binary.BigEndian.PutUint16(tcp[16:], header.TransportChecksum(header.ProtoTCP, f[14+12:14+16], f[14+16:14+20], tcp, 16))
		return f
	}
	frames := map[string][]byte{
		"data offset 4":          setDoff(good(tcpSeg{syn: true, seq: 1}), 4),
		"data offset past end":   setDoff(good(tcpSeg{syn: true, seq: 1}), 15),
		"option past the header": resum(func(f []byte) { f[tcpOff+21] = 8 }, good(tcpSeg{syn: true, seq: 1, mss: 1460})), // MSS length 8 in 4 bytes
		"zero-length option":     good(tcpSeg{syn: true, seq: 1, opts: []layers.TCPOption{{OptionType: 2, OptionLength: 0}, nopOpt, nopOpt}}),
		"bad checksum":           badChecksum(good(tcpSeg{syn: true, seq: 1, mss: 1460})),
		"SYN FIN":                good(tcpSeg{syn: true, fin: true, seq: 1}),
		"SYN RST":                good(tcpSeg{syn: true, rst: true, seq: 1}),
		"no flags":               good(tcpSeg{seq: 1}),
		"FIN alone":              good(tcpSeg{fin: true, seq: 1}),
		"RST alone":              good(tcpSeg{rst: true, seq: 1}),
		"ACK bad cookie":         good(tcpSeg{ack: true, seq: 2, ackn: 12345}),
		"ACK bad options":        good(tcpSeg{ack: true, seq: 2, ackn: 12345, opts: []layers.TCPOption{opt(5, 9, 1, 2, 3, 4, 5, 6, 7), nopOpt, nopOpt, nopOpt}}),
		"ACK bad checksum":       badChecksum(good(tcpSeg{ack: true, seq: 2, ackn: 12345})),
	}
	drops := func() (n uint64) {
		for i := Counter(0); i < NumCounters; i++ {
			if i.IsDrop() {
				n += c.td.sum(i)
			}
		}
		return n
	}
	for name, f := range frames {
		before, tx := drops(), c.td.sum(CtrTxPackets)
		c.td.inject(0, f)
		c.td.stepAll()
		if n := len(c.td.outAll(0)) + len(c.td.outAll(1)); n != 0 || c.td.sum(CtrTxPackets) != tx {
			t.Errorf("%s: %d frames sent", name, n)
		}
		if d := drops() - before; d != 1 {
			ctr, _ := c.td.w.Stats()
			t.Errorf("%s: %d drops counted, want 1: %v", name, d, nonZero(ctr))
		}
	}
	if c.conns() != 0 {
		t.Errorf("%d connections after the malformed frames", c.conns())
	}
}
