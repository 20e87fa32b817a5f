package dataplane

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/ipvs"
)

// expireAll moves the dataplane's clock on by d and runs the worker until
// its connections due by then are gone.
func (td *testDP) expireAll(t *testing.T, d time.Duration) {
	t.Helper()
	td.d.start = td.d.start.Add(-d)
	td.w.iterate()
	td.w.iterate()
}

// expireResets expires td's connections (past ESTABLISHED's 900 s) and
// returns the one frame sent to the real server and the one sent to the
// client, failing unless the table is empty and exactly those two left.
func (td *testDP) expireResets(t *testing.T) (toServer, toClient []byte) {
	t.Helper()
	td.expireAll(t, 20*time.Minute)
	if n := td.w.sess.Len(); n != 0 {
		t.Fatalf("%d conns left", n)
	}
	srv, cli := td.outAll(1), td.outAll(0)
	if len(srv) != 1 || len(cli) != 1 {
		t.Fatalf("%d frames to the server, %d to the client; want one RST each", len(srv), len(cli))
	}
	return srv[0], cli[0]
}

// wantReset checks that frame is a bare RST from src to dst with sequence
// number seq (gopacket has checked both checksums).
func wantReset(t *testing.T, what string, frame []byte, src, dst netip.AddrPort, seq uint32) {
	t.Helper()
	d := decodeL4(t, frame)
	if d.tcp == nil {
		t.Fatalf("%s: not TCP", what)
	}
	if d.src != src || d.dst != dst || !d.tcp.RST || d.tcp.ACK || d.tcp.SYN || d.tcp.FIN || d.tcp.Seq != seq || len(d.tcp.Payload) != 0 {
		t.Errorf("%s: %s -> %s rst=%v ack=%v syn=%v fin=%v seq=%d payload %d, want a bare RST %s -> %s seq %d",
			what, d.src, d.dst, d.tcp.RST, d.tcp.ACK, d.tcp.SYN, d.tcp.FIN, d.tcp.Seq, len(d.tcp.Payload), src, dst, seq)
	}
}

// TestExpireResetsBothEnds: an ESTABLISHED FullNAT connection that
// expires is reset at the real server, from the connection's local
// address with the server's last acknowledgment number, and at the
// client, from the VIP with the end of the server's data — the numbers
// each end expects next, so both take the RST at once (RFC 5961). An
// older segment of the server's (a retransmission) does not move them
// back. IPv4 and IPv6.
func TestExpireResetsBothEnds(t *testing.T) {
	for _, c := range []struct {
		name          string
		client, v, rs netip.Addr
	}{
		{"ipv4", clientIP, vip, rs1IP},
		{"ipv6", clientIP6, vip6, rs1IP6},
	} {
		t.Run(c.name, func(t *testing.T) {
			td := fixture{Options: Options{ConnCapacity: 1 << 10}, addrs: lbAddrs, lbNeighbors: true}.build(t)
			local := lip
			if c.client.Is6() {
				local = lip6
			}
			rs := netip.AddrPortFrom(c.rs, 8080)
			td.service(ipvs.TCP, c.v, 80, "rr", local, rs)
			client, vp := netip.AddrPortFrom(c.client, 40100), netip.AddrPortFrom(c.v, 80)
			lport := fullNATHandshake(t, td, client, vp, rs) // client ISN 1000, server ISN 5000
			lap := netip.AddrPortFrom(local, lport)
			// 50 bytes of request, 100 of answer
			td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, psh: true,
				seq: 1001, ackn: 5001, payload: make([]byte, 50)}), 1)
			td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: lap, smac: macRS1, dmac: macDP1, ack: true, psh: true,
				seq: 5001, ackn: 1051, payload: make([]byte, 100)}), 0)
			// an old duplicate of the SYN-ACK's data-less ACK: changes nothing
			td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: lap, smac: macRS1, dmac: macDP1, ack: true,
				seq: 5001, ackn: 1001}), 0)

			toServer, toClient := td.expireResets(t)
			wantReset(t, "to the server", toServer, lap, rs, 1051)
			wantReset(t, "to the client", toClient, vp, client, 5101)
			if s, cl := td.sum(CtrLBResetServer), td.sum(CtrLBResetClient); s != 1 || cl != 1 {
				t.Errorf("lb_reset_server %d lb_reset_client %d, want 1 1", s, cl)
			}
		})
	}
}

