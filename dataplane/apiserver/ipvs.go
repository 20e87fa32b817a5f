package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// ipvsStatus maps the service model's errors onto gRPC codes; the message
// keeps ipvsadm's words.
func ipvsStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ipvs.ErrServiceExists), errors.Is(err, ipvs.ErrDestExists), errors.Is(err, ipvs.ErrLAddrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, ipvs.ErrNoService), errors.Is(err, ipvs.ErrServiceNotDef), errors.Is(err, ipvs.ErrNoDest), errors.Is(err, ipvs.ErrNoLAddr):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ipvs.ErrNotSupported):
		return status.Error(codes.Unimplemented, err.Error())
	}
	return status.Error(codes.InvalidArgument, err.Error())
}

func serviceKey(k *pb.ServiceKey) (ipvs.ServiceKey, error) {
	if k == nil {
		return ipvs.ServiceKey{}, badArg("service missing")
	}
	var p ipvs.Proto
	switch strings.ToUpper(k.Proto) {
	case "TCP":
		p = ipvs.TCP
	case "UDP":
		p = ipvs.UDP
	default:
		return ipvs.ServiceKey{}, status.Errorf(codes.Unimplemented, "protocol %q: not supported: use TCP or UDP", k.Proto)
	}
	if k.Match != "" {
		// a SNAT match service: keyed by the match's canonical form
		m, err := ipvs.ParseMatch(k.Match)
		if err != nil {
			return ipvs.ServiceKey{}, ipvsStatus(err)
		}
		if k.Addr != "" || k.Port != 0 || m.Proto != p {
			return ipvs.ServiceKey{}, badArg("match service %q: no address or port, and proto=%s as the key's protocol", k.Match, strings.ToLower(p.String()))
		}
		return ipvs.ServiceKey{Proto: p, Match: m.String()}, nil
	}
	a, err := netip.ParseAddr(k.Addr)
	if err != nil {
		return ipvs.ServiceKey{}, badArg("service address %q is not an address", k.Addr)
	}
	if k.Port > 65535 {
		return ipvs.ServiceKey{}, badArg("service port %d out of range", k.Port)
	}
	return ipvs.ServiceKey{Proto: p, Addr: a.Unmap(), Port: uint16(k.Port)}, nil
}

func pbKey(k ipvs.ServiceKey) *pb.ServiceKey {
	if k.Match != "" {
		return &pb.ServiceKey{Proto: k.Proto.String(), Match: k.Match}
	}
	return &pb.ServiceKey{Proto: k.Proto.String(), Addr: k.Addr.String(), Port: uint32(k.Port)}
}

func serviceSpec(s *pb.Service) (ipvs.ServiceSpec, error) {
	k, err := serviceKey(s.Key)
	if err != nil {
		return ipvs.ServiceSpec{}, err
	}
	pp, ppInsecure, err := ipvs.ParseProxyProtocol(s.ProxyProtocol)
	if err != nil {
		return ipvs.ServiceSpec{}, fmt.Errorf("service %s: %w", k, err)
	}
	return ipvs.ServiceSpec{Key: k, Sched: s.Sched, SchedFlags: s.SchedFlags, Persistent: s.Persistent,
		PersistTimeout: s.PersistentTimeout, PersistPrefix: int(s.PersistentPrefix), OnePacket: s.OnePacket,
		SynProxy: s.Synproxy, ConnTimeout: s.ConnTimeout, MidFlow: s.MidFlow,
		ConnRateLimit: s.ConnRateLimit, PerSourceRateLimit: s.PerSourceRateLimit,
		ProxyProtocol: pp, ProxyProtocolInsecure: ppInsecure}, nil
}

func fwdMethod(s string) (ipvs.FwdMethod, error) {
	switch strings.ToLower(s) {
	case "fullnat", "":
		return ipvs.FwdFullNAT, nil
	case "masq", "nat":
		return ipvs.FwdMasq, nil
	case "route", "dr", "gatewaying":
		return ipvs.FwdRoute, nil
	case "tunnel", "ipip":
		return ipvs.FwdTunnel, nil
	case "snat":
		return ipvs.FwdSNAT, nil
	}
	return 0, fmt.Errorf("forwarding method %q: use FullNat, Masq, Route, Tunnel or SNAT", s)
}

