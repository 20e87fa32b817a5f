package main

// Refused control calls change nothing: every bad dpip command and every
// bad API call below runs against a real dataplane behind its real API
// server, must fail naming its object, and must leave the full listings —
// dpip addr/route/vlan show, ipvsadm -S -n and ipvsadm -G — byte-identical.

import (
	"context"
	"strings"
	"testing"
	"time"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/gvs-lb/gvs/ctrlplane/ipvsadm"
)

// listings is everything an operator can see of the configuration.
func listings(t *testing.T, sock string, cl pb.DataplaneClient) string {
	t.Helper()
	var b strings.Builder
	for _, line := range []string{"addr show", "route show", "vlan show"} {
		b.WriteString("# dpip " + line + "\n" + mustDpip(t, sock, line))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cl.ListServices(ctx, &pb.ListServicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("# ipvsadm -S -n\n" + ipvsadm.Lister{Format: ipvsadm.FmtNumeric | ipvsadm.FmtRule}.ListAll(0, r.GetServices()))
	b.WriteString("# ipvsadm -G\n" + ipvsadm.LAddrs(ipvsadm.SortServices(r.GetServices()), false))
	return b.String()
}

func apiClient(t *testing.T, sock string) *dpclient.Client {
	t.Helper()
	c, err := dpclient.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tcp(addr string, port uint32) *pb.ServiceKey {
	return &pb.ServiceKey{Proto: "TCP", Addr: addr, Port: port}
}

// setupInUse builds a configuration whose objects use each other: VIP and
// local addresses on interfaces, a static route through a connected
// subnet, a route with a source address, a VLAN with a service's local
// address, and the static route of the sequence.
func setupInUse(t *testing.T, sock string, cl pb.DataplaneClient) {
	t.Helper()
	for _, line := range []string{
		"addr add 10.1.0.1/24 dev dp0",
		"addr add 10.1.0.100/32 dev dp0",
		"addr add fd00:1::1/64 dev dp0",
		"addr add 10.2.0.1/24 dev dp1",
		"addr add 10.2.0.100/32 dev dp1",
		"route add 10.3.0.0/16 via 10.2.0.254",
		"route add 10.6.0.0/16 dev dp0 src 10.1.0.1",
		"vlan add dp0.100 link dp0 id 100",
		"addr add 10.100.0.1/24 dev dp0.100",
		"addr add 10.100.0.100/32 dev dp0.100",
		"route add 10.9.0.0/24 dev dp0",
	} {
		mustDpip(t, sock, line)
	}
	ctx := context.Background()
	udp := &pb.ServiceKey{Proto: "UDP", Addr: "10.1.0.100", Port: 53}
	for _, err := range []error{
		second(cl.AddService(ctx, &pb.Service{Key: tcp("10.1.0.100", 80), Sched: "rr"})),
		second(cl.AddDest(ctx, &pb.DestRequest{Service: tcp("10.1.0.100", 80), Dest: &pb.Dest{Addr: "10.2.0.11", Port: 8080, Weight: 1, Fwd: "FullNat"}})),
		second(cl.AddLAddr(ctx, &pb.LAddrRequest{Service: tcp("10.1.0.100", 80), Laddr: &pb.LAddr{Addr: "10.2.0.100", Dev: "dp1"}})),
		second(cl.AddService(ctx, &pb.Service{Key: udp, Sched: "wlc"})),
		second(cl.AddLAddr(ctx, &pb.LAddrRequest{Service: udp, Laddr: &pb.LAddr{Addr: "10.100.0.100", Dev: "dp0.100"}})),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestRefusedCallsChangeNothing(t *testing.T) {
	sock := startDP(t)
	cl := apiClient(t, sock)
	setupInUse(t, sock, cl)
	before := listings(t, sock, cl)

	dpipCases := []struct{ line, want string }{
		// the sequence: the route exists, the address would add the same connected route
		{"addr add 10.9.0.1/24 dev dp0", "addr 10.9.0.1/24 dev dp0: its subnet's connected route would duplicate the static route 10.9.0.0/24: delete the route first (dpip route del 10.9.0.0/24)"},
		{"addr add 10.1.0.1/24 dev dp1", "addr 10.1.0.1: already on dp0"},
		{"addr add 10.1.0.1/16 dev dp0", "addr 10.1.0.1: already on dp0"},
		{"addr add 10.9.0.1/33 dev dp0", `addr "10.9.0.1/33": prefix length "33"`},
		{"addr add 10.9.0.1/24 dev dp7", "addr 10.9.0.1/24 dev dp7: interface not found"},
		{"vlan add dp0.200 link dp0 id 100", "vlan dp0.200: id 100 on dp0 is already dp0.100"},
		{"vlan add dp0.100 link dp1 id 7", "vlan dp0.100: interface already exists"},
		{"vlan add dp9.1 link dp9 id 1", "vlan dp9.1: port dp9 not found"},
		{"route add 10.5.0.0/16 via 10.7.0.1", "route 10.5.0.0/16 via 10.7.0.1: gateway is not on a connected subnet"},
		{"route add 10.5.0.0/16 via 10.2.0.254 dev dp0", "route 10.5.0.0/16 via 10.2.0.254: gateway is not on a connected subnet of dp0"},
		{"route add 10.9.0.0/24 dev dp1", "route 10.9.0.0/24 metric 0: already exists"},
		{"route add 10.1.0.0/24 dev dp0", "route 10.1.0.0/24 metric 0: is the connected route of dp0's address"},
		{"route del 10.7.0.0/16", "route 10.7.0.0/16: not found"},
		// deleting what others use
		{"addr del 10.2.0.100 dev dp1", "addr 10.2.0.100 dev dp1: in use as the local address of service TCP 10.1.0.100:80: remove that first (ipvsadm --del-laddr -z 10.2.0.100 -t 10.1.0.100:80 -F dp1) or add force"},
		{"addr del 10.1.0.100 dev dp0", "addr 10.1.0.100 dev dp0: in use as the virtual address of service TCP 10.1.0.100:80 (and 1 more user(s)): remove that first (ipvsadm -D -t 10.1.0.100:80)"},
		{"addr del 10.2.0.1/24 dev dp1", "addr 10.2.0.1 dev dp1: in use as the only subnet reaching the gateway of route 10.3.0.0/16 via 10.2.0.254: remove that first (dpip route del 10.3.0.0/16)"},
		{"addr del 10.1.0.1/24 dev dp0", "addr 10.1.0.1 dev dp0: in use as the source of route 10.6.0.0/16: remove that first (dpip route del 10.6.0.0/16)"},
		{"vlan del dp0.100", "vlan dp0.100: in use as the local address of service UDP 10.1.0.100:53: remove that first (ipvsadm --del-laddr -z 10.100.0.100 -u 10.1.0.100:53 -F dp0.100)"},
		{"addr del 10.1.0.9 dev dp0", "addr 10.1.0.9 dev dp0: address not found"},
		// zones: the zone is the interface; refused unless it is the dev given
		{"addr add fe80::1%dp0/64 dev dp1", `addr fe80::1%dp0/64: zone %dp0 differs from dev "dp1"`},
		{"addr add fd00:9::1%dp0/64 dev dp0", "addr fd00:9::1%dp0/64: zone %dp0 on an address that is not link-local"},
		{"addr add 10.9.9.1%dp0/24 dev dp0", `addr "10.9.9.1%dp0/24": not an address`},
		{"route add fe80::%dp0/64 dev dp0", `route "fe80::%dp0/64": destination a prefix has no zone`},
		{"route add fd00:5::/64 via fd00:1::fe%dp0", "route fd00:5::/64 via fd00:1::fe%dp0: zone %dp0 on an address that is not link-local"},
		{"route add fd00:5::/64 via fe80::fe%dp1 dev dp0", `route fd00:5::/64 via fe80::fe%dp1: zone %dp1 differs from dev "dp0"`},
	}
	for _, c := range dpipCases {
		out, err := dpip(t, sock, c.line)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dpip %s: err %v (out %q), want it to contain %q", c.line, err, out, c.want)
		}
		if after := listings(t, sock, cl); after != before {
			t.Fatalf("dpip %s changed the configuration:\nbefore:\n%s\nafter:\n%s", c.line, before, after)
		}
	}

	ctx := context.Background()
	k80 := tcp("10.1.0.100", 80)
	apiCases := []struct {
		name string
		call func() error
		want string
	}{
		{"duplicate service", func() error { return second(cl.AddService(ctx, &pb.Service{Key: k80, Sched: "wlc"})) },
			"service TCP 10.1.0.100:80: Service already exists"},
		{"bad scheduler flags", func() error {
			return second(cl.AddService(ctx, &pb.Service{Key: tcp("10.1.0.100", 81), Sched: "rr", SchedFlags: []string{"sh-port"}}))
		}, "service TCP 10.1.0.100:81: incompatible scheduler flag `sh-port' for scheduler rr"},
		{"unknown scheduler on edit", func() error { return second(cl.EditService(ctx, &pb.Service{Key: k80, Sched: "fancy"})) },
			"service TCP 10.1.0.100:80"},
		{"dest to missing service", func() error {
			return second(cl.AddDest(ctx, &pb.DestRequest{Service: tcp("10.1.0.100", 81), Dest: &pb.Dest{Addr: "10.2.0.12", Port: 80, Weight: 1}}))
		}, "destination 10.2.0.12:80 of TCP 10.1.0.100:81: Service not defined"},
		{"duplicate dest", func() error {
			return second(cl.AddDest(ctx, &pb.DestRequest{Service: k80, Dest: &pb.Dest{Addr: "10.2.0.11", Port: 8080, Weight: 3}}))
		}, "destination 10.2.0.11:8080 of TCP 10.1.0.100:80: Destination already exists"},
		{"dest with a zone", func() error {
			return second(cl.AddDest(ctx, &pb.DestRequest{Service: &pb.ServiceKey{Proto: "TCP", Addr: "fd00:1::100", Port: 80},
				Dest: &pb.Dest{Addr: "fe80::2%dp1", Port: 80, Weight: 1}}))
		}, "destination [fe80::2%dp1]:80 of TCP [fd00:1::100]:80"},
		{"laddr not on the dataplane", func() error {
			return second(cl.AddLAddr(ctx, &pb.LAddrRequest{Service: k80, Laddr: &pb.LAddr{Addr: "10.2.0.200", Dev: "dp1"}}))
		}, "local address 10.2.0.200 of TCP 10.1.0.100:80: not an address of the dataplane: add it first (dpip addr add 10.2.0.200/32 dev dp1)"},
		{"laddr on another dev", func() error {
			return second(cl.AddLAddr(ctx, &pb.LAddrRequest{Service: k80, Laddr: &pb.LAddr{Addr: "10.1.0.1", Dev: "dp1"}}))
		}, "local address 10.1.0.1 of TCP 10.1.0.100:80: the address is on dp0, not dp1"},
		{"duplicate laddr", func() error {
			return second(cl.AddLAddr(ctx, &pb.LAddrRequest{Service: k80, Laddr: &pb.LAddr{Addr: "10.2.0.100", Dev: "dp1"}}))
		}, "local address 10.2.0.100 of TCP 10.1.0.100:80: Local address already exists"},
		{"del missing dest", func() error {
			return second(cl.DelDest(ctx, &pb.DestRequest{Service: k80, Dest: &pb.Dest{Addr: "10.2.0.99", Port: 8080}}))
		}, "destination 10.2.0.99:8080 of TCP 10.1.0.100:80: No such destination"},
		{"del vlan in use", func() error { return second(cl.DelVLAN(ctx, &pb.VLAN{Name: "dp0.100"})) },
			"vlan dp0.100: in use as the local address of service UDP 10.1.0.100:53"},
		{"addr with zone of another dev", func() error {
			return second(cl.AddAddr(ctx, &pb.Addr{Prefix: "fe80::1%dp1/64", Dev: "dp0"}))
		}, `zone %dp1 differs from dev "dp0"`},
		{"vlan id 0", func() error { return second(cl.AddVLAN(ctx, &pb.VLAN{Name: "dp1.0", Port: "dp1", Id: 0})) },
			"vlan dp1.0: id 0 out of range: use 1-4094"},
	}
	for _, c := range apiCases {
		err := c.call()
		if err == nil || !strings.Contains(dpclient.Message(err).Error(), c.want) {
			t.Errorf("API %s: err %v, want it to contain %q", c.name, err, c.want)
		}
		if after := listings(t, sock, cl); after != before {
			t.Fatalf("API %s changed the configuration:\nbefore:\n%s\nafter:\n%s", c.name, before, after)
		}
	}

	// nothing half-added blocks later, unrelated calls
	mustDpip(t, sock, "addr add 10.8.0.1/24 dev dp0")
	mustDpip(t, sock, "vlan add dp1.200 link dp1 id 200")
	mustDpip(t, sock, "addr add 10.200.0.1/24 dev dp1.200")
	// and the address goes in once its route is gone
	mustDpip(t, sock, "route del 10.9.0.0/24")
	mustDpip(t, sock, "addr add 10.9.0.1/24 dev dp0")
	got := mustDpip(t, sock, "addr show")
	for _, want := range []string{"inet 10.8.0.1/24 scope global dp0\n", "inet 10.200.0.1/24 scope global dp1.200\n", "inet 10.9.0.1/24 scope global dp0\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("addr show lacks %q:\n%s", want, got)
		}
	}
}

// A link-local address given with its own interface as the zone is stored
// as given — the same address and prefix length on that interface — never
// as a different one (the zone used to swallow "/64" and leave a /128).
func TestZonedAddrKeepsAddress(t *testing.T) {
	sock := startDP(t)
	mustDpip(t, sock, "addr add fe80::1%dp0/64 dev dp0")
	mustDpip(t, sock, "addr add fe80::2%dp1 dev dp1")
	got := mustDpip(t, sock, "-6 addr show")
	want := "inet6 fe80::1/64 scope global dp0\n     valid_lft forever preferred_lft forever\n" +
		"inet6 fe80::2/128 scope global dp1\n     valid_lft forever preferred_lft forever\n"
	if got != want {
		t.Errorf("addr show:\n%s\nwant:\n%s", got, want)
	}
	mustDpip(t, sock, "addr del fe80::1%dp0 dev dp0")
	if got := mustDpip(t, sock, "-6 addr show dev dp0"); got != "" {
		t.Errorf("zoned delete left %q", got)
	}
}

// force deletes what is in use: dependent static routes go with the
// address (as the kernel does), services keep their addresses.
func TestForceDelete(t *testing.T) {
	sock := startDP(t)
	cl := apiClient(t, sock)
	setupInUse(t, sock, cl)
	mustDpip(t, sock, "addr del 10.2.0.1/24 dev dp1 force")
	if got := mustDpip(t, sock, "route show"); strings.Contains(got, "10.3.0.0/16") || strings.Contains(got, "10.2.0.0/24") {
		t.Errorf("route through the deleted subnet remains:\n%s", got)
	}
	mustDpip(t, sock, "addr del 10.2.0.100 dev dp1 --force")
	mustDpip(t, sock, "vlan del dp0.100 force")
	_, svcs, _ := strings.Cut(listings(t, sock, cl), "# ipvsadm -S -n\n")
	if !strings.Contains(svcs, "10.2.0.100") || !strings.Contains(svcs, "10.100.0.100") || !strings.Contains(svcs, "-t 10.1.0.100:80") {
		t.Errorf("force deletes changed the services:\n%s", svcs)
	}
	if got := mustDpip(t, sock, "addr show"); strings.Contains(got, "10.2.0.100") || strings.Contains(got, "dp0.100") {
		t.Errorf("force-deleted addresses listed:\n%s", got)
	}
}
