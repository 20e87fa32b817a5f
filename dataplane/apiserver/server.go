// Package apiserver serves the gvs-dataplane control API (api/dataplane.proto)
// over gRPC on a unix socket. It translates requests into calls of the
// dataplane's control methods — the same methods the config loader uses — and
// their errors into gRPC status codes carrying the dataplane's message.
package apiserver

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/header"
)

// Version is reported by GetInfo.
var Version = "dev"

// Server implements pb.DataplaneServer.
type Server struct {
	pb.UnimplementedDataplaneServer
	dp     *dataplane.Dataplane
	reload ReloadFunc // nil: Reload is not offered (reload.go)
}

// New returns a server for dp.
func New(dp *dataplane.Dataplane) *Server { return &Server{dp: dp} }

// register adds the service to g.
func (s *Server) register(g *grpc.Server) { pb.RegisterDataplaneServer(g, s) }

// unaryGuard and streamGuard turn a panic in a handler into the
// dataplane's crash report (logged with its stack) instead of a silent
// process exit.
func (s *Server) unaryGuard(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	defer s.dp.RecoverCrash("api " + info.FullMethod)
	return h(ctx, req)
}

func (s *Server) streamGuard(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	defer s.dp.RecoverCrash("api " + info.FullMethod)
	return h(srv, ss)
}

func toStatus(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, dataplane.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, dataplane.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, dataplane.ErrInUse):
		return status.Error(codes.FailedPrecondition, err.Error())
	default:
		return status.Error(codes.InvalidArgument, err.Error())
	}
}

