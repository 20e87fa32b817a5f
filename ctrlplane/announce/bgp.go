package announce

// BGP announces prefixes with an embedded GoBGP speaker: one BgpServer in
// this process, peering with the routers through the KNI interface, paths
// originated with this node's KNI address as the next hop (IPv4 prefixes
// with NEXT_HOP, IPv6 with MP_REACH_NLRI and next_hop6). Routes the peers
// send stay in the speaker's table and are not used: routes reach the
// dataplane from the kernel's table on KNI. Backup routes (peers' local
// addresses) carry backup_prepend more copies of local_as in the AS path
// and a MULTI_EXIT_DISC of backup_med, so routers prefer the owner's path
// while it exists. Close withdraws every path, waits (bounded) for the updates
// to leave, then closes the sessions with a CEASE notification.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/ctrlplane/config"
)

// Peer is a routing session's state, for the status listing.
type Peer struct {
	Address string `json:"address"`
	AS      uint32 `json:"peer_as"`
	State   string `json:"state"`
	Uptime  string `json:"uptime,omitempty"`
}

// BGP is the BGP speaker.
type BGP struct {
	c   config.BGPConf
	s   *server.BgpServer
	nh4 netip.Addr
	nh6 netip.Addr

	mu    sync.Mutex
	paths map[Route]uuid.UUID
}

// NewBGP starts the speaker and adds the neighbours; it announces nothing
// until Set.
func NewBGP(ctx context.Context, c config.BGPConf, log *zap.Logger) (*BGP, error) {
	b := &BGP{c: c, paths: map[Route]uuid.UUID{}}
	var err error
	if b.nh4, err = netip.ParseAddr(c.NextHop); err != nil {
		return nil, fmt.Errorf("announce.bgp.next_hop %q: %w", c.NextHop, err)
	}
	if c.NextHop6 != "" {
		if b.nh6, err = netip.ParseAddr(c.NextHop6); err != nil {
			return nil, fmt.Errorf("announce.bgp.next_hop6 %q: %w", c.NextHop6, err)
		}
	}
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelInfo)
	b.s = server.NewBgpServer(server.LoggerOption(slog.New(zapHandler{log: log}), lvl))
	go b.s.Serve()
	listen := int32(c.ListenPort)
	if listen == 0 {
		listen = -1 // connect out only
	}
	if err := b.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: c.LocalAS, RouterId: c.RouterID, ListenPort: listen}}); err != nil {
		b.s.Stop()
		return nil, fmt.Errorf("announce.bgp: starting the speaker (AS %d, router_id %s): %w", c.LocalAS, c.RouterID, err)
	}
	for i, n := range c.Neighbors {
		hold := uint64(n.HoldTime.D() / time.Second)
		p := &api.Peer{
			Conf:   &api.PeerConf{NeighborAddress: n.Address, PeerAsn: n.PeerAS, AuthPassword: n.Password},
			Timers: &api.Timers{Config: &api.TimersConfig{HoldTime: hold, KeepaliveInterval: max(hold/3, 1), ConnectRetry: 1}},
			AfiSafis: []*api.AfiSafi{
				{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
			},
			Transport: &api.Transport{LocalAddress: n.LocalAddress, RemotePort: uint32(n.Port), PassiveMode: false},
		}
		if b.nh6.IsValid() {
			p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{
				Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}})
		}
		if err := b.s.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			b.s.Stop()
			return nil, fmt.Errorf("announce.bgp.neighbors[%d] %s: %w", i, n.Address, err)
		}
	}
	return b, nil
}

// Protocol is "bgp".
func (b *BGP) Protocol() string { return "bgp" }

