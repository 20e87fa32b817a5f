package dataplane

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

var midFlowDests = []netip.AddrPort{
	netip.MustParseAddrPort("10.2.0.11:8080"), netip.MustParseAddrPort("10.2.0.12:8080"),
	netip.MustParseAddrPort("10.2.0.13:8080"), netip.MustParseAddrPort("10.2.0.14:8080"),
}

// mhService adds TCP vip:443 with the mh scheduler over midFlowDests,
// listed in the given order, with the mid-flow option as asked.
func mhService(t *testing.T, td *testDP, midFlow bool, order []int) ipvs.ServiceKey {
	t.Helper()
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 443}
	if err := td.d.AddService(ipvs.ServiceSpec{Key: k, Sched: "mh", MidFlow: midFlow}); err != nil {
		t.Fatal(err)
	}
	for _, i := range order {
		d := midFlowDests[i]
		if err := td.d.AddNeigh(d.Addr(), header.MAC(macRS1), "dp1"); err != nil && !strings.Contains(err.Error(), "exists") {
			t.Fatal(err)
		}
		if err := td.d.AddDest(k, ipvs.DestSpec{Addr: d, Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
			t.Fatal(err)
		}
	}
	if err := td.d.AddLAddr(k, ipvs.LAddr{Addr: lip}); err != nil {
		t.Fatal(err)
	}
	return k
}

// Two independent dataplanes with the same mh service (destinations listed
// in another order) send the same mid-flow ACK of a flow neither has a
// connection for to the same real server, translated as any FullNAT
// segment; the flow's next segment uses the new connection.
func TestMidFlowSameRealServerOnTwoNodes(t *testing.T) {
	a, b := newLBTestDP(t, 1), newLBTestDP(t, 2)
	mhService(t, a, true, []int{0, 1, 2, 3})
	mhService(t, b, true, []int{3, 1, 0, 2})
	vipPort := netip.AddrPortFrom(vip, 443)
	perRS := map[netip.AddrPort]int{}
	const flows = 64
	for i := 0; i < flows; i++ {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), uint16(40000+i))
		seg := tcpSeg{src: client, dst: vipPort, smac: macClient, dmac: macDP0, ack: true, psh: true,
			seq: 7000 + uint32(i), ackn: 9000, payload: []byte("mid-flow data")}
		outA := a.one(t, 0, tcpFrame(t, seg), 1)
		outB := b.one(t, 0, tcpFrame(t, seg), 1)
		for _, o := range []decoded{outA, outB} {
			if o.src.Addr() != lip || o.tcp.SYN || !o.tcp.ACK || o.tcp.Seq != seg.seq || o.tcp.Ack != seg.ackn ||
				string(o.tcp.Payload) != "mid-flow data" || o.ttl != 63 || !bytes.Equal(o.srcMAC, macDP1) {
				t.Fatalf("flow %s: out %s -> %s seq %d ack %d payload %q", client, o.src, o.dst, o.tcp.Seq, o.tcp.Ack, o.tcp.Payload)
			}
		}
		if outA.dst != outB.dst {
			t.Errorf("flow %s: node A sent it to %s, node B to %s", client, outA.dst, outB.dst)
		}
		perRS[outA.dst]++
		// the next segment belongs to the connection now
		seg.seq += uint32(len(seg.payload))
		if again := a.one(t, 0, tcpFrame(t, seg), 1); again.dst != outA.dst || again.src != outA.src {
			t.Errorf("flow %s: next segment to %s from %s, first to %s from %s", client, again.dst, again.src, outA.dst, outA.src)
		}
	}
	if len(perRS) < 3 {
		t.Errorf("flows per real server %v: mh should spread 64 flows over the 4", perRS)
	}
	for _, td := range []*testDP{a, b} {
		if n := td.sum(CtrLBMidFlowConns); n != flows {
			t.Errorf("lb_mid_flow_conns = %d, want %d", n, flows)
		}
		if n := td.sum(CtrDropLBNotSYN); n != 0 {
			t.Errorf("drop_lb_not_syn = %d", n)
		}
	}
	// the connections are marked as made mid-flow, and established
	found := 0
	for _, w := range a.d.workers {
		for _, c := range w.sess.All() {
			if c.VPort == 443 {
				found++
				if c.Flags&session.FlagMidFlow == 0 || c.State != session.StateEstablished {
					t.Errorf("conn %s: flags %b state %s", c.CAddrPort(), c.Flags, c.State)
				}
			}
		}
	}
	if found != flows {
		t.Errorf("%d connections, want %d", found, flows)
	}
}

// Off by default; with it, a RST or a SYN-ACK without a connection is still
// dropped.
func TestMidFlowOffByDefaultAndOnlyForACKs(t *testing.T) {
	td := newLBTestDP(t, 1)
	mhService(t, td, false, []int{0, 1})
	client, vipPort := netip.MustParseAddrPort("192.0.2.9:40000"), netip.AddrPortFrom(vip, 443)
	td.inject(0, tcpFrame(t, tcpSeg{src: client, dst: vipPort, smac: macClient, dmac: macDP0, ack: true, seq: 1, ackn: 2}))
	td.stepAll()
	if out := td.outAll(1); len(out) != 0 || td.sum(CtrDropLBNotSYN) != 1 {
		t.Fatalf("mid-flow ACK without the option: %d frames out, drop_lb_not_syn %d", len(out), td.sum(CtrDropLBNotSYN))
	}
	spec := ipvs.ServiceSpec{Key: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 443}, Sched: "mh", MidFlow: true}
	if err := td.d.EditService(spec); err != nil {
		t.Fatal(err)
	}
	for _, seg := range []tcpSeg{
		{rst: true, ack: true},
		{rst: true},
		{syn: true, ack: true},
		{fin: false}, // no flag at all
	} {
		seg.src, seg.dst, seg.smac, seg.dmac, seg.seq = client, vipPort, macClient, macDP0, 5
		td.inject(0, tcpFrame(t, seg))
	}
	td.stepAll()
	if out := td.outAll(1); len(out) != 0 || td.sum(CtrDropLBNotSYN) != 5 || td.sum(CtrLBMidFlowConns) != 0 {
		t.Errorf("RST/SYN-ACK/flagless: %d frames out, drop_lb_not_syn %d, mid-flow conns %d", len(out), td.sum(CtrDropLBNotSYN), td.sum(CtrLBMidFlowConns))
	}
}

// The option is refused for other schedulers, with the fix in the error,
// and a refused edit changes nothing.
func TestMidFlowRefusedForOtherSchedulers(t *testing.T) {
	td := newLBTestDP(t, 1)
	for _, sc := range []string{"", "rr", "wlc", "sh"} {
		err := td.d.AddService(ipvs.ServiceSpec{Key: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 444}, Sched: sc, MidFlow: true})
		if err == nil || !strings.Contains(err.Error(), "--mid-flow needs the mh scheduler") || !strings.Contains(err.Error(), "use -s mh or drop --mid-flow") {
			t.Errorf("sched %q: %v", sc, err)
		}
	}
	k := mhService(t, td, true, []int{0})
	if err := td.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "rr", MidFlow: true}); err == nil {
		t.Error("edit to rr with mid-flow accepted")
	}
	if s := td.d.IPVS().Table().Service(k); s.Spec.Sched != "mh" || !s.Spec.MidFlow {
		t.Errorf("refused edit changed the service: %+v", s.Spec)
	}
}
