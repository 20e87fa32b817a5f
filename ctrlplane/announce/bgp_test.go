package announce

import (
	"context"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/internal/bgptest"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// TestBGPAnnounceWithdraw peers the speaker with a GoBGP router on
// loopback: the routes it sets reach the router with the KNI next hop (IPv4
// NEXT_HOP, IPv6 MP_REACH), a removed one is withdrawn, and Close withdraws
// the rest before the session closes.
func TestBGPAnnounceWithdraw(t *testing.T) {
	r := bgptest.Start(t, "127.0.0.1", 65001)
	b, err := NewBGP(context.Background(), config.BGPConf{LocalAS: 65001, RouterID: "10.11.0.21",
		NextHop: "10.11.0.21", NextHop6: "fd00:11::21",
		Neighbors: []config.BGPNeighbor{{Address: r.Addr, PeerAS: r.AS, Port: r.Port, LocalAddress: "127.0.0.1",
			HoldTime: config.Seconds(9)}}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			b.Close(context.Background())
		}
	})
	testenv.Eventually(t, 15*time.Second, "the BGP session", r.Established)
	if ps := b.Peers(); len(ps) != 1 || ps[0].State != "established" || ps[0].AS != 65000 {
		t.Fatalf("speaker's peers %+v, want one established with AS 65000", ps)
	}
	v4, v4b, v6 := netip.MustParsePrefix("10.1.0.100/32"), netip.MustParsePrefix("10.1.0.101/32"), netip.MustParsePrefix("fd00:1::100/128")
	if err := b.Set(context.Background(), []netip.Prefix{v4, v4b, v6}); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]netip.Addr{v4: netip.MustParseAddr("10.11.0.21"), v4b: netip.MustParseAddr("10.11.0.21"),
		v6: netip.MustParseAddr("fd00:11::21")}
	testenv.Eventually(t, 10*time.Second, "the three routes at the router", func() bool { return maps.Equal(r.Routes(t), want) })

	if err := b.Set(context.Background(), []netip.Prefix{v4, v6}); err != nil {
		t.Fatal(err)
	}
	delete(want, v4b)
	testenv.Eventually(t, 10*time.Second, "10.1.0.101/32 withdrawn", func() bool { return maps.Equal(r.Routes(t), want) })

	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed = true
	testenv.Eventually(t, 10*time.Second, "no route left at the router", func() bool { return len(r.Routes(t)) == 0 })
}

func TestBGPRefusesIPv6WithoutNextHop6(t *testing.T) {
	b, err := NewBGP(context.Background(), config.BGPConf{LocalAS: 65001, RouterID: "10.11.0.21", NextHop: "10.11.0.21",
		Neighbors: []config.BGPNeighbor{{Address: "127.0.0.3", PeerAS: 65000, Port: 1, HoldTime: config.Seconds(9)}}},
		zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	err = b.Set(context.Background(), []netip.Prefix{netip.MustParsePrefix("fd00:1::100/128")})
	if err == nil || !strings.Contains(err.Error(), "next_hop6 is not set") {
		t.Errorf("err %v, want one naming announce.bgp.next_hop6", err)
	}
}
