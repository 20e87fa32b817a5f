package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/apiserver"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
)

// startDP runs a dataplane on two mem ports with its API on a temporary
// socket: dpip talks to the real server code.
func startDP(t *testing.T) string {
	p0 := mem.New(port.Config{Name: "dp0", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x10})
	p1 := mem.New(port.Config{Name: "dp1", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x11})
	d, err := dataplane.New(dataplane.Options{Workers: 1, Forward4: true}, []dataplane.PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "dp.sock")
	g, err := apiserver.New(d).Listen(sock, apiserver.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop(); d.Stop() })
	return sock
}

// dpip runs one dpip command line and returns its output and error.
func dpip(t *testing.T, sock string, line string) (string, error) {
	var out bytes.Buffer
	a := &app{out: &out}
	root := newRoot(a)
	root.SetArgs(append([]string{"-S", sock}, strings.Fields(line)...))
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	if a.client != nil {
		a.client.Close()
	}
	return out.String(), err
}

func mustDpip(t *testing.T, sock, line string) string {
	t.Helper()
	out, err := dpip(t, sock, line)
	if err != nil {
		t.Fatalf("dpip %s: %v\n%s", line, err, out)
	}
	return out
}

func TestAddrRouteNeighVLAN(t *testing.T) {
	sock := startDP(t)
	mustDpip(t, sock, "addr add 10.1.0.1/24 dev dp0")
	mustDpip(t, sock, "addr add 10.0.0.100 dev dp0") // bare address: a /32
	mustDpip(t, sock, "addr add fd00:1::1/64 dev dp0")
	mustDpip(t, sock, "addr add 10.2.0.1/24 dev dp1")
	got := mustDpip(t, sock, "addr show")
	want := `inet 10.1.0.1/24 scope global dp0
     valid_lft forever preferred_lft forever
inet 10.0.0.100/32 scope global dp0
     valid_lft forever preferred_lft forever
inet6 fd00:1::1/64 scope global dp0
     valid_lft forever preferred_lft forever
inet 10.2.0.1/24 scope global dp1
     valid_lft forever preferred_lft forever
`
	if got != want {
		t.Errorf("addr show:\n%s\nwant:\n%s", got, want)
	}
	if got := mustDpip(t, sock, "-6 addr show"); !strings.HasPrefix(got, "inet6 fd00:1::1/64") || strings.Count(got, "inet") != 1 {
		t.Errorf("-6 addr show:\n%s", got)
	}
	mustDpip(t, sock, "route add 10.3.0.0/16 via 10.2.0.254 dev dp1")
	mustDpip(t, sock, "route add default via 10.1.0.254")
	got = mustDpip(t, sock, "-4 route show")
	want = `inet 0.0.0.0/0 via 10.1.0.254 src 0.0.0.0 dev dp0 scope global metric 0 proto static
inet 10.1.0.0/24 via 0.0.0.0 src 10.1.0.1 dev dp0 scope link metric 0 proto auto
inet 10.2.0.0/24 via 0.0.0.0 src 10.2.0.1 dev dp1 scope link metric 0 proto auto
inet 10.3.0.0/16 via 10.2.0.254 src 0.0.0.0 dev dp1 scope global metric 0 proto static
`
	if got != want {
		t.Errorf("route show:\n%s\nwant:\n%s", got, want)
	}
	mustDpip(t, sock, "route del 10.3.0.0/16")
	if got := mustDpip(t, sock, "route show"); strings.Contains(got, "10.3.0.0") {
		t.Errorf("deleted route still listed:\n%s", got)
	}
	mustDpip(t, sock, "neigh add 10.2.0.11 lladdr 02:00:00:00:00:21 dev dp1")
	got = mustDpip(t, sock, "neigh show")
	if !strings.Contains(got, "ip: 10.2.0.11") || !strings.Contains(got, "mac: 02:00:00:00:00:21") || !strings.Contains(got, "state: PERMANENT") {
		t.Errorf("neigh show:\n%s", got)
	}
	mustDpip(t, sock, "neigh del 10.2.0.11")
	mustDpip(t, sock, "vlan add dp0.100 link dp0 id 100")
	mustDpip(t, sock, "addr add 10.100.0.1/24 dev dp0.100")
	if got := mustDpip(t, sock, "vlan show"); got != "dp0.100 link dp0 id 100\n" {
		t.Errorf("vlan show: %q", got)
	}
	got = mustDpip(t, sock, "link show dp0.100")
	if !strings.HasPrefix(got, "3: dp0.100: link dp0 vlan-id 100 mtu 1500\n") {
		t.Errorf("link show dp0.100:\n%s", got)
	}
	mustDpip(t, sock, "vlan del dp0.100")
	if got := mustDpip(t, sock, "addr show dev dp0.100"); got != "" {
		t.Errorf("addresses of a deleted vlan remain: %q", got)
	}
}

