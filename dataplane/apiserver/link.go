package apiserver

import (
	"context"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// SetLink applies a port's device settings: the MTU first, then the
// promiscuous mode; the first refusal is returned (an MTU already set
// stays, as with two ip link set commands).
func (s *Server) SetLink(_ context.Context, r *pb.LinkSetRequest) (*pb.Empty, error) {
	if r.Mtu == nil && r.Promisc == nil {
		return nil, badArg("link %s: nothing to set: give mtu N or promisc on|off", r.Name)
	}
	if r.Mtu != nil {
		if err := s.dp.SetLinkMTU(r.Name, int(*r.Mtu)); err != nil {
			return nil, toStatus(err)
		}
	}
	if r.Promisc != nil {
		if err := s.dp.SetLinkPromisc(r.Name, *r.Promisc); err != nil {
			return nil, toStatus(err)
		}
	}
	return &pb.Empty{}, nil
}
