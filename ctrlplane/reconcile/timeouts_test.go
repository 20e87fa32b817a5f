package reconcile

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
)

// Every LVS state's timeout in global_defs.timeouts reaches the dataplane;
// states the file leaves out keep the dataplane's values, and a reload
// changes only what differs.
func TestReconcileAllTimeouts(t *testing.T) {
	sock := dptest.Socket(t)
	dptest.Start(t, sock, 1)
	api := dptest.Client(t, sock)
	r, ctx := startReconciler(t, api)
	cfg := `
global_defs:
  timeouts: {tcp: 600, tcpfin: 60, udp: 30, none: 3, syn_sent: 4, syn_recv: 5, time_wait: 6, close: 7,
    close_wait: 8, last_ack: 9, listen: 11}
`
	if err := r.Load(ctx, parse(t, cfg), false); err != nil {
		t.Fatal(err)
	}
	want := &pb.Timeouts{Tcp: 600, TcpFin: 60, Udp: 30, None: 3, SynSent: 4, SynRecv: 5, TimeWait: 6, Close: 7,
		CloseWait: 8, LastAck: 9, Listen: 11, Synack: 120}
	if got, err := api.GetTimeouts(context.Background(), &pb.Empty{}); err != nil || !proto.Equal(got, want) {
		t.Fatalf("after load: %v (%v)\nwant %v", got, err, want)
	}
	ops := r.Stats().Ops
	if err := r.Load(ctx, parse(t, `
global_defs: {timeouts: {syn_recv: 50, synack: 12}}
`), false); err != nil {
		t.Fatal(err)
	}
	want.SynRecv, want.Synack = 50, 12
	if got, err := api.GetTimeouts(context.Background(), &pb.Empty{}); err != nil || !proto.Equal(got, want) {
		t.Fatalf("after reload: %v (%v)\nwant %v", got, err, want)
	}
	if r.Stats().Ops != ops {
		t.Errorf("timeouts counted as service operations: %d -> %d", ops, r.Stats().Ops)
	}
}
