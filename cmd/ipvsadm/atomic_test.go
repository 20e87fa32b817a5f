package main

// ipvsadm against the real dataplane (not the fake of main_test.go):
// refused commands print the dataplane's reason and change nothing — the
// saved rules (ipvsadm -S -n), the local addresses (-G) and the
// dataplane's addresses, routes and links are byte-identical afterwards.

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/prototext"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/apiserver"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
)

// startRealDP runs a dataplane on two mem ports with addresses for a
// FullNAT service, its API server on a temporary socket.
func startRealDP(t *testing.T) (string, *dpclient.Client) {
	t.Helper()
	p0 := mem.New(port.Config{Name: "dp0", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x10})
	p1 := mem.New(port.Config{Name: "dp1", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x11})
	d, err := dataplane.New(dataplane.Options{Workers: 1, Forward4: true}, []dataplane.PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "dp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterDataplaneServer(g, apiserver.New(d))
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	cl, err := dpclient.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	ctx := context.Background()
	for _, a := range []*pb.Addr{{Prefix: "10.1.0.1/24", Dev: "dp0"}, {Prefix: "10.1.0.100/32", Dev: "dp0"},
		{Prefix: "10.2.0.1/24", Dev: "dp1"}, {Prefix: "10.2.0.100/32", Dev: "dp1"}} {
		if _, err := cl.AddAddr(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return sock, cl
}

// state is everything listable: ipvsadm's saved rules and local
// addresses, and the dataplane's addresses, routes and links as the API
// returns them.
func state(t *testing.T, sock string, cl pb.DataplaneClient) string {
	t.Helper()
	var b strings.Builder
	for _, line := range []string{"-S -n", "-G"} {
		r := runCmd(t, sock, "", line)
		if r.code != 0 {
			t.Fatalf("ipvsadm %s: exit %d: %s", line, r.code, r.stderr)
		}
		b.WriteString("# ipvsadm " + line + "\n" + r.stdout)
	}
	ctx := context.Background()
	addrs, err1 := cl.ListAddrs(ctx, &pb.ListAddrsRequest{})
	routes, err2 := cl.ListRoutes(ctx, &pb.Empty{})
	links, err3 := cl.ListLinks(ctx, &pb.ListLinksRequest{})
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatal(err1, err2, err3)
	}
	for _, l := range links.Links {
		l.Stats = nil // traffic counters are not configuration
	}
	b.WriteString(prototext.Format(addrs) + prototext.Format(routes) + prototext.Format(links))
	return b.String()
}

func TestRefusedCommandsChangeNothing(t *testing.T) {
	sock, cl := startRealDP(t)
	for _, line := range []string{
		"-A -t 10.1.0.100:80 -s rr",
		"-a -t 10.1.0.100:80 -r 10.2.0.11:8080 -b -w 2",
		"--add-laddr -z 10.2.0.100 -t 10.1.0.100:80 -F dp1",
		"-A -u 10.1.0.100:53 -s sh --sched-flags sh-port",
	} {
		if r := runCmd(t, sock, "", line); r.code != 0 {
			t.Fatalf("ipvsadm %s: exit %d: %s", line, r.code, r.stderr)
		}
	}
	before := state(t, sock, cl)
	cases := []struct{ line, want string }{
		{"-A -t 10.1.0.100:80 -s wlc", "Service already exists"},
		{"-A -t 10.1.0.100:81 -s rr --sched-flags sh-port", "incompatible scheduler flag `sh-port'"},
		{"-A -t 10.1.0.100:81 -s sh --sched-flags sh-wild", "invalid scheduler flag `sh-wild'"},
		{"-E -t 10.1.0.100:80 -s fancy", "Scheduler or persistence engine not found"},
		{"-E -u 10.1.0.100:53 -s rr --sched-flags sh-port", "incompatible scheduler flag `sh-port'"},
		{"-D -t 10.1.0.100:99", "No such service"},
		{"-a -t 10.1.0.100:81 -r 10.2.0.12:8080 -b", "Service not defined"},
		{"-a -t 10.1.0.100:80 -r 10.2.0.11:8080 -b", "Destination already exists"},
		{"-a -t 10.1.0.100:80 -r 10.2.0.12:8080 -J", "SNAT (-J) is for match services (-H)"},
		{"-a -t 10.1.0.100:80 -r 10.2.0.12:8080 -b -w 70000", "weight"},
		{"-e -t 10.1.0.100:80 -r 10.2.0.99:8080 -b -w 3", "No such destination"},
		{"-d -t 10.1.0.100:80 -r 10.2.0.99:8080", "No such destination"},
		{"--add-laddr -z 10.2.0.200 -t 10.1.0.100:80 -F dp1", "local address 10.2.0.200 of TCP 10.1.0.100:80: not an address of the dataplane: add it first (dpip addr add 10.2.0.200/32 dev dp1)"},
		{"--add-laddr -z 10.1.0.1 -t 10.1.0.100:80 -F dp1", "local address 10.1.0.1 of TCP 10.1.0.100:80: the address is on dp0, not dp1"},
		{"--add-laddr -z 10.2.0.100 -t 10.1.0.100:80 -F dp1", "Local address already exists"},
		{"--add-laddr -z 10.2.0.100 -t 10.1.0.100:81 -F dp1", "No such service"},
		{"--del-laddr -z 10.2.0.1 -t 10.1.0.100:80 -F dp1", "No such local address"},
	}
	for _, c := range cases {
		r := runCmd(t, sock, "", c.line)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("ipvsadm %s: exit %d, stderr %q, want it to contain %q", c.line, r.code, r.stderr, c.want)
		}
		if after := state(t, sock, cl); after != before {
			t.Fatalf("ipvsadm %s changed the configuration:\nbefore:\n%s\nafter:\n%s", c.line, before, after)
		}
	}
	// the dataplane refuses to delete the local address while the service uses it
	ctx := context.Background()
	if _, err := cl.DelAddr(ctx, &pb.Addr{Prefix: "10.2.0.100", Dev: "dp1"}); err == nil ||
		!strings.Contains(err.Error(), "ipvsadm --del-laddr -z 10.2.0.100 -t 10.1.0.100:80 -F dp1") {
		t.Errorf("deleting a local address in use: %v", err)
	}
	if after := state(t, sock, cl); after != before {
		t.Fatalf("refused address delete changed the configuration:\n%s", after)
	}
	// after the named fix it goes
	if r := runCmd(t, sock, "", "--del-laddr -z 10.2.0.100 -t 10.1.0.100:80 -F dp1"); r.code != 0 {
		t.Fatalf("--del-laddr: %s", r.stderr)
	}
	if _, err := cl.DelAddr(ctx, &pb.Addr{Prefix: "10.2.0.100", Dev: "dp1"}); err != nil {
		t.Errorf("delete after the local address was removed: %v", err)
	}
}
