package apiserver

// Session sync over the API: StreamSyncEvents hands the workers' connection
// events to the one consumer (gvs-controlplane's sync), InstallSyncConns
// installs what peers (or this node's control plane after a dataplane
// restart) synced. See dataplane/sync.go and docs/sync.md.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/proxyproto"
	"github.com/gvs-lb/gvs/session"
)

func (s *Server) StreamSyncEvents(r *pb.SyncStreamRequest, stream pb.Dataplane_StreamSyncEventsServer) error {
	if r.Threshold > 255 || r.Period > 255 {
		return badArg("sync threshold %d, period %d: give 1 to 200 packets and threshold + period below 256", r.Threshold, r.Period)
	}
	p := dataplane.SyncPolicy{Threshold: uint8(r.Threshold), Period: uint8(r.Period), UDP: r.Udp}
	max := int(r.MaxBatch)
	if max <= 0 || max > dataplane.MaxSyncInstall {
		max = 1024
	}
	var sendErr error
	err := s.dp.DrainSync(stream.Context(), p, max, 0, func(batch []dataplane.SyncConn) error {
		out := &pb.SyncEvents{Conns: make([]*pb.SyncConn, len(batch))}
		all := make([]pb.SyncConn, len(batch)) // one allocation per batch
		for i := range batch {
			pbSyncConn(&all[i], &batch[i])
			out.Conns[i] = &all[i]
		}
		sendErr = stream.Send(out)
		return sendErr
	})
	switch {
	case sendErr != nil:
		return sendErr
	case errors.Is(err, dataplane.ErrSyncBusy):
		return status.Error(codes.FailedPrecondition, "sync events: "+err.Error()+": stop the other gvs-controlplane first")
	case errors.Is(err, dataplane.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case stream.Context().Err() != nil:
		return status.FromContextError(stream.Context().Err()).Err()
	}
	return toStatus(err)
}

func (s *Server) InstallSyncConns(_ context.Context, r *pb.SyncInstallRequest) (*pb.SyncInstallResult, error) {
	if len(r.Conns) > dataplane.MaxSyncInstall {
		return nil, badArg("%d synced connections in one call: send at most %d", len(r.Conns), dataplane.MaxSyncInstall)
	}
	conns := make([]dataplane.SyncConn, 0, len(r.Conns))
	refused := 0
	for _, c := range r.Conns {
		sc, err := SyncConnFromPB(c)
		if err != nil {
			refused++ // one bad record does not refuse the batch
			continue
		}
		conns = append(conns, sc)
	}
	res, err := s.dp.InstallSynced(conns)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &pb.SyncInstallResult{Installed: uint32(res.Installed), Updated: uint32(res.Updated), Deleted: uint32(res.Deleted),
		Refused: uint32(res.Refused + refused)}, nil
}

func pbSyncConn(o *pb.SyncConn, c *dataplane.SyncConn) {
	o.Kind, o.Proto, o.State = c.Kind.String(), ipvs.Proto(c.Proto).String(), c.State.String()
	o.Client, o.Virtual, o.Local, o.Dest = c.Client.String(), c.Virtual.String(), c.Local.String(), c.Dest.String()
	o.TimeoutNs, o.Synced, o.Worker = int64(c.Timeout), c.Synced, int32(c.Worker)
	if a := c.Adjust; a.Present {
		o.Adjust = &pb.TCPAdjust{SeqDelta: a.SeqDelta, TsDelta: a.TSDelta, InScales: uint32(a.InScales), OutScales: uint32(a.OutScales),
			PpShift: uint32(a.PPShift), SynProxy: a.SynProxy}
	}
}

// SyncConnFromPB parses an API record; the error names the bad field.
func SyncConnFromPB(c *pb.SyncConn) (dataplane.SyncConn, error) {
	var s dataplane.SyncConn
	switch c.Kind {
	case "update", "":
		s.Kind = dataplane.SyncUpdate
	case "delete":
		s.Kind = dataplane.SyncDelete
	default:
		return s, fmt.Errorf("synced connection kind %q: use update or delete", c.Kind)
	}
	switch c.Proto {
	case "TCP":
		s.Proto = header.ProtoTCP
	case "UDP":
		s.Proto = header.ProtoUDP
	default:
		return s, fmt.Errorf("synced connection protocol %q: use TCP or UDP", c.Proto)
	}
	st, ok := session.ParseState(c.State)
	if !ok {
		return s, fmt.Errorf("synced connection state %q: use a state ipvsadm -lc shows", c.State)
	}
	s.State = st
	for _, f := range []struct {
		name, v string
		to      *netip.AddrPort
	}{{"client", c.Client, &s.Client}, {"virtual", c.Virtual, &s.Virtual}, {"local", c.Local, &s.Local}, {"dest", c.Dest, &s.Dest}} {
		ap, err := netip.ParseAddrPort(f.v)
		if err != nil {
			return s, fmt.Errorf("synced connection %s %q: %v", f.name, f.v, err)
		}
		*f.to = ap
	}
	s.Timeout, s.Synced, s.Worker = time.Duration(c.TimeoutNs), c.Synced, int(c.Worker)
	if a := c.GetAdjust(); a != nil {
		if a.InScales > 0xee || a.OutScales > 0xee {
			return s, fmt.Errorf("synced connection adjust: window scales %#x/%#x: each is from<<4|to, 0-14", a.InScales, a.OutScales)
		}
		if a.PpShift > proxyproto.MaxV1Len {
			return s, fmt.Errorf("synced connection adjust: proxy protocol shift %d: at most %d", a.PpShift, proxyproto.MaxV1Len)
		}
		s.Adjust = dataplane.SyncAdjust{Present: true, SeqDelta: a.SeqDelta, TSDelta: a.TsDelta, InScales: uint8(a.InScales), OutScales: uint8(a.OutScales),
			PPShift: uint8(a.PpShift), SynProxy: a.SynProxy}
		if err := s.Adjust.Validate(); err != nil {
			return s, fmt.Errorf("synced connection adjust: %v", err)
		}
		if s.Proto != header.ProtoTCP {
			return s, fmt.Errorf("synced connection adjust on a %s connection: only TCP connections are SYN-proxied", c.Proto)
		}
	}
	return s, nil
}