func TestErrorsNameObjectAndFix(t *testing.T) {
	sock := startDP(t)
	mustDpip(t, sock, "addr add 10.1.0.1/24 dev dp0")
	cases := []struct{ line, want string }{
		{"addr add 10.1.0.1/24 dev dp0", "addr 10.1.0.1: already on dp0"},
		{"addr add 10.9.0.1/24 dev dp7", "addr 10.9.0.1/24 dev dp7: interface not found"},
		{"addr add 10.9.0.300/24 dev dp0", `addr "10.9.0.300/24": not an address`},
		{"addr del 10.1.0.9 dev dp0", "address not found"},
		{"addr add 10.9.0.1/24", "usage: dpip addr add ADDR[/LEN] dev DEV"},
		{"addr add 10.9.0.1/24 dve dp0", `unknown argument "dve"`},
		{"route add 10.3.0.0/16 via 10.7.0.1", "gateway is not on a connected subnet: add an address in its subnet first"},
		{"route add 10.3.0.0/16", "give a gateway (via) or an interface (dev)"},
		{"route del 10.3.0.0/16", "route 10.3.0.0/16: not found"},
		{"route add 10.3.0.0/16 via 10.1.0.9 metric x", `metric "x" is not a number`},
		{"neigh add 10.1.0.9 lladdr 01:00:5e:00:00:01 dev dp0", "need a unicast address and MAC"},
		{"neigh add 10.1.0.9 lladdr zz dev dp0", "not a MAC address"},
		{"vlan add v1 link dp0 id 5000", "use 1-4094"},
		{"vlan add v1 link dp9 id 10", "port dp9 not found: name an existing port"},
		{"link show dp9", "link dp9: no such device"},
	}
	for _, c := range cases {
		out, err := dpip(t, sock, c.line)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dpip %s: err %v (out %q), want it to contain %q", c.line, err, out, c.want)
		}
	}
	// nothing half-applied
	if got := mustDpip(t, sock, "addr show"); strings.Count(got, "inet") != 1 {
		t.Errorf("state changed by refused commands:\n%s", got)
	}
}

func TestStatsAndJSON(t *testing.T) {
	sock := startDP(t)
	got := mustDpip(t, sock, "-s link show dp0")
	want := `1: dp0: driver mem mtu 1500 rx-queue 1 tx-queue 1
    UP
    addr 02:00:00:00:00:10
    ipackets            opackets            ibytes              obytes              
    0                   0                   0                   0                   
    ierrors             oerrors             imissed             odropped            
    0                   0                   0                   0                   
`
	if got != want {
		t.Errorf("-s link show:\n%q\nwant:\n%q", got, want)
	}
	var links []map[string]any
	if err := json.Unmarshal([]byte(mustDpip(t, sock, "--json link show")), &links); err != nil || len(links) != 2 {
		t.Fatalf("--json link show: %v %v", links, err)
	}
	if links[1]["name"] != "dp1" || links[1]["mac"] != "02:00:00:00:00:11" {
		t.Errorf("json link = %v", links[1])
	}
	var workers []map[string]any
	if err := json.Unmarshal([]byte(mustDpip(t, sock, "--json worker show")), &workers); err != nil || len(workers) != 1 {
		t.Fatalf("--json worker show: %v", err)
	}
	got = mustDpip(t, sock, "-s worker show")
	if !strings.Contains(got, "drop_ipv4_bad_checksum") || !strings.Contains(got, "lb_evicted_embryonic") {
		t.Errorf("-s worker show lacks the drop or eviction counters:\n%s", got)
	}
	if !regexp.MustCompile(`\n    connections 0 of [1-9][0-9]* high-water [1-9][0-9]*\n`).MatchString(got) {
		t.Errorf("-s worker show lacks the connection table line:\n%s", got)
	}
}

func TestUnreachableSocket(t *testing.T) {
	_, err := dpip(t, filepath.Join(t.TempDir(), "none.sock"), "link show")
	if err == nil || !strings.Contains(err.Error(), "is it running?") {
		t.Errorf("err = %v", err)
	}
}

// TestFlow: dpip flow answers from the running dataplane's scheduler, and
// names the missing service.
func TestFlow(t *testing.T) {
	sock := startDP(t)
	mustDpip(t, sock, "addr add 10.1.0.100/32 dev dp0")
	mustDpip(t, sock, "addr add 10.2.0.1/24 dev dp1")
	mustDpip(t, sock, "addr add 10.2.0.100/32 dev dp1")
	cl := apiClient(t, sock)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k := &pb.ServiceKey{Proto: "TCP", Addr: "10.1.0.100", Port: 80}
	for _, err := range []error{
		second(cl.AddService(ctx, &pb.Service{Key: k, Sched: "mh"})),
		second(cl.AddDest(ctx, &pb.DestRequest{Service: k, Dest: &pb.Dest{Addr: "10.2.0.11", Port: 8080, Weight: 1, Fwd: "FullNat"}})),
		second(cl.AddLAddr(ctx, &pb.LAddrRequest{Service: k, Laddr: &pb.LAddr{Addr: "10.2.0.100", Dev: "dp1"}})),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	out := mustDpip(t, sock, "flow tcp 10.1.0.2:40000 10.1.0.100:80")
	if !strings.Contains(out, "service TCP 10.1.0.100:80 scheduler mh") ||
		!strings.Contains(out, "no connection: a new one goes to real server 10.2.0.11:8080, from local address 10.2.0.100") {
		t.Errorf("dpip flow:\n%s", out)
	}
	if out, err := dpip(t, sock, "flow udp 10.1.0.2:40000 10.1.0.100:53"); err == nil || !strings.Contains(out+err.Error(), "10.1.0.100:53") {
		t.Errorf("a flow to no service: %v %s", err, out)
	}
}