func destSpec(k ipvs.ServiceKey, d *pb.Dest) (ipvs.DestSpec, error) {
	if d == nil {
		return ipvs.DestSpec{}, badArg("destination missing")
	}
	a, err := netip.ParseAddr(d.Addr)
	if err != nil {
		return ipvs.DestSpec{}, badArg("destination address %q is not an address", d.Addr)
	}
	port := d.Port
	if port == 0 {
		port = uint32(k.Port)
	}
	if port > 65535 {
		return ipvs.DestSpec{}, badArg("destination port %d out of range", d.Port)
	}
	f, err := fwdMethod(d.Fwd)
	if err != nil {
		return ipvs.DestSpec{}, badArg("%v", err)
	}
	spec := ipvs.DestSpec{Addr: netip.AddrPortFrom(a.Unmap(), uint16(port)), Weight: int(d.Weight), Upper: d.Upper, Lower: d.Lower, Fwd: f}
	if err := tunnelSpec(&spec, d); err != nil {
		return ipvs.DestSpec{}, err
	}
	return spec, nil
}

// tunnelSpec reads a tunnel real server's options (ipvsadm --tun-type,
// --tun-port, --tun-nocsum|--tun-csum|--tun-remcsum); ipvs.DestSpec.Validate
// judges their combination.
func tunnelSpec(spec *ipvs.DestSpec, d *pb.Dest) error {
	switch strings.ToLower(d.TunType) {
	case "", "ipip":
		spec.TunType = ipvs.TunIPIP
	case "gue":
		spec.TunType = ipvs.TunGUE
	case "gre":
		spec.TunType = ipvs.TunGRE
	default:
		return badArg("destination %s: tunnel type %q: use ipip, gue or gre", d.Addr, d.TunType)
	}
	if d.TunPort > 65535 {
		return badArg("destination %s: tunnel port %d: use 1-65535", d.Addr, d.TunPort)
	}
	spec.TunPort = uint16(d.TunPort)
	switch strings.TrimPrefix(strings.ToLower(d.TunCsum), "--") {
	case "", "tun-nocsum", "nocsum":
	case "tun-csum", "csum":
		spec.TunFlags = ipvs.TunCsum
	case "tun-remcsum", "remcsum":
		spec.TunFlags = ipvs.TunRemCsum
	default:
		return badArg("destination %s: tunnel checksum %q: use tun-nocsum, tun-csum or tun-remcsum", d.Addr, d.TunCsum)
	}
	return nil
}

// pbTunnel fills a listed tunnel real server's options.
func pbTunnel(pd *pb.Dest, d *ipvs.DestSpec) {
	if d.Fwd != ipvs.FwdTunnel {
		return
	}
	pd.TunType, pd.TunPort = d.TunType.String(), uint32(d.TunPort)
	if d.TunType != ipvs.TunIPIP {
		pd.TunCsum = d.TunFlags.String()
	}
}

