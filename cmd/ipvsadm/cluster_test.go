package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// GVS's cluster options: --mid-flow on -A/-E, --backup on -P; refused on
// other commands as ipvsadm refuses an option a command does not take.
func TestClusterOptions(t *testing.T) {
	f, sock := startFake(t)
	k := &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.1", Port: 80}
	for _, c := range []struct {
		line   string
		method string
		req    proto.Message
	}{
		{"-A -t 10.0.0.1:80 -s mh --mid-flow", "AddService", &pb.Service{Key: k, Sched: "mh", MidFlow: true}},
		{"-E -t 10.0.0.1:80 -s mh --sched-flags mh-port --mid-flow", "EditService", &pb.Service{Key: k, Sched: "mh", SchedFlags: []string{"mh-port"}, MidFlow: true}},
		{"-P -t 10.0.0.1:80 -z 10.0.0.201 -F dp1 --backup", "AddLAddr", &pb.LAddrRequest{Service: k, Laddr: &pb.LAddr{Addr: "10.0.0.201", Dev: "dp1", Backup: true}}},
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
	for _, c := range []struct{ line, want string }{
		{"-Q -t 10.0.0.1:80 -z 10.0.0.201 -F dp1 --backup", "Illegal 'backup' option with the 'del-laddr' command"},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -b --mid-flow", "Illegal 'mid-flow' option with the 'add-server' command"},
		{"-A -t 10.0.0.1:80 -s mh --mid-flw", "unknown option"},
	} {
		f.reset()
		r := runCmd(t, sock, "", c.line)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || len(f.calls) != 0 {
			t.Errorf("%s: %+v (calls %v), want a refusal with %q", c.line, r, f.calls, c.want)
		}
	}
	// listed and saved: -L shows the option, -S writes it back, -G marks a backup address
	f.reset()
	f.services = []*pb.Service{{Key: k, Sched: "mh", MidFlow: true,
		Laddrs: []*pb.LAddr{{Addr: "10.0.0.200", Dev: "dp1"}, {Addr: "10.0.0.201", Dev: "dp1", Backup: true}}}}
	if r := runCmd(t, sock, "", "-L -n"); !strings.Contains(r.stdout, "TCP  10.0.0.1:80 mh mid-flow\n") {
		t.Errorf("-L -n:\n%s", r.stdout)
	}
	if r := runCmd(t, sock, "", "-S -n"); !strings.Contains(r.stdout, "-A -t 10.0.0.1:80 -s mh --mid-flow\n") {
		t.Errorf("-S -n:\n%s", r.stdout)
	}
	r := runCmd(t, sock, "", "-G")
	if !strings.Contains(r.stdout, "10.0.0.201           0          0          backup\n") || strings.Contains(r.stdout, "10.0.0.200           0          0          backup") {
		t.Errorf("-G:\n%s", r.stdout)
	}
}