// TestExpireResetNAT: a NAT (-m) connection's RST to the real server comes
// from the client's address, as its packets do.
func TestExpireResetNAT(t *testing.T) {
	rs := netip.AddrPortFrom(rs1IP, 8080)
	td, _ := masqDP(t, 1, ipvs.TCP, vip, rs)
	client, vp := netip.AddrPortFrom(clientIP, 41000), netip.AddrPortFrom(vip, 80)
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, syn: true, seq: 100}), 1)
	td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: client, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 9000, ackn: 101}), 0)
	td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: vp, smac: macClient, dmac: macDP0, ack: true, seq: 101, ackn: 9001}), 1)

	toServer, toClient := td.expireResets(t)
	wantReset(t, "to the server", toServer, client, rs, 101)
	wantReset(t, "to the client", toClient, vp, client, 9001)
}

// TestEvictResetsAnsweredServer: under a flood, the embryonic connection a
// full table evicts is reset at its real server when the server answered
// it (its half-open connection would otherwise hold the local port for a
// minute), never at the client (a flood's source is forged). One the
// server never answered is evicted silently, as is everything with
// expire_reset off.
func TestEvictResetsAnsweredServer(t *testing.T) {
	for _, off := range []bool{false, true} {
		td := fixture{Options: Options{ConnCapacity: 16, SessionHighWater: 100, NoExpireReset: off}, addrs: lbAddrs, lbNeighbors: true}.build(t)
		rs := netip.AddrPortFrom(rs1IP, 8080)
		td.service(ipvs.TCP, vip, 80, "rr", lip, rs)
		var first netip.AddrPort // the oldest: answered by the server
		for i := range 16 {
			c := netip.AddrPortFrom(clientIP, uint16(10000+i))
			syn := synThrough(t, td, c)
			if i == 0 {
				first = syn.src
				td.one(t, 1, tcpFrame(t, tcpSeg{src: rs, dst: first, smac: macRS1, dmac: macDP1, syn: true, ack: true, seq: 5000, ackn: 1001}), 0)
			}
		}
		// evicts the oldest (answered): its RST goes before the new SYN
		td.inject(0, tcpFrame(t, tcpSeg{src: netip.AddrPortFrom(clientIP, 20000), dst: netip.AddrPortFrom(vip, 80),
			smac: macClient, dmac: macDP0, syn: true, seq: 1000}))
		td.stepAll()
		fs := td.outAll(1)
		want := 2
		if off {
			want = 1
		}
		if len(fs) != want {
			t.Fatalf("off=%v: %d frames to the server, want %d", off, len(fs), want)
		}
		if !off {
			wantReset(t, "to the server", fs[0], first, rs, 1001)
		}
		if d := decodeL4(t, fs[len(fs)-1]); !d.tcp.SYN || d.src.Addr() != lip {
			t.Errorf("off=%v: last frame to the server is not the new SYN: %s -> %s", off, d.src, d.dst)
		}
		if got, w := td.sum(CtrLBResetServer), uint64(want-1); got != w {
			t.Errorf("off=%v: lb_reset_server %d, want %d", off, got, w)
		}
		// evicts the next one (never answered): silently
		synThrough(t, td, netip.AddrPortFrom(clientIP, 20001))
		if got := td.sum(CtrLBEvictedEmbryonic); got != 2 {
			t.Errorf("off=%v: lb_evicted_embryonic %d, want 2", off, got)
		}
		if fs := td.outAll(0); len(fs) != 0 || td.sum(CtrLBResetClient) != 0 {
			t.Errorf("off=%v: %d frames to clients, lb_reset_client %d", off, len(fs), td.sum(CtrLBResetClient))
		}
	}
}

