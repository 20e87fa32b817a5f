package apiserver

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
)

func newTestServer(t *testing.T) *Server {
	t.Helper()
	p := mem.New(port.Config{Name: "dp0", Queues: 2}, net.HardwareAddr{2, 0, 0, 0, 0, 0x10})
	d, err := dataplane.New(dataplane.Options{Workers: 2}, []dataplane.PortSpec{{Port: p}})
	if err != nil {
		t.Fatal(err)
	}
	return New(d)
}

// Every LVS state's timeout is settable through the API; 0 keeps a value,
// so ipvsadm --set (tcp, tcpfin, udp only) leaves the others alone, and an
// invalid value changes nothing and names the state.
func TestTimeoutsAPI(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	linux := &pb.Timeouts{Tcp: 900, TcpFin: 120, Udp: 300, None: 2, SynSent: 120, SynRecv: 60, TimeWait: 120,
		Close: 10, CloseWait: 60, LastAck: 30, Listen: 120, Synack: 120}
	steps := []struct {
		name    string
		set     *pb.Timeouts
		want    *pb.Timeouts
		errCode codes.Code
		errText string
	}{
		{"defaults", nil, linux, codes.OK, ""},
		{"ipvsadm --set 600 60 30", &pb.Timeouts{Tcp: 600, TcpFin: 60, Udp: 30},
			&pb.Timeouts{Tcp: 600, TcpFin: 60, Udp: 30, None: 2, SynSent: 120, SynRecv: 60, TimeWait: 120,
				Close: 10, CloseWait: 60, LastAck: 30, Listen: 120, Synack: 120}, codes.OK, ""},
		{"every other state", &pb.Timeouts{None: 3, SynSent: 4, SynRecv: 5, TimeWait: 6, Close: 7, CloseWait: 8,
			LastAck: 9, Listen: 11, Synack: 12},
			&pb.Timeouts{Tcp: 600, TcpFin: 60, Udp: 30, None: 3, SynSent: 4, SynRecv: 5, TimeWait: 6, Close: 7,
				CloseWait: 8, LastAck: 9, Listen: 11, Synack: 12}, codes.OK, ""},
		{"syn_recv too long", &pb.Timeouts{Tcp: 1, SynRecv: 4000000000},
			&pb.Timeouts{Tcp: 600, TcpFin: 60, Udp: 30, None: 3, SynSent: 4, SynRecv: 5, TimeWait: 6, Close: 7,
				CloseWait: 8, LastAck: 9, Listen: 11, Synack: 12}, codes.InvalidArgument, "syn_recv"},
		{"all zero: no change", &pb.Timeouts{},
			&pb.Timeouts{Tcp: 600, TcpFin: 60, Udp: 30, None: 3, SynSent: 4, SynRecv: 5, TimeWait: 6, Close: 7,
				CloseWait: 8, LastAck: 9, Listen: 11, Synack: 12}, codes.OK, ""},
	}
	for _, st := range steps {
		if st.set != nil {
			_, err := s.SetTimeouts(ctx, st.set)
			if status.Code(err) != st.errCode || (st.errText != "" && !strings.Contains(err.Error(), st.errText)) {
				t.Errorf("%s: SetTimeouts error %v, want code %v naming %q", st.name, err, st.errCode, st.errText)
			}
		}
		got, err := s.GetTimeouts(ctx, &pb.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, st.want) {
			t.Errorf("%s: GetTimeouts = %v\nwant %v", st.name, got, st.want)
		}
	}
}
