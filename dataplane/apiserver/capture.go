package apiserver

// Capture over the API: the stream that started a capture owns it, drains
// the workers' capture rings every few milliseconds into batches of at most
// captureBatch packets, sends the per-worker counters whenever they change
// (so a client interrupted by Ctrl-C still holds recent ones) and tears the
// capture down when it reaches its count or the client goes away.

import (
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/internal/cbpf"
)

const (
	captureBatch      = 256     // packets per message
	captureBatchBytes = 1 << 20 // and at most about this much packet data
	captureTick       = 5 * time.Millisecond
)

// CaptureSpec translates a request; the error names the bad field and the fix.
func CaptureSpec(r *pb.CaptureRequest) (dataplane.CaptureSpec, error) {
	s := dataplane.CaptureSpec{Port: r.Port, Worker: -1, Snaplen: int(r.Snaplen), Rate: int(r.Rate)}
	switch r.Dir {
	case "", "both":
		s.Dir = dataplane.CaptureBoth
	case "rx":
		s.Dir = dataplane.CaptureRx
	case "tx":
		s.Dir = dataplane.CaptureTx
	default:
		return s, badArg("capture direction %q: use rx, tx or both", r.Dir)
	}
	if r.Worker != nil {
		s.Worker = int(*r.Worker)
	}
	raw, err := cbpf.FromQuads(r.Filter)
	if err == nil {
		s.Filter, err = cbpf.New(raw)
	}
	if err != nil {
		return s, badArg("capture filter %q: %v: send the program tcpdump -ddd -y EN10MB prints for it (dpip capture does)", r.FilterExpr, err)
	}
	return s, nil
}

func (s *Server) Capture(r *pb.CaptureRequest, stream pb.Dataplane_CaptureServer) error {
	spec, err := CaptureSpec(r)
	if err != nil {
		return err
	}
	c, err := s.dp.StartCapture(spec)
	switch {
	case errors.Is(err, dataplane.ErrCaptureBusy):
		return status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return toStatus(err)
	}
	defer c.Stop()
	if err := stream.Send(&pb.CaptureRecords{Started: true, Snaplen: uint32(c.Spec.Snaplen)}); err != nil {
		return err
	}
	cs := captureStream{c: c, stream: stream, count: r.Count, batch: &pb.CaptureRecords{}}
	tick := time.NewTicker(captureTick)
	defer tick.Stop()
	ctx := stream.Context()
	for !cs.full() && cs.err == nil {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-tick.C:
		}
		cs.drain(false)
	}
	c.Stop()
	if cs.err == nil {
		cs.drain(true)
	}
	return cs.err
}

// captureStream batches one capture's records onto its stream.
type captureStream struct {
	c      *dataplane.Capture
	stream pb.Dataplane_CaptureServer
	count  uint64 // 0: unlimited
	sent   uint64
	batch  *pb.CaptureRecords
	bytes  int
	last   []dataplane.CaptureStats
	err    error
}

func (cs *captureStream) full() bool { return cs.count > 0 && cs.sent >= cs.count }

// drain moves what the rings hold to the client; it sends the counters
// when they changed, and always when done.
func (cs *captureStream) drain(done bool) {
	cs.c.Drain(func(rec *dataplane.CaptureRecord) {
		if cs.err != nil || cs.full() {
			return
		}
		cs.batch.Packets = append(cs.batch.Packets, &pb.CapturePacket{UnixNano: rec.UnixNano, Port: cs.c.PortName[rec.Port],
			Dir: rec.Dir.String(), Worker: uint32(rec.Worker), OrigLen: uint32(rec.OrigLen), Data: slices.Clone(rec.Data)})
		cs.sent++
		cs.bytes += len(rec.Data)
		if len(cs.batch.Packets) >= captureBatch || cs.bytes >= captureBatchBytes {
			cs.send(false)
		}
	})
	if cs.err != nil {
		return
	}
	done = done || cs.full()
	st := cs.c.Stats()
	if len(cs.batch.Packets) > 0 || done || !slices.Equal(st, cs.last) {
		cs.last = st
		cs.send(done)
	}
}

func (cs *captureStream) send(done bool) {
	cs.batch.Done = done
	cs.batch.Stats = cs.batch.Stats[:0]
	for _, w := range cs.c.Stats() {
		cs.batch.Stats = append(cs.batch.Stats, &pb.CaptureWorkerStats{Worker: uint32(w.Worker), Captured: w.Captured,
			RingDrops: w.RingDrops, RateLimited: w.RateLimited})
	}
	cs.err = cs.stream.Send(cs.batch)
	cs.batch = &pb.CaptureRecords{}
	cs.bytes = 0
}