func (s *Server) AddService(_ context.Context, r *pb.Service) (*pb.Empty, error) {
	spec, err := serviceSpec(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, ipvsStatus(s.dp.AddService(spec))
}

func (s *Server) EditService(_ context.Context, r *pb.Service) (*pb.Empty, error) {
	spec, err := serviceSpec(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, ipvsStatus(s.dp.EditService(spec))
}

func (s *Server) DelService(_ context.Context, r *pb.Service) (*pb.Empty, error) {
	k, err := serviceKey(r.Key)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, ipvsStatus(s.dp.DelService(k))
}

func (s *Server) FlushServices(context.Context, *pb.Empty) (*pb.Empty, error) {
	return &pb.Empty{}, ipvsStatus(s.dp.FlushServices())
}

func (s *Server) ListServices(_ context.Context, r *pb.ListServicesRequest) (*pb.ListServicesResponse, error) {
	var want *ipvs.ServiceKey
	if r.Key != nil {
		k, err := serviceKey(r.Key)
		if err != nil {
			return nil, err
		}
		want = &k
	}
	out := &pb.ListServicesResponse{}
	lt := s.laddrTotals()
	for _, svc := range s.dp.IPVS().Table().Services {
		if want != nil && svc.Spec.Key != *want {
			continue
		}
		ps := &pb.Service{Key: pbKey(svc.Spec.Key), Sched: svc.Spec.Sched, SchedFlags: svc.Spec.SchedFlags,
			Persistent: svc.Spec.Persistent, PersistentTimeout: svc.Spec.PersistTimeout, PersistentPrefix: uint32(svc.Spec.PersistPrefix),
			OnePacket: svc.Spec.OnePacket, Synproxy: svc.Spec.SynProxy, ConnTimeout: svc.Spec.ConnTimeout, MidFlow: svc.Spec.MidFlow,
			ConnRateLimit: svc.Spec.ConnRateLimit, PerSourceRateLimit: svc.Spec.PerSourceRateLimit,
			Deny: prefixStrings(svc.DenyList), Allow: prefixStrings(svc.AllowList), ProxyProtocol: svc.Spec.ProxyProtocolName()}
		for _, d := range svc.Dests {
			pd := &pb.Dest{Addr: d.Spec.Addr.Addr().String(), Port: uint32(d.Spec.Addr.Port()),
				Weight: int32(d.Spec.Weight), Upper: d.Spec.Upper, Lower: d.Spec.Lower, Fwd: d.Spec.Fwd.String(),
				Active: d.C.Active.Load(), Inactive: d.C.Inactive.Load(), PersistConns: d.C.Persist.Load(), Stats: pbStats(s.dp.DestStatsOf(d))}
			pbTunnel(pd, &d.Spec)
			ps.Dests = append(ps.Dests, pd)
		}
		ps.Stats = pbStats(s.dp.ServiceStatsOf(svc))
		if a := s.dp.AdmissionOf(svc); a != (dataplane.AdmissionStats{}) {
			ps.Admission = &pb.AdmissionStats{Denied: a.Denied, NotAllowed: a.NotAllowed, RateLimited: a.RateLimited, SourceLimited: a.SourceLimited}
		}
		for _, la := range svc.LAddrs {
			u := lt[la.Addr]
			ps.Laddrs = append(ps.Laddrs, &pb.LAddr{Addr: la.Addr.String(), Dev: la.Iface, Backup: la.Backup,
				Conns: uint64(u.InUse), Conflicts: u.Conflicts})
		}
		out.Services = append(out.Services, ps)
	}
	if want != nil && len(out.Services) == 0 {
		return nil, ipvsStatus(fmt.Errorf("service %s: %w", want, ipvs.ErrNoService))
	}
	return out, nil
}

func pbStats(t dataplane.DestStats) *pb.ServiceStats {
	return &pb.ServiceStats{Conns: t.Conns, InPkts: t.InPkts, OutPkts: t.OutPkts, InBytes: t.InBytes, OutBytes: t.OutBytes,
		Cps: t.CPS, InPps: t.InPPS, OutPps: t.OutPPS, InBps: t.InBPS, OutBps: t.OutBPS}
}

func (s *Server) ZeroStats(_ context.Context, r *pb.ZeroRequest) (*pb.Empty, error) {
	var k *ipvs.ServiceKey
	if r.Service != nil {
		sk, err := serviceKey(r.Service)
		if err != nil {
			return nil, err
		}
		k = &sk
	}
	return &pb.Empty{}, ipvsStatus(s.dp.ZeroStats(k))
}

func (s *Server) destOp(r *pb.DestRequest, op func(ipvs.ServiceKey, ipvs.DestSpec) error) (*pb.Empty, error) {
	k, err := serviceKey(r.Service)
	if err != nil {
		return nil, err
	}
	d, err := destSpec(k, r.Dest)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, ipvsStatus(op(k, d))
}

func (s *Server) AddDest(_ context.Context, r *pb.DestRequest) (*pb.Empty, error) {
	return s.destOp(r, s.dp.AddDest)
}

func (s *Server) EditDest(_ context.Context, r *pb.DestRequest) (*pb.Empty, error) {
	return s.destOp(r, s.dp.EditDest)
}

func (s *Server) DelDest(_ context.Context, r *pb.DestRequest) (*pb.Empty, error) {
	return s.destOp(r, func(k ipvs.ServiceKey, d ipvs.DestSpec) error {
		return s.dp.DelDest(k, d.Addr, r.Expire)
	})
}

func (s *Server) laddr(r *pb.LAddrRequest) (ipvs.ServiceKey, ipvs.LAddr, error) {
	k, err := serviceKey(r.Service)
	if err != nil {
		return k, ipvs.LAddr{}, err
	}
	if r.Laddr == nil {
		return k, ipvs.LAddr{}, badArg("local address missing")
	}
	a, err := netip.ParseAddr(r.Laddr.Addr)
	if err != nil {
		return k, ipvs.LAddr{}, badArg("local address %q is not an address", r.Laddr.Addr)
	}
	return k, ipvs.LAddr{Addr: a.Unmap(), Iface: r.Laddr.Dev, Backup: r.Laddr.Backup}, nil
}

func (s *Server) AddLAddr(_ context.Context, r *pb.LAddrRequest) (*pb.Empty, error) {
	k, la, err := s.laddr(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, ipvsStatus(s.dp.AddLAddr(k, la))
}

func (s *Server) DelLAddr(_ context.Context, r *pb.LAddrRequest) (*pb.Empty, error) {
	k, la, err := s.laddr(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, ipvsStatus(s.dp.DelLAddr(k, la.Addr))
}

// ListConns streams the connections a page per worker chunk (at most a
// few thousand conns, far below gRPC's message limit); the stream's flow
// control holds the workers back when the client reads slowly.
func (s *Server) ListConns(r *pb.ListConnsRequest, stream pb.Dataplane_ListConnsServer) error {
	var want *ipvs.ServiceKey
	if r.Service != nil {
		k, err := serviceKey(r.Service)
		if err != nil {
			return err
		}
		want = &k
	}
	var sendErr error
	err := s.dp.ListConns(stream.Context(), want, func(page []dataplane.ConnInfo) error {
		out := &pb.ListConnsResponse{Conns: make([]*pb.Conn, len(page))}
		all := make([]pb.Conn, len(page)) // one allocation per page
		for i, c := range page {
			o := &all[i]
			o.Proto, o.State, o.ExpireNs = ipvs.Proto(c.Proto).String(), c.State.String(), int64(c.Expires)
			o.Client, o.Virtual, o.Local, o.Dest = c.Client.String(), c.Virtual.String(), c.Local.String(), c.Dest.String()
			o.Worker, o.Template, o.XdpOffloaded = int32(c.Worker), c.Template, uint32(c.XDP)
			if !c.Local.IsValid() {
				o.Local = "" // a template or a direct-routing connection has no local address
			}
			out.Conns[i] = o
		}
		sendErr = stream.Send(out)
		return sendErr
	})
	switch {
	case err == nil:
		return nil
	case sendErr != nil:
		return sendErr
	case stream.Context().Err() != nil:
		return status.FromContextError(stream.Context().Err()).Err()
	}
	return status.Error(codes.Unavailable, err.Error())
}

func (s *Server) GetTimeouts(context.Context, *pb.Empty) (*pb.Timeouts, error) {
	t := s.dp.Timeouts()
	secs := func(d time.Duration) uint32 { return uint32(d / time.Second) }
	return &pb.Timeouts{Tcp: secs(t.Established), TcpFin: secs(t.FinWait), Udp: secs(t.UDP), None: secs(t.None),
		SynSent: secs(t.SynSent), SynRecv: secs(t.SynRecv), TimeWait: secs(t.TimeWait), Close: secs(t.Close),
		CloseWait: secs(t.CloseWait), LastAck: secs(t.LastAck), Listen: secs(t.Listen), Synack: secs(t.SynAck)}, nil
}

// SetTimeouts changes the timeouts given; 0 keeps a value.
func (s *Server) SetTimeouts(_ context.Context, r *pb.Timeouts) (*pb.Empty, error) {
	d := func(secs uint32) time.Duration { return time.Duration(secs) * time.Second }
	return &pb.Empty{}, ipvsStatus(s.dp.UpdateTimeouts(session.Timeouts{Established: d(r.Tcp), FinWait: d(r.TcpFin),
		UDP: d(r.Udp), None: d(r.None), SynSent: d(r.SynSent), SynRecv: d(r.SynRecv), TimeWait: d(r.TimeWait),
		Close: d(r.Close), CloseWait: d(r.CloseWait), LastAck: d(r.LastAck), Listen: d(r.Listen), SynAck: d(r.Synack)}))
}

func (s *Server) SimulateFlow(_ context.Context, r *pb.FlowQuery) (*pb.FlowAnswer, error) {
	var p ipvs.Proto
	switch strings.ToUpper(r.Proto) {
	case "TCP":
		p = ipvs.TCP
	case "UDP":
		p = ipvs.UDP
	default:
		return nil, badArg("flow: protocol %q: use tcp or udp", r.Proto)
	}
	client, err := netip.ParseAddrPort(r.Client)
	if err != nil {
		return nil, badArg("flow: client %q: give address:port", r.Client)
	}
	vip, err := netip.ParseAddrPort(r.Virtual)
	if err != nil {
		return nil, badArg("flow: virtual service %q: give address:port", r.Virtual)
	}
	a, err := s.dp.SimulateFlow(p, client, vip)
	if err != nil {
		return nil, ipvsStatus(err)
	}
	out := &pb.FlowAnswer{Service: a.Service, Sched: a.Sched, Existing: a.Existing, Worker: int32(a.Worker), State: a.State,
		ExpiresNs: int64(a.Expires), ReplyOwner: int32(a.ReplyOwner), Predicted: a.Predicted, Note: a.Note}
	if a.Local.IsValid() {
		out.Local = a.Local.String()
	}
	if a.Dest.IsValid() {
		out.Dest = a.Dest.String()
	}
	for _, c := range a.Candidates {
		out.Candidates = append(out.Candidates, c.String())
	}
	for _, l := range a.LAddrs {
		out.Laddrs = append(out.Laddrs, l.String())
	}
	return out, nil
}
