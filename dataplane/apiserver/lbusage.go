package apiserver

import (
	"context"
	"net/netip"

	"github.com/gvs-lb/gvs/flowdir"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// GetLBUsage reports connection table fill and local port usage per worker.
func (s *Server) GetLBUsage(context.Context, *pb.Empty) (*pb.LBUsage, error) {
	out := &pb.LBUsage{}
	for _, w := range s.dp.LBUsage() {
		o := &pb.WorkerLBUsage{Worker: int32(w.Worker), Conns: uint64(w.Conns), ConnCapacity: uint64(w.ConnCapacity),
			HighWater: uint64(w.HighWater), Pressure: w.Pressure}
		for _, a := range w.LAddrs {
			o.Laddrs = append(o.Laddrs, &pb.LAddrPorts{Addr: a.Addr.String(), InUse: uint32(a.InUse),
				BusiestInUse: uint32(a.Busiest), BusiestFree: uint32(a.BusiestFree()),
				PortsPerServer: uint32(a.PortsPerServer), Servers: uint32(a.Servers), Conflicts: a.Conflicts})
		}
		out.Workers = append(out.Workers, o)
	}
	return out, nil
}

// laddrTotals sums every worker's usage of each local address: the
// connections holding one of its ports and its refused allocations
// (ipvsadm -G's CONNS and CONFLICTS).
func (s *Server) laddrTotals() map[netip.Addr]flowdir.AddrUsage {
	out := map[netip.Addr]flowdir.AddrUsage{}
	for _, w := range s.dp.LBUsage() {
		for _, a := range w.LAddrs {
			t := out[a.Addr]
			t.Addr = a.Addr
			t.InUse += a.InUse
			t.Conflicts += a.Conflicts
			out[a.Addr] = t
		}
	}
	return out
}
