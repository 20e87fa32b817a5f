package apiserver

// A service's deny and allow lists (ipvsadm --add-blklst/--add-whtlst and
// their del forms); they are listed with the service (ListServices).

import (
	"context"
	"errors"
	"net/netip"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ipvs"
)

func (s *Server) aclRequest(r *pb.ACLRequest) (ipvs.ServiceKey, ipvs.ACLKind, netip.Prefix, error) {
	k, err := serviceKey(r.Service)
	if err != nil {
		return k, 0, netip.Prefix{}, err
	}
	var kind ipvs.ACLKind
	switch r.List {
	case "deny":
		kind = ipvs.ACLDeny
	case "allow":
		kind = ipvs.ACLAllow
	default:
		return k, 0, netip.Prefix{}, badArg("list %q of %s: give deny (blklst) or allow (whtlst)", r.List, k)
	}
	p, err := ipvs.ParseACLPrefix(r.Prefix)
	if err != nil {
		return k, 0, netip.Prefix{}, badArg("%s of %s: %v", kind, k, err)
	}
	return k, kind, p, nil
}

func aclStatus(err error) error {
	switch {
	case errors.Is(err, ipvs.ErrACLExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, ipvs.ErrNoACL):
		return status.Error(codes.NotFound, err.Error())
	}
	return ipvsStatus(err)
}

func (s *Server) AddACL(_ context.Context, r *pb.ACLRequest) (*pb.Empty, error) {
	k, kind, p, err := s.aclRequest(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, aclStatus(s.dp.AddACL(k, kind, p))
}

func (s *Server) DelACL(_ context.Context, r *pb.ACLRequest) (*pb.Empty, error) {
	k, kind, p, err := s.aclRequest(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, aclStatus(s.dp.DelACL(k, kind, p))
}

func prefixStrings(ps []netip.Prefix) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
