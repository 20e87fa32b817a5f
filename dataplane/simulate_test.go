package dataplane

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/gvs-lb/gvs/ipvs"
)

// TestSimulateFlow: for a hashing scheduler the simulation predicts the
// real server the flow's SYN then really goes to; once the connection
// exists it is reported as it stands; a stateful scheduler's answer lists
// the candidates; asking changes nothing (no connection appears).
func TestSimulateFlow(t *testing.T) {
	td := newLBTestDP(t, 1)
	rs2 := netip.AddrPortFrom(rs2IP, 8080)
	k := td.service(ipvs.TCP, vip, 81, "mh", lip, netip.AddrPortFrom(rs1IP, 8080), rs2)
	for i := 0; i < 16; i++ {
		client := netip.AddrPortFrom(clientIP, uint16(41000+i))
		v := netip.AddrPortFrom(vip, 81)
		a, err := td.d.SimulateFlow(ipvs.TCP, client, v)
		if err != nil || !a.Predicted || a.Existing || a.Service != k.String() || !slices.Equal(a.LAddrs, []netip.Addr{lip}) {
			t.Fatalf("before the SYN: %+v %v", a, err)
		}
		if td.w.sess.Len() != i {
			t.Fatalf("asking created a connection: %d", td.w.sess.Len())
		}
		got := td.one(t, 0, tcpFrame(t, tcpSeg{src: client, dst: v, smac: macClient, dmac: macDP0, syn: true, seq: 1}), 1)
		if got.dst != a.Dest {
			t.Fatalf("flow %s: predicted %s, the SYN went to %s", client, a.Dest, got.dst)
		}
		b, err := td.d.SimulateFlow(ipvs.TCP, client, v)
		if err != nil || !b.Existing || b.Dest != got.dst || b.Local != got.src || b.Worker != 0 || b.State != "SYN_RECV" {
			t.Fatalf("after the SYN: %+v %v (the SYN left from %s)", b, err, got.src)
		}
	}
	// rr picks by its state: candidates, no prediction
	td.service(ipvs.TCP, vip, 82, "rr", lip, netip.AddrPortFrom(rs1IP, 8080), rs2)
	a, err := td.d.SimulateFlow(ipvs.TCP, netip.AddrPortFrom(clientIP, 42000), netip.AddrPortFrom(vip, 82))
	if err != nil || a.Predicted || len(a.Candidates) != 2 || a.Note == "" {
		t.Errorf("rr: %+v %v", a, err)
	}
	if _, err := td.d.SimulateFlow(ipvs.UDP, netip.AddrPortFrom(clientIP, 1), netip.AddrPortFrom(vip, 99)); err == nil {
		t.Error("a flow to no service was answered")
	}
}
