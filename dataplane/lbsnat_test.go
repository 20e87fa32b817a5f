package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/ipvs"
)

var snatIP = netip.MustParseAddr("10.1.0.200") // on dp0, the "outside"

// snatDP: a match service for inside hosts (10.2.0.0/24, behind dp1)
// leaving by oif, with the SNAT address 10.1.0.200 (on dp0).
func snatDP(t *testing.T, workers int, match string) (*testDP, ipvs.ServiceKey) {
	t.Helper()
	td := fixture{Options: Options{Workers: workers, ConnCapacity: 1 << 12}, addrs: append(append([]string(nil), lbAddrs...), "10.1.0.200/32 dp0"),
		lbNeighbors: true}.build(t)
	m, err := ipvs.ParseMatch(match)
	if err != nil {
		t.Fatal(err)
	}
	k := ipvs.ServiceKey{Proto: m.Proto, Match: m.String()}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(snatIP, 0), Weight: 100, Fwd: ipvs.FwdSNAT}); err != nil {
		t.Fatal(err)
	}
	return td, k
}

// TestSNAT: an inside host's connection to an outside peer leaves from
// the SNAT address and a port of the worker's share; the peer's answers
// come back to that port (on either worker's queue) and reach the inside
// host; nothing but addresses and ports change.
func TestSNAT(t *testing.T) {
	td, k := snatDP(t, 2, "proto=tcp,src-range=10.2.0.0-10.2.0.255,oif=dp0")
	inside, peer := netip.AddrPortFrom(rs1IP, 40000), netip.AddrPortFrom(clientIP, 80)
	d := td.oneOut(t, 1, 0, tcpFrame(t, tcpSeg{src: inside, dst: peer, smac: macRS1, dmac: macDP1, syn: true, seq: 7, mss: 1460}), 0)
	if d.src.Addr() != snatIP || d.dst != peer || d.ttl != 63 || mssOf(d.tcp) != 1460 || toaOf(d.tcp) != nil || d.tcp.Seq != 7 {
		t.Fatalf("SYN out: %s -> %s ttl %d mss %d toa %x", d.src, d.dst, d.ttl, mssOf(d.tcp), toaOf(d.tcp))
	}
	wan := d.src
	if owner := td.d.steer.Owner(wan.Port()); owner != 0 {
		t.Fatalf("port %d of worker 0's connection is owned by worker %d", wan.Port(), owner)
	}
	// the answer lands on worker 1's queue: handed to the port's owner
	d = td.oneOut(t, 0, 1, tcpFrame(t, tcpSeg{src: peer, dst: wan, smac: macClient, dmac: macDP0, syn: true, ack: true, seq: 500, ackn: 8, mss: 1400}), 1)
	if d.src != peer || d.dst != inside || mssOf(d.tcp) != 1400 || d.tcp.Ack != 8 {
		t.Fatalf("SYN-ACK in: %s -> %s mss %d", d.src, d.dst, mssOf(d.tcp))
	}
	if td.sum(CtrLBRedirectedIn) != 1 {
		t.Errorf("redirected %d, want 1", td.sum(CtrLBRedirectedIn))
	}
	d = td.oneOut(t, 1, 0, tcpFrame(t, tcpSeg{src: inside, dst: peer, smac: macRS1, dmac: macDP1, ack: true, psh: true, seq: 8, ackn: 501, payload: []byte("GET /")}), 0)
	if d.src != wan || string(d.tcp.Payload) != "GET /" || toaOf(d.tcp) != nil {
		t.Fatalf("data out from %s %q toa %x", d.src, d.tcp.Payload, toaOf(d.tcp))
	}
	conns, _ := td.d.Conns(&k)
	if len(conns) != 1 || conns[0].Client != inside || conns[0].Virtual != peer || conns[0].Local != wan || conns[0].Dest != peer ||
		conns[0].State.String() != "ESTABLISHED" {
		t.Fatalf("conns %+v", conns)
	}
	// other traffic is routed as it is: another protocol, and inside
	// hosts outside the range
	d = td.oneOut(t, 1, 0, udpFrame(t, macRS1, macDP1, inside, peer, []byte("dns")), 0)
	if d.src != inside {
		t.Errorf("UDP (not matched) left from %s", d.src)
	}
	if td.sum(CtrLBNewConns) != 1 {
		t.Errorf("new conns %d", td.sum(CtrLBNewConns))
	}
	// the connection ends: its port goes back to the pool
	for _, w := range td.d.workers {
		w.sess.Flush(w.onExpire)
	}
	// a segment of the ended connection opens none (no SYN) and does not
	// leave with the inside address either
	td.injectQ(1, 0, tcpFrame(t, tcpSeg{src: inside, dst: peer, smac: macRS1, dmac: macDP1, ack: true, seq: 13, ackn: 501}))
	td.stepAll()
	if n := len(td.outAll(0)); n != 0 || td.sum(CtrDropLBNotSYN) != 1 {
		t.Errorf("after the end: %d frames out, drop_lb_not_syn %d", n, td.sum(CtrDropLBNotSYN))
	}
}

