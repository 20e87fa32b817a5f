package main

// ipvsadm against a gRPC server on a unix socket: a fake dataplane that
// records the requests it gets and answers what each test tells it. The
// real dataplane's answers are the lead's to test; here the point is what
// ipvsadm sends, prints and exits with.

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

type fakeDP struct {
	pb.UnimplementedDataplaneServer
	mu       sync.Mutex
	calls    []string
	requests []proto.Message
	errs     map[string]error // method → error to answer
	services []*pb.Service
	conns    []*pb.Conn
	connPage int
	info     *pb.Info
	timeouts *pb.Timeouts
}

func (f *fakeDP) record(method string, req proto.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	f.requests = append(f.requests, req)
	return f.errs[method]
}

func (f *fakeDP) GetInfo(_ context.Context, r *pb.Empty) (*pb.Info, error) {
	if err := f.record("GetInfo", r); err != nil {
		return nil, err
	}
	if f.info == nil {
		return &pb.Info{}, nil
	}
	return f.info, nil
}

func (f *fakeDP) AddService(_ context.Context, r *pb.Service) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("AddService", r)
}

func (f *fakeDP) EditService(_ context.Context, r *pb.Service) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("EditService", r)
}

func (f *fakeDP) DelService(_ context.Context, r *pb.Service) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("DelService", r)
}

func (f *fakeDP) FlushServices(_ context.Context, r *pb.Empty) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("FlushServices", r)
}

func (f *fakeDP) ListServices(_ context.Context, r *pb.ListServicesRequest) (*pb.ListServicesResponse, error) {
	if err := f.record("ListServices", r); err != nil {
		return nil, err
	}
	return &pb.ListServicesResponse{Services: f.services}, nil
}

func (f *fakeDP) AddDest(_ context.Context, r *pb.DestRequest) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("AddDest", r)
}

func (f *fakeDP) EditDest(_ context.Context, r *pb.DestRequest) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("EditDest", r)
}

func (f *fakeDP) DelDest(_ context.Context, r *pb.DestRequest) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("DelDest", r)
}

func (f *fakeDP) AddLAddr(_ context.Context, r *pb.LAddrRequest) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("AddLAddr", r)
}

func (f *fakeDP) DelLAddr(_ context.Context, r *pb.LAddrRequest) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("DelLAddr", r)
}

// ListConns streams f.conns in pages of f.connPage (0: one page), as the
// dataplane does.
func (f *fakeDP) ListConns(r *pb.ListConnsRequest, stream pb.Dataplane_ListConnsServer) error {
	if err := f.record("ListConns", r); err != nil {
		return err
	}
	for rest := f.conns; len(rest) > 0; {
		n := len(rest)
		if f.connPage > 0 {
			n = min(n, f.connPage)
		}
		if err := stream.Send(&pb.ListConnsResponse{Conns: rest[:n]}); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

func (f *fakeDP) GetTimeouts(_ context.Context, r *pb.Empty) (*pb.Timeouts, error) {
	if err := f.record("GetTimeouts", r); err != nil {
		return nil, err
	}
	return f.timeouts, nil
}

func (f *fakeDP) SetTimeouts(_ context.Context, r *pb.Timeouts) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("SetTimeouts", r)
}

func (f *fakeDP) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.requests, f.errs = nil, nil, map[string]error{}
}

