// Package bgptest runs a BGP router for the control plane's tests: a GoBGP
// speaker (a real BGP implementation, not a mock of the one under test)
// listening on a loopback address, accepting one neighbour and keeping what
// it learns. Only tests import it.
package bgptest

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Router is a running BGP router.
type Router struct {
	S    *server.BgpServer
	Addr string // the address it listens on
	Port int
	AS   uint32
}

// Start runs a router (AS 65000, listening on 127.0.0.2) that accepts a
// session from neighbor (AS peerAS); it is stopped when the test ends.
func Start(t testing.TB, neighbor string, peerAS uint32) *Router {
	t.Helper()
	// a free port on 127.0.0.2
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelError)
	s := server.NewBgpServer(server.LoggerOption(slog.New(slog.DiscardHandler), lvl))
	go s.Serve()
	r := &Router{S: s, Addr: "127.0.0.2", Port: port, AS: 65000}
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: r.AS, RouterId: "10.255.0.1",
		ListenPort: int32(port), ListenAddresses: []string{r.Addr}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	fam := func(afi api.Family_Afi) *api.AfiSafi {
		return &api.AfiSafi{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true}}
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: neighbor, PeerAsn: peerAS},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3}},
		AfiSafis:  []*api.AfiSafi{fam(api.Family_AFI_IP), fam(api.Family_AFI_IP6)},
	}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// Routes returns the prefixes the router has learnt, each with its next
// hop.
func (r *Router) Routes(t testing.TB) map[netip.Prefix]netip.Addr {
	t.Helper()
	out := map[netip.Prefix]netip.Addr{}
	for _, f := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		err := r.S.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f},
			func(nlri bgp.NLRI, paths []*apiutil.Path) {
				p, err := netip.ParsePrefix(nlri.String())
				if err != nil {
					t.Errorf("router listed %q", nlri.String())
					return
				}
				for _, path := range paths {
					if path.Withdrawal {
						continue
					}
					out[p] = nextHop(path)
				}
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func nextHop(p *apiutil.Path) netip.Addr {
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			return a.Value
		case *bgp.PathAttributeMpReachNLRI:
			return a.Nexthop
		}
	}
	return netip.Addr{}
}

// Established reports whether the session with the neighbour is up.
func (r *Router) Established() bool {
	up := false
	r.S.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		up = up || p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
	})
	return up
}

// PortString is the port as the config writes it.
func (r *Router) PortString() string { return strconv.Itoa(r.Port) }