// TestSNATMatchFields: src/dst ranges with ports and iif/oif select the
// packets a match service takes.
func TestSNATMatchFields(t *testing.T) {
	for _, c := range []struct {
		match string
		hit   bool
	}{
		{"proto=udp,src-range=10.2.0.11-10.2.0.11:5000-5000,dst-range=10.1.0.2-10.1.0.2:7000-7000,iif=dp1,oif=dp0", true},
		{"proto=udp,src-range=10.2.0.12-10.2.0.20", false},
		{"proto=udp,dst-range=10.1.0.0-10.1.0.255:7001-7010", false},
		{"proto=udp,af=ipv4,iif=dp0", false},
		{"proto=udp,af=ipv4,oif=dp1", false},
		{"proto=tcp,af=ipv4", false},
	} {
		td, _ := snatDP(t, 1, c.match)
		d := td.oneOut(t, 1, 0, udpFrame(t, macRS1, macDP1, netip.AddrPortFrom(rs1IP, 5000), netip.AddrPortFrom(clientIP, 7000), []byte("q")), 0)
		if (d.src.Addr() == snatIP) != c.hit {
			t.Errorf("%s: datagram left from %s, want translated %v", c.match, d.src, c.hit)
		}
		if c.hit {
			back := td.oneOut(t, 0, 0, udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, 7000), d.src, []byte("a")), 1)
			if back.dst != netip.AddrPortFrom(rs1IP, 5000) || string(back.udp.Payload) != "a" {
				t.Errorf("%s: answer to %s %q", c.match, back.dst, back.udp.Payload)
			}
		}
	}
}

// TestSNATAddressChecked: an SNAT address must be one of the dataplane's.
func TestSNATAddressChecked(t *testing.T) {
	td, k := snatDP(t, 1, "proto=tcp,af=ipv4")
	err := td.d.AddDest(k, ipvs.DestSpec{Addr: netip.MustParseAddrPort("192.0.2.9:0"), Weight: 1, Fwd: ipvs.FwdSNAT})
	if err == nil {
		t.Fatal("an SNAT address the dataplane does not have was accepted")
	}
}

// TestSNATAllocs: an SNAT connection's packets both ways cost no
// allocation beyond what a routed packet costs in the same harness.
func TestSNATAllocs(t *testing.T) {
	td, _ := snatDP(t, 1, "proto=tcp,af=ipv4")
	inside, peer := netip.AddrPortFrom(rs1IP, 40001), netip.AddrPortFrom(clientIP, 80)
	wan := td.oneOut(t, 1, 0, tcpFrame(t, tcpSeg{src: inside, dst: peer, smac: macRS1, dmac: macDP1, syn: true}), 0).src
	run := func(in, out int, frame []byte) float64 {
		td.oneOut(t, in, 0, frame, out)
		return testing.AllocsPerRun(50, func() {
			td.injectQ(in, 0, frame)
			td.stepAll()
			td.stepAll()
			if len(td.outAll(out)) != 1 {
				t.Fatal("no frame out")
			}
		})
	}
	transit := run(1, 0, udpFrame(t, macRS1, macDP1, inside, peer, []byte("x")))
	if n := run(1, 0, tcpFrame(t, tcpSeg{src: inside, dst: peer, smac: macRS1, dmac: macDP1, ack: true, seq: 1})); n > transit {
		t.Errorf("out: %.0f allocations, a routed packet %.0f", n, transit)
	}
	if n := run(0, 1, tcpFrame(t, tcpSeg{src: peer, dst: wan, smac: macClient, dmac: macDP0, ack: true, seq: 1})); n > transit {
		t.Errorf("in: %.0f allocations, a routed packet %.0f", n, transit)
	}
}

// TestSNATFragments: an inside host's fragmented datagram leaves from the
// SNAT address, every fragment (the first opens the connection, the
// others follow it through the fragment cache); the peer's fragmented
// answer comes back whole.
func TestSNATFragments(t *testing.T) {
	td, _ := snatDP(t, 1, "proto=udp,af=ipv4")
	inside, peer := netip.AddrPortFrom(rs1IP, 5000), netip.AddrPortFrom(clientIP, 7000)
	req := datagram(3000)
	out := td.sendFrags(1, fragment(t, udpFrame(t, macRS1, macDP1, inside, peer, req), 1480, 0x51)...)
	if len(out) != 3 {
		t.Fatalf("%d fragments out", len(out))
	}
	wan := decodeL4(t, reassemble(t, out)).src
	checkDatagram(t, "request", out, 3, netip.AddrPortFrom(snatIP, wan.Port()), peer, req)
	ans := datagram(2500)
	back := td.sendFrags(0, fragment(t, udpFrame(t, macClient, macDP0, peer, wan, ans), 1480, 0x52)...)
	checkDatagram(t, "answer", back, 2, peer, inside, ans)
}
