package announce

import (
	"context"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
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
	if err := b.Set(context.Background(), []Route{{Prefix: v4}, {Prefix: v4b}, {Prefix: v6}}); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]netip.Addr{v4: netip.MustParseAddr("10.11.0.21"), v4b: netip.MustParseAddr("10.11.0.21"),
		v6: netip.MustParseAddr("fd00:11::21")}
	testenv.Eventually(t, 10*time.Second, "the three routes at the router", func() bool { return maps.Equal(r.Routes(t), want) })

	if err := b.Set(context.Background(), []Route{{Prefix: v4}, {Prefix: v6}}); err != nil {
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
	err = b.Set(context.Background(), []Route{{Prefix: netip.MustParsePrefix("fd00:1::100/128")}})
	if err == nil || !strings.Contains(err.Error(), "next_hop6 is not set") {
		t.Errorf("err %v, want one naming announce.bgp.next_hop6", err)
	}
}

// pathAttrs is how the router sees prefix p: its AS path and its MED (-1:
// none), or ok false when it has no path.
func pathAttrs(t *testing.T, r *bgptest.Router, p netip.Prefix) (asPath string, med int64, ok bool) {
	t.Helper()
	med = -1
	err := r.S.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC},
		func(nlri bgp.NLRI, paths []*apiutil.Path) {
			if nlri.String() != p.String() {
				return
			}
			for _, path := range paths {
				if path.Withdrawal {
					continue
				}
				ok = true
				for _, a := range path.Attrs {
					switch a := a.(type) {
					case *bgp.PathAttributeAsPath:
						asPath = a.String()
					case *bgp.PathAttributeMultiExitDisc:
						med = int64(a.Value)
					}
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	return asPath, med, ok
}

// TestBGPBackupRoute: a backup route (a peer's local address) reaches the
// router with local_as prepended backup_prepend more times and MED
// backup_med, an own route with a one-AS path and no MED; a route that
// turns from backup to own is re-originated with the own attributes.
func TestBGPBackupRoute(t *testing.T) {
	r := bgptest.Start(t, "127.0.0.1", 65001)
	prepend, med := 2, uint32(150)
	b, err := NewBGP(context.Background(), config.BGPConf{LocalAS: 65001, RouterID: "10.11.0.21", NextHop: "10.11.0.21",
		BackupPrepend: &prepend, BackupMED: &med,
		Neighbors: []config.BGPNeighbor{{Address: r.Addr, PeerAS: r.AS, Port: r.Port, LocalAddress: "127.0.0.1",
			HoldTime: config.Seconds(9)}}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	testenv.Eventually(t, 15*time.Second, "the BGP session", r.Established)
	own, backup := netip.MustParsePrefix("10.23.0.101/32"), netip.MustParsePrefix("10.23.0.102/32")
	if err := b.Set(context.Background(), []Route{{Prefix: own}, {Prefix: backup, Backup: true}}); err != nil {
		t.Fatal(err)
	}
	type attrs struct {
		path string
		med  int64
	}
	get := func(p netip.Prefix) attrs {
		a, m, ok := pathAttrs(t, r, p)
		if !ok {
			return attrs{}
		}
		return attrs{a, m}
	}
	testenv.Eventually(t, 10*time.Second, "both routes at the router", func() bool { return get(own).path != "" && get(backup).path != "" })
	if got, want := get(own), (attrs{"{AsPath: 65001}", -1}); got != want {
		t.Errorf("own route at the router: %+v, want %+v", got, want)
	}
	if got, want := get(backup), (attrs{"{AsPath: 65001 65001 65001}", 150}); got != want {
		t.Errorf("backup route at the router: %+v, want %+v", got, want)
	}
	// the owner is gone for good: the address becomes this node's own
	if err := b.Set(context.Background(), []Route{{Prefix: own}, {Prefix: backup}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the backup route re-originated as own", func() bool {
		return get(backup) == attrs{"{AsPath: 65001}", -1}
	})
}