func badArg(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

func (s *Server) GetInfo(context.Context, *pb.Empty) (*pb.Info, error) {
	o := s.dp.Options()
	in := &pb.Info{Version: Version, UptimeNs: int64(s.dp.Uptime()), Workers: int32(o.Workers), IdleMode: string(o.Idle),
		ForwardIpv4: o.Forward4, ForwardIpv6: o.Forward6}
	for _, a := range s.dp.KNIAddrs() {
		in.KniAddrs = append(in.KniAddrs, a.String())
	}
	in.KniWriteDrops, in.KniReadDrops = s.dp.KNIDrops()
	in.ConnCapacity = uint64(s.dp.ConnCapacity())
	in.Steering = s.dp.Steering()
	in.BootId = s.dp.BootID()
	for _, x := range s.dp.XDPFastPaths() {
		in.XdpFastPath = append(in.XdpFastPath, &pb.XDPFastPath{Port: x.Port, Active: x.Active, WhyNot: x.WhyNot})
	}
	return in, nil
}

func (s *Server) ListLinks(_ context.Context, r *pb.ListLinksRequest) (*pb.ListLinksResponse, error) {
	out := &pb.ListLinksResponse{}
	for _, l := range s.dp.Links() {
		if r.Name != "" && l.Name != r.Name {
			continue
		}
		pl := &pb.Link{Index: uint32(l.Index), Name: l.Name, Kind: l.Kind.String(), Parent: l.Parent, Vid: uint32(l.VID),
			Mac: l.MAC.String(), Mtu: int32(l.MTU), Up: l.Up, Driver: l.Driver, Queues: int32(l.Queues), Kni: l.KNI}
		if l.HasStat {
			st := l.Stats
			pl.Stats = &pb.PortStats{RxPackets: st.RxPackets, RxBytes: st.RxBytes, RxDropped: st.RxDropped, RxErrors: st.RxErrors,
				TxPackets: st.TxPackets, TxBytes: st.TxBytes, TxDropped: st.TxDropped, TxErrors: st.TxErrors}
			for _, x := range l.XStats {
				pl.Stats.Xstats = append(pl.Stats.Xstats, &pb.XStat{Name: x.Name, Value: x.Value})
			}
		}
		out.Links = append(out.Links, pl)
	}
	if r.Name != "" && len(out.Links) == 0 {
		return nil, status.Errorf(codes.NotFound, "link %s: no such device", r.Name)
	}
	return out, nil
}

func (s *Server) AddVLAN(_ context.Context, v *pb.VLAN) (*pb.Empty, error) {
	if v.Id > 4094 {
		return nil, badArg("vlan %s: id %d out of range: use 1-4094", v.Name, v.Id)
	}
	return &pb.Empty{}, toStatus(s.dp.AddVLAN(v.Name, v.Port, uint16(v.Id)))
}

func (s *Server) DelVLAN(_ context.Context, v *pb.VLAN) (*pb.Empty, error) {
	if v.Force {
		return &pb.Empty{}, toStatus(s.dp.DelVLANForce(v.Name))
	}
	return &pb.Empty{}, toStatus(s.dp.DelVLAN(v.Name))
}

func (s *Server) AddAddr(_ context.Context, a *pb.Addr) (*pb.Empty, error) {
	p, err := dataplane.ParseIfaceAddr(a.Prefix, a.Dev)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Empty{}, toStatus(s.dp.AddAddr(p, a.Dev))
}

func (s *Server) DelAddr(_ context.Context, a *pb.Addr) (*pb.Empty, error) {
	p, err := dataplane.ParseIfaceAddr(a.Prefix, a.Dev)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Empty{}, toStatus(s.dp.DelAddr(p.Addr(), a.Dev, a.Force))
}

// parsePrefixOrHost accepts "a/len" or a bare address (a host prefix).
// A zone is refused: a prefix has none (netip.ParseAddr would take
// "fe80::%dp0/64" as the zone "dp0/64").
func parsePrefixOrHost(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, errors.New("a prefix has no zone (%IFACE): name the interface with dev")
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not an address or address/prefix-length")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (s *Server) ListAddrs(_ context.Context, r *pb.ListAddrsRequest) (*pb.ListAddrsResponse, error) {
	out := &pb.ListAddrsResponse{}
	for _, a := range s.dp.Addrs(r.Dev) {
		out.Addrs = append(out.Addrs, &pb.Addr{Prefix: a.Prefix.String(), Dev: a.Iface})
	}
	return out, nil
}

func routeSpec(r *pb.Route) (dataplane.RouteSpec, error) {
	var rs dataplane.RouteSpec
	var err error
	if rs.Dst, err = parsePrefixOrHost(r.Dst); err != nil {
		return rs, badArg("route %q: destination %v", r.Dst, err)
	}
	if r.Via != "" {
		if rs.Gateway, err = netip.ParseAddr(r.Via); err != nil {
			return rs, badArg("route %s: via %q is not an address", r.Dst, r.Via)
		}
	}
	if r.Src != "" {
		if rs.Src, err = netip.ParseAddr(r.Src); err != nil {
			return rs, badArg("route %s: src %q is not an address", r.Dst, r.Src)
		}
	}
	rs.Iface, rs.Metric = r.Dev, r.Metric
	for i, nh := range r.Nexthops {
		n := dataplane.NextHopSpec{Iface: nh.Dev}
		if nh.Via != "" {
			if n.Gateway, err = netip.ParseAddr(nh.Via); err != nil {
				return rs, badArg("route %s nexthop %d: via %q is not an address", r.Dst, i+1, nh.Via)
			}
		}
		if nh.Weight > 256 {
			return rs, badArg("route %s nexthop %d: weight %d: use 1-256", r.Dst, i+1, nh.Weight)
		}
		n.Weight = uint16(nh.Weight)
		rs.NextHops = append(rs.NextHops, n)
	}
	return rs, nil
}

func (s *Server) AddRoute(_ context.Context, r *pb.Route) (*pb.Empty, error) {
	rs, err := routeSpec(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, toStatus(s.dp.AddRoute(rs))
}

func (s *Server) DelRoute(_ context.Context, r *pb.Route) (*pb.Empty, error) {
	rs, err := routeSpec(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, toStatus(s.dp.DelRoute(rs.Dst, rs.Gateway))
}

func (s *Server) ListRoutes(context.Context, *pb.Empty) (*pb.ListRoutesResponse, error) {
	out := &pb.ListRoutesResponse{}
	for _, r := range s.dp.Routes() {
		pr := &pb.Route{Dst: r.Dst.String(), Dev: r.IfaceName, Metric: r.Metric, Scope: r.Scope.String(), Connected: r.Connected}
		if r.Gateway.IsValid() {
			pr.Via = r.Gateway.String()
		}
		if r.Src.IsValid() {
			pr.Src = r.Src.String()
		}
		pr.Proto = "static"
		switch {
		case r.Connected:
			pr.Proto = "auto"
		case r.Learnt:
			pr.Proto = "kernel"
		}
		if r.Multipath() {
			pr.Via, pr.Dev = "", ""
			for i, nh := range r.NextHops {
				pn := &pb.Nexthop{Dev: r.NextHopIfaces[i], Weight: uint32(max(nh.Weight, 1))}
				if nh.Gateway.IsValid() {
					pn.Via = nh.Gateway.String()
				}
				pr.Nexthops = append(pr.Nexthops, pn)
			}
		}
		out.Routes = append(out.Routes, pr)
	}
	return out, nil
}

func (s *Server) AddNeigh(_ context.Context, n *pb.Neigh) (*pb.Empty, error) {
	a, err := netip.ParseAddr(n.Addr)
	if err != nil {
		return nil, badArg("neigh %q: not an address", n.Addr)
	}
	mac, err := config.ParseMAC(n.Lladdr)
	if err != nil {
		return nil, badArg("neigh %s: lladdr %v", n.Addr, err)
	}
	return &pb.Empty{}, toStatus(s.dp.AddNeigh(a, header.MAC(mac), n.Dev))
}

func (s *Server) DelNeigh(_ context.Context, n *pb.Neigh) (*pb.Empty, error) {
	a, err := netip.ParseAddr(n.Addr)
	if err != nil {
		return nil, badArg("neigh %q: not an address", n.Addr)
	}
	return &pb.Empty{}, toStatus(s.dp.DelNeigh(a))
}

func (s *Server) ListNeighs(context.Context, *pb.Empty) (*pb.ListNeighsResponse, error) {
	out := &pb.ListNeighsResponse{}
	for _, n := range s.dp.Neighbours() {
		out.Neighs = append(out.Neighs, &pb.Neigh{Addr: n.Addr.String(), Lladdr: n.MAC.String(), Dev: n.Iface,
			State: string(n.State), AgeNs: int64(n.Age)})
	}
	return out, nil
}

func (s *Server) ListWorkers(context.Context, *pb.Empty) (*pb.ListWorkersResponse, error) {
	out := &pb.ListWorkersResponse{}
	names := dataplane.CounterNames()
	lst := s.dp.ListingSteps()
	usage := s.dp.LBUsage()
	for i, w := range s.dp.Workers() {
		pw := &pb.Worker{Id: int32(w.ID), Core: int32(w.Core), Loops: w.Loop.Loops, Bursts: w.Loop.Bursts,
			IdleLoops: w.Loop.IdleLoops, Sleeps: w.Loop.Sleeps, Packets: w.Loop.Packets, LongestLoopNs: w.Loop.LongestLoopNs, BusyNs: w.Loop.BusyNs,
			LoopHist: w.Loop.LoopHist[:], ListingSteps: lst[i].Steps, ListingStepNs: lst[i].StepNs,
			ListingStepMaxNs: lst[i].MaxStepNs, ListingStepsOver_1Ms: lst[i].StepsOver1ms}
		if i < len(usage) {
			u := usage[i]
			pw.Conns, pw.ConnCapacity, pw.ConnHighWater, pw.ConnPressure = uint64(u.Conns), uint64(u.ConnCapacity), uint64(u.HighWater), u.Pressure
		}
		for i, v := range w.Counters {
			pw.Counters = append(pw.Counters, &pb.Counter{Name: names[i], Value: v})
		}
		out.Workers = append(out.Workers, pw)
	}
	return out, nil
}