func startFake(t *testing.T) (*fakeDP, string) {
	t.Helper()
	f := &fakeDP{errs: map[string]error{}}
	sock := filepath.Join(t.TempDir(), "dp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterDataplaneServer(g, f)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return f, sock
}

type result struct {
	stdout, stderr string
	code           int
}

// runCmd runs one ipvsadm command line with the socket from GVS_DATAPLANE_SOCKET
// semantics replaced by sock, and numeric names.
func runCmd(t *testing.T, sock, stdin, line string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(strings.NewReader(stdin), &out, &errb)
	a.names = nil
	a.socket = sock
	argv := append([]string{"ipvsadm"}, strings.Fields(line)...)
	code := a.run(argv)
	a.close()
	return result{out.String(), errb.String(), code}
}

func TestAddServiceRequest(t *testing.T) {
	f, sock := startFake(t)
	r := runCmd(t, sock, "", "-A -t 10.0.0.1:80 -s rr -j enable --conn-timeout 30")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("got %+v", r)
	}
	want := &pb.Service{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.1", Port: 80}, Sched: "rr", Synproxy: true, ConnTimeout: 30}
	if len(f.requests) != 1 || f.calls[0] != "AddService" || !proto.Equal(f.requests[0], want) {
		t.Fatalf("calls %v %v", f.calls, f.requests)
	}
}

func TestRequests(t *testing.T) {
	f, sock := startFake(t)
	k := &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.1", Port: 80}
	cases := []struct {
		line   string
		method string
		req    proto.Message
	}{
		{"-E -t 10.0.0.1:80 -s wrr", "EditService", &pb.Service{Key: k, Sched: "wrr"}},
		{"-D -t 10.0.0.1:80", "DelService", &pb.Service{Key: k}},
		{"-C", "FlushServices", &pb.Empty{}},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -b -w 3", "AddDest", &pb.DestRequest{Service: k, Dest: &pb.Dest{Addr: "192.168.0.1", Port: 80, Weight: 3, Fwd: "FullNat"}}},
		{"-e -t 10.0.0.1:80 -r 192.168.0.1:81 -b -x 9", "EditDest", &pb.DestRequest{Service: k, Dest: &pb.Dest{Addr: "192.168.0.1", Port: 81, Weight: 1, Upper: 9, Fwd: "FullNat"}}},
		{"-d -t 10.0.0.1:80 -r 192.168.0.1", "DelDest", &pb.DestRequest{Service: k, Dest: &pb.Dest{Addr: "192.168.0.1", Port: 80}}},
		{"-P -t 10.0.0.1:80 -z 10.0.0.200 -F dpdk0", "AddLAddr", &pb.LAddrRequest{Service: k, Laddr: &pb.LAddr{Addr: "10.0.0.200", Dev: "dpdk0"}}},
		{"--del-laddr -t 10.0.0.1:80 -z 10.0.0.200 -F dpdk0", "DelLAddr", &pb.LAddrRequest{Service: k, Laddr: &pb.LAddr{Addr: "10.0.0.200", Dev: "dpdk0"}}},
		{"--set 900 120 300", "SetTimeouts", &pb.Timeouts{Tcp: 900, TcpFin: 120, Udp: 300}},
	}
	for _, c := range cases {
		f.reset()
		r := runCmd(t, sock, "", c.line)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("%s: %+v", c.line, r)
			continue
		}
		if len(f.calls) != 1 || f.calls[0] != c.method || !proto.Equal(f.requests[0], c.req) {
			t.Errorf("%s: calls %v %v, want %s %v", c.line, f.calls, f.requests, c.method, c.req)
		}
	}
}

func TestAPIErrors(t *testing.T) {
	f, sock := startFake(t)
	cases := []struct {
		method, line string
		err          error
		stderr       string
		code         int
	}{
		{"AddService", "-A -t 10.0.0.1:80", status.Error(codes.AlreadyExists, "service TCP 10.0.0.1:80: Service already exists"),
			"Service already exists\n", 255},
		{"AddDest", "-a -t 10.0.0.1:80 -r 192.168.0.1", status.Error(codes.Unimplemented, "destination 192.168.0.1:80 of TCP 10.0.0.1:80: forwarding method Route: not supported"),
			"destination 192.168.0.1:80 of TCP 10.0.0.1:80: forwarding method Route: not supported\n", 255},
		{"DelDest", "-d -t 10.0.0.1:80 -r 192.168.0.1", status.Error(codes.NotFound, "service TCP 10.0.0.1:80: Service not defined"),
			"Service not defined\n", 255},
		{"ListServices", "-L -n -t 10.0.0.9:80", status.Error(codes.NotFound, "service TCP 10.0.0.9:80: No such service"),
			"No such service\n", 1},
		{"ListServices", "-S -n", status.Error(codes.Internal, "boom"), "boom\n", 1},
		{"ListConns", "-L -n -c", status.Error(codes.Internal, "workers busy"), "workers busy\n", 1},
	}
	for _, c := range cases {
		f.reset()
		f.errs[c.method] = c.err
		r := runCmd(t, sock, "", c.line)
		if r.stderr != c.stderr || r.code != c.code || r.stdout != "" {
			t.Errorf("%s: got %+v, want stderr %q exit %d", c.line, r, c.stderr, c.code)
		}
	}
}