// backupAttrs are the attributes that make a backup route worse than its
// owner's: local_as prepended (eBGP adds one more copy on the way out) and
// a MED.
func (b *BGP) backupAttrs() []bgp.PathAttributeInterface {
	var out []bgp.PathAttributeInterface
	if n := derefInt(b.c.BackupPrepend); n > 0 {
		as := make([]uint32, n)
		for i := range as {
			as[i] = b.c.LocalAS
		}
		out = append(out, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, as)}))
	}
	if b.c.BackupMED != nil {
		out = append(out, bgp.NewPathAttributeMultiExitDisc(*b.c.BackupMED))
	}
	return out
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func (b *BGP) path(r Route) (*apiutil.Path, error) {
	p := r.Prefix
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if r.Backup {
		attrs = append(attrs, b.backupAttrs()...)
	}
	if p.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(b.nh4)
		if err != nil {
			return nil, err
		}
		return &apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: append(attrs, nh)}, nil
	}
	if !b.nh6.IsValid() {
		return nil, fmt.Errorf("cannot announce %s: announce.bgp.next_hop6 is not set", p)
	}
	mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri}}, b.nh6)
	if err != nil {
		return nil, err
	}
	return &apiutil.Path{Family: bgp.RF_IPv6_UC, Nlri: nlri, Attrs: append(attrs, mp)}, nil
}

// Set makes the speaker originate exactly rs. A route that turns from
// backup to own (or back) is withdrawn and originated again with its new
// attributes.
func (b *BGP) Set(_ context.Context, rs []Route) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for r, id := range b.paths {
		if slices.Contains(rs, r) {
			continue
		}
		p := r.Prefix
		if err := b.s.DeletePath(apiutil.DeletePathRequest{UUIDs: []uuid.UUID{id}}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdrawing %s: %w", p, err))
			continue
		}
		delete(b.paths, r)
	}
	for _, r := range rs {
		if _, ok := b.paths[r]; ok {
			continue
		}
		p := r.Prefix
		path, err := b.path(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: %w", err))
			continue
		}
		added, err := b.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		if err != nil || len(added) != 1 {
			errs = append(errs, fmt.Errorf("bgp: announcing %s: %v", p, err))
			continue
		}
		b.paths[r] = added[0].UUID
	}
	return errors.Join(errs...)
}

// Peers lists the sessions.
func (b *BGP) Peers() []Peer {
	var out []Peer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		st := p.GetState()
		pe := Peer{Address: p.GetConf().GetNeighborAddress(), AS: p.GetConf().GetPeerAsn(), State: sessionState(st.GetSessionState())}
		if up := p.GetTimers().GetState().GetUptime(); up != nil && st.GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED {
			pe.Uptime = time.Since(up.AsTime()).Truncate(time.Second).String()
		}
		out = append(out, pe)
	})
	slices.SortFunc(out, func(a, b Peer) int { return compareStrings(a.Address, b.Address) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sessionState(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE:
		return "idle"
	case api.PeerState_SESSION_STATE_CONNECT:
		return "connect"
	case api.PeerState_SESSION_STATE_ACTIVE:
		return "active"
	case api.PeerState_SESSION_STATE_OPENSENT:
		return "opensent"
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return "openconfirm"
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return "established"
	}
	return "unknown(" + strconv.Itoa(int(s)) + ")"
}

// Close withdraws every path, gives the updates up to a second (or ctx) to
// leave, and stops the speaker.
func (b *BGP) Close(ctx context.Context) error {
	err := b.Set(ctx, nil)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil && b.queued() {
		time.Sleep(20 * time.Millisecond)
	}
	b.s.Stop()
	return err
}

// queued reports whether an established session still has updates to send.
func (b *BGP) queued() bool {
	q := false
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if st := p.GetState(); st.GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED && st.GetOutQ() > 0 {
			q = true
		}
	})
	return q
}

// zapHandler passes GoBGP's slog records to zap.
type zapHandler struct {
	log   *zap.Logger
	attrs []zap.Field
}

func (h zapHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h zapHandler) Handle(_ context.Context, r slog.Record) error {
	fs := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		fs = append(fs, zap.Any(a.Key, a.Value.Any()))
		return true
	})
	switch {
	case r.Level >= slog.LevelError:
		h.log.Error(r.Message, fs...)
	case r.Level >= slog.LevelWarn:
		h.log.Warn(r.Message, fs...)
	default:
		h.log.Info(r.Message, fs...)
	}
	return nil
}

func (h zapHandler) WithAttrs(as []slog.Attr) slog.Handler {
	fs := slices.Clone(h.attrs)
	for _, a := range as {
		fs = append(fs, zap.Any(a.Key, a.Value.Any()))
	}
	return zapHandler{log: h.log, attrs: fs}
}

func (h zapHandler) WithGroup(name string) slog.Handler {
	return zapHandler{log: h.log.Named(name), attrs: h.attrs}
}
