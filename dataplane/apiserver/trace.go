package apiserver

// Per-packet trace over the API: the stream that armed the trace owns it,
// formats each record the workers complete (the workers never format) and
// sends it; the trace is disarmed when count records were sent or the
// client goes away. See dataplane/trace.go.

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/internal/cbpf"
)

// TraceOptions translates a request; the error names the bad field and the fix.
func (s *Server) TraceOptions(r *pb.TraceRequest) (dataplane.TraceOptions, error) {
	o := dataplane.TraceOptions{Count: int(r.Count), Port: -1, Worker: -1}
	if r.Count > dataplane.MaxTraceCount {
		return o, badArg("trace %d packets: give -c 1 to %d", r.Count, dataplane.MaxTraceCount)
	}
	if r.Port != "" {
		p, err := s.dp.PortIndex(r.Port)
		if err != nil {
			return o, status.Error(codes.NotFound, "trace: "+err.Error())
		}
		o.Port = p
	}
	if r.Worker != nil {
		o.Worker = int(*r.Worker)
	}
	raw, err := cbpf.FromQuads(r.Filter)
	var f *cbpf.Filter
	if err == nil {
		f, err = cbpf.New(raw)
	}
	if err != nil {
		return o, badArg("trace filter %q: %v: send the program tcpdump -ddd -y EN10MB prints for it (dpip trace does)", r.FilterExpr, err)
	}
	if f.Len() > 0 {
		o.Filter = f
	}
	return o, nil
}

func (s *Server) Trace(r *pb.TraceRequest, stream pb.Dataplane_TraceServer) error {
	o, err := s.TraceOptions(r)
	if err != nil {
		return err
	}
	t, err := s.dp.StartTrace(o)
	if errors.Is(err, dataplane.ErrTraceBusy) {
		return status.Error(codes.FailedPrecondition, "trace: "+err.Error()+": wait for it to end or stop its dpip trace")
	}
	if err != nil {
		return toStatus(err)
	}
	defer t.Stop()
	if err := stream.Send(&pb.TraceRecord{Armed: true}); err != nil {
		return err
	}
	var sendErr error
	err = t.Stream(stream.Context(), func(rec *dataplane.TraceRecord) error {
		sendErr = stream.Send(s.traceRecord(rec))
		return sendErr
	})
	switch {
	case sendErr != nil:
		return sendErr
	case stream.Context().Err() != nil:
		return status.FromContextError(stream.Context().Err()).Err()
	}
	return toStatus(err)
}

// traceRecord formats rec for the wire.
func (s *Server) traceRecord(rec *dataplane.TraceRecord) *pb.TraceRecord {
	pkt, steps := s.dp.DescribeTrace(rec)
	out := &pb.TraceRecord{Seq: uint32(rec.Seq), Worker: uint32(rec.Worker), Port: s.dp.PortName(rec.Port),
		FromWorker: int32(rec.From), Length: uint32(rec.Len), Packet: pkt, Stages: make([]*pb.TraceStage, len(steps))}
	for i, st := range steps {
		out.Stages[i] = &pb.TraceStage{AtNs: st.AtNs, Stage: st.Stage, Verdict: st.Verdict, Counter: st.Counter}
	}
	for _, e := range rec.Stages() {
		if (e.Stage == dataplane.StageSchedule || e.Stage == dataplane.StageLookup && e.Code != dataplane.LookupMiss) && e.A.IsValid() {
			out.RealServer = e.A.String()
		}
	}
	return out
}
