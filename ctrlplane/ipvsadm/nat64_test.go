package ipvsadm

import (
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// NAT64 services (an IPv6 virtual address, IPv4 FullNAT real servers and
// local addresses) on the command line and in the listings. Expected texts
// computed with ipvsadm 1.31's format strings, as in format_test.go.
const (
	nat64List = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  [2001:db8::1]:80 rr\n" +
		"  -> 10.0.1.2:80                  FullNat 1      3          1         \n" +
		"  -> 10.0.1.3:8080                FullNat 2      0          0         \n" +
		"UDP  [2001:db8::1]:53 rr\n" +
		"  -> 10.0.1.2:53                  FullNat 1      0          0         \n"
	nat64Saved = `-A -t [2001:db8::1]:80 -s rr
-a -t [2001:db8::1]:80 -r 10.0.1.2:80 -b -w 1
-a -t [2001:db8::1]:80 -r 10.0.1.3:8080 -b -w 2
-P -t [2001:db8::1]:80 -z 10.0.1.254 -F dpdk1
-A -u [2001:db8::1]:53 -s rr
-a -u [2001:db8::1]:53 -r 10.0.1.2:53 -b -w 1
`
	nat64LAddrs = "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n" +
		"[2001:db8::1]:80     1        \n                              10.0.1.254           0          5         \n"
)

func nat64Table() []*pb.Service {
	return []*pb.Service{
		{Key: key("UDP", "2001:db8::1", 53), Sched: "rr", Dests: []*pb.Dest{{Addr: "10.0.1.2", Port: 53, Weight: 1, Fwd: "FullNat"}}},
		{Key: key("TCP", "2001:db8::1", 80), Sched: "rr", Dests: []*pb.Dest{
			{Addr: "10.0.1.3", Port: 8080, Weight: 2, Fwd: "FullNat"},
			{Addr: "10.0.1.2", Port: 80, Weight: 1, Fwd: "FullNat", Active: 3, Inactive: 1},
		}, Laddrs: []*pb.LAddr{{Addr: "10.0.1.254", Dev: "dpdk1", Conns: 5}}},
	}
}

func TestNAT64Listing(t *testing.T) {
	if got := (Lister{Format: FmtNumeric}).ListAll(4096, nat64Table()); got != nat64List {
		t.Errorf("-L -n:\n%s\nwant:\n%s", got, nat64List)
	}
	saved := Lister{Format: FmtRule | FmtNumeric}.ListAll(4096, nat64Table())
	if saved != nat64Saved {
		t.Errorf("-S -n:\n%s\nwant:\n%s", saved, nat64Saved)
	}
	if got := LAddrs(nat64Table()[1:], false); got != nat64LAddrs {
		t.Errorf("-G:\n%q\nwant:\n%q", got, nat64LAddrs)
	}
	// what -S printed restores to the same table
	cmds, err := ParseRestore(strings.NewReader(saved), "ipvsadm", ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again := (Lister{Format: FmtRule | FmtNumeric}).ListAll(4096, apply(t, cmds)); again != saved {
		t.Errorf("restored:\n%s\nwant:\n%s", again, saved)
	}
}

// TestNAT64Parse: an IPv4 FullNAT server behind an IPv6 service is
// accepted (DPVS); direct routing across families and an IPv6 server
// behind an IPv4 service keep ipvsadm's refusal.
func TestNAT64Parse(t *testing.T) {
	for _, c := range []struct {
		args, err string
	}{
		{"-a -t [2001:db8::1]:80 -r 10.0.1.2:80 -b", ""},
		{"-P -t [2001:db8::1]:80 -z 10.0.1.254 -F dpdk1", ""},
		{"-a -t [2001:db8::1]:80 -r 10.0.1.2:80 -g", "Different address family is allowed only for tunneling servers"},
		{"-a -t 10.0.0.1:80 -r [2001:db8::a]:80 -b", "Different address family is allowed only for tunneling servers"},
	} {
		_, err := Parse(append([]string{"ipvsadm"}, strings.Fields(c.args)...), ParseOptions{})
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.args, err.Msg)
		case c.err != "" && (err == nil || !strings.Contains(err.Msg, c.err)):
			t.Errorf("%s: %v, want %q", c.args, err, c.err)
		}
	}
}
