package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

// TestDstCacheFollowsChanges: the destination cache gives the same answer
// as the tables, and a route, a neighbour or an address change is seen by
// the very next packet (every change publishes a new snapshot or
// neighbour table, which invalidates every entry).
func TestDstCacheFollowsChanges(t *testing.T) {
	td := newTestDP(t)
	gw1, gw2 := netip.MustParseAddr("10.2.0.21"), netip.MustParseAddr("10.2.0.22")
	mac1, mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 0x21}, net.HardwareAddr{2, 0, 0, 0, 0, 0x22}
	for _, n := range []struct {
		a   netip.Addr
		mac net.HardwareAddr
	}{{gw1, mac1}, {gw2, mac2}} {
		if err := td.d.AddNeigh(n.a, header.MAC(n.mac), "dp1"); err != nil {
			t.Fatal(err)
		}
	}
	dst := netip.MustParseAddr("192.0.2.7")
	if err := td.d.AddRoute(RouteSpec{Dst: netip.MustParsePrefix("192.0.2.0/24"), Gateway: gw1}); err != nil {
		t.Fatal(err)
	}
	next := func(want net.HardwareAddr, why string) {
		t.Helper()
		for i := 0; i < 3; i++ { // the first fills the cache, the others use it
			td.inject(0, udp4(t, macClient, macDP0, clientIP, dst, 64, []byte("x")))
			td.step()
			out := td.out(1)
			if len(out) != 1 {
				t.Fatalf("%s: packet %d: dp1 sent %d frames", why, i, len(out))
			}
			eth := decode(t, out[0]).Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if !bytes.Equal(eth.DstMAC, want) {
				t.Fatalf("%s: packet %d went to %s, want %s", why, i, eth.DstMAC, want)
			}
		}
	}
	next(mac1, "route via gw1")
	// a more specific route
	if err := td.d.AddRoute(RouteSpec{Dst: netip.MustParsePrefix("192.0.2.0/25"), Gateway: gw2}); err != nil {
		t.Fatal(err)
	}
	next(mac2, "a more specific route via gw2")
	// the next hop's MAC changes
	mac3 := net.HardwareAddr{2, 0, 0, 0, 0, 0x33}
	if err := td.d.AddNeigh(gw2, header.MAC(mac3), "dp1"); err != nil {
		t.Fatal(err)
	}
	next(mac3, "gw2's new MAC")
	// the route goes: back to the /24
	if err := td.d.DelRoute(netip.MustParsePrefix("192.0.2.0/25"), gw2); err != nil {
		t.Fatal(err)
	}
	next(mac1, "the /25 deleted")
	// no route at all: dropped, counted
	if err := td.d.DelRoute(netip.MustParsePrefix("192.0.2.0/24"), gw1); err != nil {
		t.Fatal(err)
	}
	before := td.counter(CtrDropNoRoute)
	td.inject(0, udp4(t, macClient, macDP0, clientIP, dst, 64, []byte("x")))
	td.step()
	if len(td.out(1)) != 0 || td.counter(CtrDropNoRoute) != before+1 {
		t.Fatal("a cached destination was used after its route was deleted")
	}
}

// TestDstCacheNotForMultipath: a multipath route's next hop depends on the
// flow, so its destinations are not cached: flows to one destination
// still spread over the next hops.
func TestDstCacheNotForMultipath(t *testing.T) {
	td := newTestDP(t)
	gw1, gw2 := netip.MustParseAddr("10.2.0.21"), netip.MustParseAddr("10.2.0.22")
	mac1, mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 0x21}, net.HardwareAddr{2, 0, 0, 0, 0, 0x22}
	td.d.AddNeigh(gw1, header.MAC(mac1), "dp1")
	td.d.AddNeigh(gw2, header.MAC(mac2), "dp1")
	if err := td.d.AddRoute(RouteSpec{Dst: netip.MustParsePrefix("198.51.100.0/24"),
		NextHops: []NextHopSpec{{Gateway: gw1, Weight: 1}, {Gateway: gw2, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for port := uint16(1000); port < 1064; port++ {
		td.inject(0, udpFrame(t, macClient, macDP0, netip.AddrPortFrom(clientIP, port), netip.MustParseAddrPort("198.51.100.9:7000"), make([]byte, 64)))
		td.step()
		for _, f := range td.out(1) {
			seen[net.HardwareAddr(f[:6]).String()]++ // the Ethernet destination
		}
	}
	if len(seen) != 2 {
		t.Errorf("64 flows to one destination over a two-way multipath route went %v", seen)
	}
}
