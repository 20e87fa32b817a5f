package apiserver

import (
	"context"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// GetLBUsage reports connection table fill and local port usage per worker.
func (s *Server) GetLBUsage(context.Context, *pb.Empty) (*pb.LBUsage, error) {
	out := &pb.LBUsage{}
	for _, w := range s.dp.LBUsage() {
		o := &pb.WorkerLBUsage{Worker: int32(w.Worker), Conns: uint64(w.Conns), ConnCapacity: uint64(w.ConnCapacity)}
		for _, a := range w.LAddrs {
			o.Laddrs = append(o.Laddrs, &pb.LAddrPorts{Addr: a.Addr.String(), InUse: uint32(a.InUse),
				BusiestInUse: uint32(a.Busiest), BusiestFree: uint32(a.BusiestFree()),
				PortsPerServer: uint32(a.PortsPerServer), Servers: uint32(a.Servers)})
		}
		out.Workers = append(out.Workers, o)
	}
	return out, nil
}