func TestListings(t *testing.T) {
	f, sock := startFake(t)
	info, size := infoWithCapacity(262144)
	f.info = info
	f.services = []*pb.Service{{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.1", Port: 80}, Sched: "rr",
		Dests:  []*pb.Dest{{Addr: "192.168.0.2", Port: 80, Weight: 1, Fwd: "FullNat", Active: 2, Inactive: 1}},
		Laddrs: []*pb.LAddr{{Addr: "10.0.0.200", Dev: "dpdk0"}}}}
	f.conns = []*pb.Conn{{Proto: "TCP", State: "ESTABLISHED", ExpireNs: 61e9, Client: "1.2.3.4:5", Virtual: "10.0.0.1:80", Dest: "192.168.0.2:80"}}
	f.timeouts = &pb.Timeouts{Tcp: 900, TcpFin: 120, Udp: 300}
	cases := []struct{ line, out string }{
		{"-L -n", "IP Virtual Server version 1.2.1 (size=" + size + ")\n" +
			"Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
			"TCP  10.0.0.1:80 rr\n" +
			"  -> 192.168.0.2:80               FullNat 1      2          1         \n"},
		{"-Ln -t 10.0.0.1:80", "Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
			"TCP  10.0.0.1:80 rr\n" +
			"  -> 192.168.0.2:80               FullNat 1      2          1         \n"},
		{"-S -n", "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.0.2:80 -b -w 1\n-P -t 10.0.0.1:80 -z 10.0.0.200 -F dpdk0\n"},
		{"-L --timeout", "Timeout (tcp tcpfin udp): 900 120 300\n"},
		{"-L --daemon", ""},
		{"-Lnc", "IPVS connection entries\npro expire state       source             virtual            destination\n" +
			"TCP 01:01  ESTABLISHED 1.2.3.4:5          10.0.0.1:80        192.168.0.2:80\n"},
		{"-G", "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n" +
			"10.0.0.1:80          1        \n" +
			"                              10.0.0.200           0          0         \n"},
	}
	for _, c := range cases {
		r := runCmd(t, sock, "", c.line)
		if r.code != 0 || r.stderr != "" || r.stdout != c.out {
			t.Errorf("%s: got %+v\nwant stdout %q", c.line, r, c.out)
		}
	}
	// a listed service must be the one asked for
	if r := runCmd(t, sock, "", "-L -n -t 10.0.0.1:81"); r.code != 1 || r.stderr != "No such service\n" {
		t.Errorf("-t 10.0.0.1:81: %+v", r)
	}
	// without conn_capacity the header says 4096
	f.info = &pb.Info{}
	if r := runCmd(t, sock, "", "-Ln"); !strings.HasPrefix(r.stdout, "IP Virtual Server version 1.2.1 (size=4096)\n") {
		t.Errorf("header %q", r.stdout)
	}
}

// infoWithCapacity sets Info.conn_capacity by name, as connTabSize reads
// it, and returns the size the header must show.
func infoWithCapacity(n uint64) (*pb.Info, string) {
	info := &pb.Info{}
	m := info.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("conn_capacity")
	if fd == nil {
		return info, "4096"
	}
	m.Set(fd, protoreflect.ValueOfUint64(n))
	return info, strconv.FormatUint(n, 10)
}

