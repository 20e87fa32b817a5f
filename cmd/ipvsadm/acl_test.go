package main

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func (f *fakeDP) AddACL(_ context.Context, r *pb.ACLRequest) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("AddACL", r)
}

func (f *fakeDP) DelACL(_ context.Context, r *pb.ACLRequest) (*pb.Empty, error) {
	return &pb.Empty{}, f.record("DelACL", r)
}

func TestBlklstWhtlstRequests(t *testing.T) {
	f, sock := startFake(t)
	k := &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.1", Port: 80}
	for _, c := range []struct {
		line, method string
		req          proto.Message
	}{
		{"--add-blklst -t 10.0.0.1:80 -k 192.168.1.7", "AddACL", &pb.ACLRequest{Service: k, List: "deny", Prefix: "192.168.1.7/32"}},
		{"-V -t 10.0.0.1:80 -k 192.168.1.0/24", "DelACL", &pb.ACLRequest{Service: k, List: "deny", Prefix: "192.168.1.0/24"}},
		{"-O -t 10.0.0.1:80 -2 172.16.0.0/12", "AddACL", &pb.ACLRequest{Service: k, List: "allow", Prefix: "172.16.0.0/12"}},
		{"--del-whtlst -t 10.0.0.1:80 --whtlst 172.16.0.0/12", "DelACL", &pb.ACLRequest{Service: k, List: "allow", Prefix: "172.16.0.0/12"}},
	} {
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
	// the dataplane's refusal is printed and fails the command
	f.reset()
	f.errs["AddACL"] = status.Error(codes.AlreadyExists, "deny list 192.168.1.7/32 of TCP 10.0.0.1:80: Entry already exists")
	if r := runCmd(t, sock, "", "-U -t 10.0.0.1:80 -k 192.168.1.7"); r.code == 0 || r.stderr == "" {
		t.Errorf("refused add: %+v", r)
	}
	// listings
	f.reset()
	f.services = []*pb.Service{
		{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.2", Port: 80}, Deny: []string{"10.9.0.0/16"}},
		{Key: k, Deny: []string{"192.168.1.7/32"}, Allow: []string{"172.16.0.0/12"}},
	}
	want := "PROTO    VIP:VPORT                      BLACKLIST                     \n" +
		"TCP      10.0.0.1:80                    192.168.1.7                   \n" +
		"TCP      10.0.0.2:80                    10.9.0.0/16                   \n"
	if r := runCmd(t, sock, "", "--get-blklst"); r.code != 0 || r.stdout != want {
		t.Errorf("--get-blklst: %+v\nwant %q", r, want)
	}
	want = "PROTO    VIP:VPORT                      WHITELIST                     \n" +
		"TCP      10.0.0.1:80                    172.16.0.0/12                 \n"
	if r := runCmd(t, sock, "", "-W -t 10.0.0.1:80"); r.code != 0 || r.stdout != want {
		t.Errorf("-W -t: %+v\nwant %q", r, want)
	}
}