// TestExpireResetSynProxy: the client of a SYN-proxy connection sees the
// server's sequence numbers shifted into the cookie's space; its RST at
// expiry is shifted the same way, the server's is not.
func TestExpireResetSynProxy(t *testing.T) {
	c := newSPTest(t, false)
	c.handshake()
	const sisn = 90000
	c.td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: sisn, ackn: c.cisn + 1, mss: 1460}), 1) // → GVS's ACK to the server
	resp := make([]byte, 300)
	out := c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, psh: true, seq: sisn + 1, ackn: c.cisn + 1, payload: resp}), 0)
	if out.tcp.Seq != c.cookie+1 {
		t.Fatalf("response seq %d, want %d", out.tcp.Seq, c.cookie+1)
	}
	toServer, toClient := c.td.expireResets(t)
	wantReset(t, "to the server", toServer, c.local, c.rs, c.cisn+1)
	wantReset(t, "to the client", toClient, c.vip, c.client, c.cookie+1+uint32(len(resp)))
}

// TestExpireResetNAT64: each RST goes in its receiver's family: IPv4 from
// the local address to the real server, IPv6 from the VIP to the client.
func TestExpireResetNAT64(t *testing.T) {
	td := newLBTestDP(t, 1)
	addNAT64Services(t, td)
	local := nat64Open(t, td) // client ISN 1000, server ISN 5000
	td.one(t, 1, tcpFrame(t, tcpSeg{src: nat64RS, dst: local, smac: macRS1, dmac: macDP1, ack: true, psh: true,
		seq: 5001, ackn: 1001, payload: make([]byte, 70)}), 0)
	toServer, toClient := td.expireResets(t)
	wantReset(t, "to the server", toServer, local, nat64RS, 1001)
	wantReset(t, "to the client", toClient, nat64VIP, client64, 5071)
}

// TestExpireNoResetSNAT: an SNAT connection (an inside host's, out
// through GVS's address) ends silently, as in DPVS, although the peer's
// segments passed GVS and were noted.
func TestExpireNoResetSNAT(t *testing.T) {
	td, _ := snatDP(t, 1, "proto=tcp,src-range=10.2.0.0-10.2.0.255,oif=dp0")
	inside, peer := netip.AddrPortFrom(rs1IP, 40000), netip.AddrPortFrom(clientIP, 80)
	wan := td.one(t, 1, tcpFrame(t, tcpSeg{src: inside, dst: peer, smac: macRS1, dmac: macDP1, syn: true, seq: 7}), 0).src
	td.one(t, 0, tcpFrame(t, tcpSeg{src: peer, dst: wan, smac: macClient, dmac: macDP0, syn: true, ack: true, seq: 500, ackn: 8}), 1)
	td.one(t, 1, tcpFrame(t, tcpSeg{src: inside, dst: peer, smac: macRS1, dmac: macDP1, ack: true, seq: 8, ackn: 501}), 0)
	if td.w.sess.Len() != 1 || !td.w.sess.Ends(0).Set() {
		t.Fatalf("%d conns, the peer's segment noted: %v; want the one, noted", td.w.sess.Len(), td.w.sess.Ends(0).Set())
	}
	td.expireAll(t, 20*time.Minute)
	if n := td.w.sess.Len(); n != 0 {
		t.Fatalf("%d conns left", n)
	}
	if a, b := td.outAll(0), td.outAll(1); len(a)+len(b) != 0 || td.sum(CtrLBResetServer)+td.sum(CtrLBResetClient) != 0 {
		t.Errorf("an SNAT connection's end: %d frames out, resets %d %d", len(a)+len(b), td.sum(CtrLBResetServer), td.sum(CtrLBResetClient))
	}
}