func TestRestore(t *testing.T) {
	f, sock := startFake(t)
	in := "# saved by ipvsadm -S -n\n" +
		"-A -t 10.0.0.1:80 -s rr\n" +
		"-A -t 10.0.0.2:80 -s rr\n" +
		"ipvsadm -a -t 10.0.0.1:80 -r 192.168.0.1:80 -b -w 1\n"
	f.errs["AddService"] = status.Error(codes.AlreadyExists, "service TCP 10.0.0.1:80: Service already exists")
	r := runCmd(t, sock, in, "-R")
	if r.code != 255 || r.stderr != "ipvsadm: line 2: Service already exists\nipvsadm: line 3: Service already exists\n" {
		t.Errorf("got %+v", r)
	}
	if strings.Join(f.calls, " ") != "AddService AddService AddDest" {
		t.Errorf("calls %v: later lines must still be applied", f.calls)
	}

	// a bad line stops the restore before anything is applied
	f.reset()
	r = runCmd(t, sock, "-C\n-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 192.168.0.1 -w 99999\n", "-R")
	if r.code != 2 || r.stderr != "ipvsadm: line 3: illegal weight specified\n" || len(f.calls) != 0 {
		t.Errorf("got %+v, calls %v", r, f.calls)
	}
	f.reset()
	r = runCmd(t, sock, "-C\n-A -t 10.0.0.1:80 -M 255.255.255.0\n", "-R")
	if r.code != 2 || r.stderr != "ipvsadm: line 2: --netmask without --persistent: add -p [timeout]\n" || len(f.calls) != 0 {
		t.Errorf("got %+v, calls %v", r, f.calls)
	}

	// what -S writes, -R reads back
	f.reset()
	f.services = []*pb.Service{{Key: &pb.ServiceKey{Proto: "UDP", Addr: "2001:db8::1", Port: 53}, Sched: "wrr",
		Dests: []*pb.Dest{{Addr: "2001:db8::2", Port: 5353, Weight: 7, Fwd: "FullNat", Upper: 5}}}}
	saved := runCmd(t, sock, "", "-S -n")
	f.reset()
	if r := runCmd(t, sock, saved.stdout, "-R"); r.code != 0 || r.stderr != "" {
		t.Fatalf("restore of %q: %+v", saved.stdout, r)
	}
	wantReqs := []proto.Message{
		&pb.Service{Key: &pb.ServiceKey{Proto: "UDP", Addr: "2001:db8::1", Port: 53}, Sched: "wrr"},
		&pb.DestRequest{Service: &pb.ServiceKey{Proto: "UDP", Addr: "2001:db8::1", Port: 53},
			Dest: &pb.Dest{Addr: "2001:db8::2", Port: 5353, Weight: 7, Upper: 5, Fwd: "FullNat"}},
	}
	if len(f.requests) != len(wantReqs) {
		t.Fatalf("requests %v", f.requests)
	}
	for i := range wantReqs {
		if !proto.Equal(f.requests[i], wantReqs[i]) {
			t.Errorf("request %d: %v, want %v", i, f.requests[i], wantReqs[i])
		}
	}
}

func TestRefusedWithoutDataplane(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	cases := []struct {
		line, stdout, stderr string
		code                 int
	}{
		{"--start-daemon master", "", "ipvsadm: --start-daemon: not supported yet\n", 2},
		{"-A -t 10.0.0.1:80 --pe sip", "", "ipvsadm: --pe: not supported by GVS\n", 2},
		{"-L -n -x 1", "", "Illegal 'u-threshold' option with the 'list' command\n", 2},
		{"-n -L", "", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n", 255},
		{"-v", "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n", "", 0},
	}
	for _, c := range cases {
		r := runCmd(t, sock, "", c.line)
		if r.code != c.code || r.stderr != c.stderr || r.stdout != c.stdout {
			t.Errorf("%s: got %+v", c.line, r)
		}
	}
	r := runCmd(t, sock, "", "-h")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ipvsadm v1.31") || !strings.Contains(r.stdout, "--fullnat      -b") {
		t.Errorf("-h: %+v", r)
	}
}

func TestCannotConnect(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.sock")
	r := runCmd(t, missing, "", "-L -n")
	if r.code != 2 || !strings.HasPrefix(r.stderr, "Can't initialize ipvs: ") ||
		!strings.HasSuffix(r.stderr, "\nAre you sure that gvs-dataplane is running?\n") {
		t.Errorf("missing socket: %+v", r)
	}
	// a file that is not a listening socket: the first call is Unavailable
	notSock := filepath.Join(dir, "file")
	if err := os.WriteFile(notSock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, notSock, "", "-A -t 10.0.0.1:80")
	if r.code != 2 || !strings.HasPrefix(r.stderr, "Can't initialize ipvs: ") {
		t.Errorf("dead socket: %+v", r)
	}
	r = runCmd(t, notSock, "-C\n-C\n", "-R")
	if r.code != 2 || strings.Count(r.stderr, "Can't initialize ipvs") != 1 {
		t.Errorf("dead socket, restore: %+v", r)
	}
}

func TestSocketFlagAndEnv(t *testing.T) {
	f, sock := startFake(t)
	// --socket on the command line wins over the app's default
	r := runCmd(t, "/nonexistent", "", "--socket "+sock+" -C")
	if r.code != 0 || len(f.calls) != 1 {
		t.Errorf("--socket: %+v calls %v", r, f.calls)
	}
	f.reset()
	t.Setenv("GVS_DATAPLANE_SOCKET", sock)
	var out, errb bytes.Buffer
	a := newApp(strings.NewReader(""), &out, &errb)
	a.names = nil
	code := a.run([]string{"ipvsadm", "-C"})
	a.close()
	if code != 0 || len(f.calls) != 1 {
		t.Errorf("GVS_DATAPLANE_SOCKET: exit %d, stderr %q, calls %v", code, errb.String(), f.calls)
	}
}
