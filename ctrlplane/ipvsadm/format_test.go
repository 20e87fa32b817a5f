package ipvsadm

import (
	"net/netip"
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// The expected texts below were computed apart from this package, with a
// C-style printf (Python's %) over ipvsadm 1.31's format strings, and
// pasted here.
var golden = map[string]string{
	"listAllNumeric":  "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  192.168.1.1:443 wlc (flag-1,flag-3) persistent 300 synproxy conn-timeout 90\n  -> 10.1.0.2:443                 FullNat 1      7          2         \n  -> 10.1.0.10:8443               FullNat 0      0          0         \nTCP  10.0.0.1:80 rr\n  -> 192.168.0.1:8080             Masq    2      0          0         \n  -> 192.168.0.2:80               FullNat 1      3          1         \n  -> 192.168.0.2:81               FullNat 1      0          12        \nUDP  10.0.0.1:53 sh (sh-fallback,sh-port)\nTCP  [2001:db8::1]:80 mh (mh-port)\n  -> [2001:db8::a]:80             FullNat 65535  4294967296 0         \n  -> [2001:db8:1::2]:8080         FullNat 3      0          0         \n",
	"listNoSortFirst": "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  10.0.0.1:80 rr\n  -> 192.168.0.2:80               FullNat 1      3          1         \n  -> 192.168.0.1:8080             Masq    2      0          0         \n  -> 192.168.0.2:81               FullNat 1      0          12        \n",
	"stats":           "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\nTCP  10.0.0.1:80                  99999999  100000K  999999K    1000M   99999M\n  -> 192.168.0.1:80                   100G   99999G     100T18446744T        0\n",
	"statsExact":      "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\nTCP  10.0.0.1:80                  99999999 100000000 999999999 1000000000 99999999999\n  -> 192.168.0.1:80               100000000000 99999999999999 100000000000000 18446744073709551615        0\n",
	"thresholds":      "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  -> RemoteAddress:Port\nTCP  10.0.0.1:80 rr\n  -> 192.168.0.1:80               1000       10         5          6         \n",
	"tunInfo":         "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\nTCP  10.0.0.1:80 rr\n  -> 192.168.0.1:80               FullNat n/a           1      0          0         \n  -> 192.168.0.3:80               Tunnel  ipip          1      0          0         \n",
	"names":           "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  a-very-long-virtual-host-nam rr\n  -> a-long-real-server-name.exam FullNat 1      0          0         \nTCP  [v6-host-with-a-long-name.example.net]:https rr\n  -> [real-six.example.net]:https FullNat 1      0          0         \n",
	"listService":     "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  10.0.0.1:80 rr\n  -> 192.168.0.2:80               FullNat 1      3          1         \n",
	"empty":           "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
	"conns":           "IPVS connection entries\npro expire state       source             virtual            destination\nTCP 14:59  ESTABLISHED 169.60.24.86:52470 169.46.7.238:27234 169.48.180.244:27234\nUDP 00:05  NONE        [2001:db8::5]:0    [2001:db8::1]:53   [2001:db8::a]:53\nTCP 120:00 SYN_RECV    1.2.3.4:1          5.6.7.8:2          9.9.9.9:3\n",
	"connsLocal":      "IPVS connection entries\npro expire state       source             virtual            local              destination\nTCP 01:30  ESTABLISHED 203.0.113.9:40000  10.0.0.1:80        10.0.0.200:1025    192.168.0.2:80\nTCP 00:00  TIME_WAIT   203.0.113.9:40001  10.0.0.1:80        -                  192.168.0.2:80\n",
	"laddrsAll":       "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n10.0.0.1:80          2        \n                              10.0.0.200           7          1234      \n                              10.0.0.201           0          0         \n[2001:db8::1]:443    1        \n                              2001:db8::200        0          0         \n",
	// hand-computed: "%-33s" then " %8s" per column (K above 99999999)
	"rate": "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n" +
		"  -> RemoteAddress:Port\n" +
		"TCP  10.0.0.1:80                        12     3400     3100  2500000  120000K\n" +
		"  -> 192.168.0.1:80                     12     3400     3100  2500000  120000K\n",
	"laddrsOne": "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n10.0.0.1:80          0        \n",
}

func key(proto, addr string, port uint32) *pb.ServiceKey {
	return &pb.ServiceKey{Proto: proto, Addr: addr, Port: port}
}

// table is the API's answer for the listing tests, in an order that is
// not ipvsadm's.
func table() []*pb.Service {
	return []*pb.Service{
		{Key: key("TCP", "10.0.0.1", 80), Sched: "rr", Dests: []*pb.Dest{
			{Addr: "192.168.0.2", Port: 80, Weight: 1, Fwd: "FullNat", Active: 3, Inactive: 1},
			{Addr: "192.168.0.1", Port: 8080, Weight: 2, Fwd: "Masq"},
			{Addr: "192.168.0.2", Port: 81, Weight: 1, Fwd: "FullNat", Inactive: 12},
		}},
		{Key: key("TCP", "2001:db8::1", 80), Sched: "mh", SchedFlags: []string{"flag-2"}, Dests: []*pb.Dest{
			{Addr: "2001:db8:1::2", Port: 8080, Weight: 3, Fwd: "FullNat"},
			{Addr: "2001:db8::a", Port: 80, Weight: 65535, Fwd: "FullNat", Active: 1 << 32},
		}},
		{Key: key("UDP", "10.0.0.1", 53), Sched: "sh", SchedFlags: []string{"sh-fallback", "sh-port"}},
		{Key: key("TCP", "192.168.1.1", 443), Sched: "wlc", SchedFlags: []string{"flag-3", "flag-1"},
			Persistent: true, PersistentTimeout: 300, Synproxy: true, ConnTimeout: 90, Dests: []*pb.Dest{
				{Addr: "10.1.0.10", Port: 8443, Weight: 0, Fwd: "FullNat"},
				{Addr: "10.1.0.2", Port: 443, Weight: 1, Fwd: "FullNat", Active: 7, Inactive: 2},
			}},
	}
}

func check(t *testing.T, name, got string) {
	t.Helper()
	want, ok := golden[name]
	if !ok {
		t.Fatalf("no golden text %q", name)
	}
	if got != want {
		t.Errorf("%s:\ngot:\n%s\nwant:\n%s\ngot  %q\nwant %q", name, got, want, got, want)
	}
}

func TestListAllNumericSorted(t *testing.T) {
	check(t, "listAllNumeric", Lister{Format: FmtNumeric}.ListAll(4096, table()))
}

func TestListNoSort(t *testing.T) {
	got := Lister{Format: FmtNumeric | FmtNoSort}.ListAll(4096, table()[:1])
	check(t, "listNoSortFirst", got)
}

func TestListEmpty(t *testing.T) {
	check(t, "empty", Lister{Format: FmtNumeric}.ListAll(DefaultConnTabSize, nil))
}

func TestListService(t *testing.T) {
	svc := &pb.Service{Key: key("TCP", "10.0.0.1", 80), Sched: "rr", Dests: []*pb.Dest{
		{Addr: "192.168.0.2", Port: 80, Weight: 1, Fwd: "FullNat", Active: 3, Inactive: 1},
	}}
	check(t, "listService", Lister{Format: FmtNumeric}.ListService(svc))
}

func statsFixture() []*pb.Service {
	return []*pb.Service{{Key: key("TCP", "10.0.0.1", 80), Sched: "rr",
		Stats: &pb.ServiceStats{Conns: 99999999, InPkts: 100000000, OutPkts: 999999999, InBytes: 1000000000, OutBytes: 99999999999},
		Dests: []*pb.Dest{{Addr: "192.168.0.1", Port: 80, Fwd: "FullNat", Weight: 1,
			Stats: &pb.ServiceStats{Conns: 100000000000, InPkts: 99999999999999, OutPkts: 100000000000000, InBytes: 18446744073709551615}}}}}
}

func TestStatsShortening(t *testing.T) {
	check(t, "stats", Lister{Format: FmtNumeric | FmtStats}.ListAll(4096, statsFixture()))
	check(t, "statsExact", Lister{Format: FmtNumeric | FmtStats | FmtExact}.ListAll(4096, statsFixture()))
}

func TestRate(t *testing.T) {
	st := &pb.ServiceStats{Cps: 12, InPps: 3400, OutPps: 3100, InBps: 2500000, OutBps: 120000000}
	svcs := []*pb.Service{{Key: key("TCP", "10.0.0.1", 80), Sched: "rr", Stats: st,
		Dests: []*pb.Dest{{Addr: "192.168.0.1", Port: 80, Fwd: "FullNat", Weight: 1, Stats: st}}}}
	check(t, "rate", Lister{Format: FmtNumeric | FmtRate}.ListAll(4096, svcs))
}

func TestLargeNumBoundaries(t *testing.T) {
	for _, c := range []struct {
		in   uint64
		want string
	}{
		{0, "        0"},
		{99999999, " 99999999"},
		{100000000, "  100000K"},
		{999999999, "  999999K"},
		{1000000000, "    1000M"},
		{99999999999, "   99999M"},
		{100000000000, "     100G"},
		{99999999999999, "   99999G"},
		{100000000000000, "     100T"},
	} {
		var b strings.Builder
		largeNum(&b, c.in, 0)
		if b.String() != c.want {
			t.Errorf("largeNum(%d) = %q, want %q", c.in, b.String(), c.want)
		}
	}
	for _, c := range []struct {
		in   uint64
		want string
	}{
		{12345678, " 12345678"},
		{123456789, " 123456789"},
		{1234567890123, " 1234567890123"},
	} {
		var b strings.Builder
		largeNum(&b, c.in, FmtExact)
		if b.String() != c.want {
			t.Errorf("largeNum(%d, exact) = %q, want %q", c.in, b.String(), c.want)
		}
	}
}

func TestThresholds(t *testing.T) {
	svcs := []*pb.Service{{Key: key("TCP", "10.0.0.1", 80), Sched: "rr", Dests: []*pb.Dest{
		{Addr: "192.168.0.1", Port: 80, Fwd: "FullNat", Weight: 1, Upper: 1000, Lower: 10, Active: 5, Inactive: 6}}}}
	check(t, "thresholds", Lister{Format: FmtNumeric | FmtThresholds}.ListAll(4096, svcs))
}

func TestTunInfo(t *testing.T) {
	svcs := []*pb.Service{{Key: key("TCP", "10.0.0.1", 80), Sched: "rr", Dests: []*pb.Dest{
		{Addr: "192.168.0.3", Port: 80, Fwd: "Tunnel", Weight: 1},
		{Addr: "192.168.0.1", Port: 80, Fwd: "FullNat", Weight: 1}}}}
	check(t, "tunInfo", Lister{Format: FmtNumeric | FmtTunInfo}.ListAll(4096, svcs))
}

// fakeNames is a small hosts and services table.
type fakeNames struct{}

var fakeHosts = map[string]string{
	"10.0.0.1":    "a-very-long-virtual-host-name.example.com",
	"192.168.0.1": "a-long-real-server-name.example.org",
	"2001:db8::1": "v6-host-with-a-long-name.example.net",
	"2001:db8::a": "real-six.example.net",
}

var fakeServices = map[string]uint16{"http/tcp": 80, "http-alt/tcp": 8080, "https/tcp": 443, "domain/udp": 53, "www/tcp": 80}

func (fakeNames) PortByName(name, proto string) (uint16, bool) {
	p, ok := fakeServices[name+"/"+proto]
	return p, ok
}

func (fakeNames) ServiceByPort(port uint16, proto string) (string, bool) {
	best := ""
	for k, p := range fakeServices {
		n, pr, _ := strings.Cut(k, "/")
		if p == port && pr == proto && (best == "" || n < best) {
			best = n
		}
	}
	return best, best != ""
}

func (fakeNames) HostByAddr(a netip.Addr) (string, bool) {
	h, ok := fakeHosts[a.String()]
	return h, ok
}

func TestNamesAndTruncation(t *testing.T) {
	svcs := []*pb.Service{
		{Key: key("TCP", "10.0.0.1", 80), Sched: "rr", Dests: []*pb.Dest{{Addr: "192.168.0.1", Port: 8080, Fwd: "FullNat", Weight: 1}}},
		{Key: key("TCP", "2001:db8::1", 443), Sched: "rr", Dests: []*pb.Dest{{Addr: "2001:db8::a", Port: 443, Fwd: "FullNat", Weight: 1}}},
	}
	check(t, "names", Lister{Names: fakeNames{}}.ListAll(4096, svcs))
	// -n wins over names
	num := Lister{Format: FmtNumeric, Names: fakeNames{}}.ListAll(4096, svcs)
	if strings.Contains(num, "example") {
		t.Errorf("-n listing has names:\n%s", num)
	}
}

func TestConns(t *testing.T) {
	conns := []*pb.Conn{
		{Proto: "TCP", State: "ESTABLISHED", ExpireNs: 899_999_999_999, Client: "169.60.24.86:52470", Virtual: "169.46.7.238:27234", Dest: "169.48.180.244:27234"},
		{Proto: "UDP", State: "NONE", ExpireNs: 5_500_000_000, Client: "[2001:db8::5]:0", Virtual: "[2001:db8::1]:53", Dest: "[2001:db8::a]:53"},
		{Proto: "TCP", State: "SYN_RECV", ExpireNs: 7200e9, Client: "1.2.3.4:1", Virtual: "5.6.7.8:2", Dest: "9.9.9.9:3"},
	}
	check(t, "conns", Lister{Format: FmtNumeric}.Conns(conns))
	local := []*pb.Conn{
		{Proto: "TCP", State: "ESTABLISHED", ExpireNs: 90e9, Client: "203.0.113.9:40000", Virtual: "10.0.0.1:80", Local: "10.0.0.200:1025", Dest: "192.168.0.2:80", Worker: 1},
		{Proto: "TCP", State: "TIME_WAIT", ExpireNs: -5, Client: "203.0.113.9:40001", Virtual: "10.0.0.1:80", Dest: "192.168.0.2:80"},
	}
	check(t, "connsLocal", Lister{Format: FmtNumeric}.Conns(local))
}

func TestLAddrs(t *testing.T) {
	svcs := []*pb.Service{
		{Key: key("TCP", "10.0.0.1", 80), Laddrs: []*pb.LAddr{{Addr: "10.0.0.200", Dev: "dpdk0", Conns: 1234, Conflicts: 7}, {Addr: "10.0.0.201", Dev: "dpdk0"}}},
		{Key: key("TCP", "2001:db8::1", 443), Laddrs: []*pb.LAddr{{Addr: "2001:db8::200", Dev: "dpdk0"}}},
	}
	check(t, "laddrsAll", LAddrs(svcs, false))
	check(t, "laddrsOne", LAddrs([]*pb.Service{{Key: key("TCP", "10.0.0.1", 80)}}, true))
}

func TestTimeoutLine(t *testing.T) {
	got := TimeoutLine(&pb.Timeouts{Tcp: 900, TcpFin: 120, Udp: 300})
	if want := "Timeout (tcp tcpfin udp): 900 120 300\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestStrError(t *testing.T) {
	for in, want := range map[string]string{
		"service TCP 10.0.0.1:80: Service already exists":                   "Service already exists",
		"Service already exists":                                            "Service already exists",
		"service TCP 10.0.0.1:80: No such service":                          "No such service",
		"dest 1.2.3.4:80 of TCP 10.0.0.1:80: No such destination":           "No such destination",
		"local address 10.0.0.2: No such local address":                     "No such local address",
		"service TCP 10.0.0.1:80: persistence (-p) is not supported yet":    "service TCP 10.0.0.1:80: persistence (-p) is not supported yet",
		"forwarding method Route: not supported: GVS forwards with FullNat": "forwarding method Route: not supported: GVS forwards with FullNat",
	} {
		if got := StrError(in); got != want {
			t.Errorf("StrError(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestListMatch: a SNAT match service lists as DPVS's ipvsadm lists it
// (MATCH proto,from=…,oif=…; the SNAT address with port 0) and saves as
// -A -H … / -a -H … -r ADDR:0 -J lines that -R reads back.
func TestListMatch(t *testing.T) {
	m := "proto=tcp,src-range=10.2.0.0-10.2.0.255:0-0,dst-range=0.0.0.0-0.0.0.0:0-0,iif=,oif=dp0"
	svcs := []*pb.Service{
		{Key: key("TCP", "10.0.0.1", 80), Sched: "rr"},
		{Key: &pb.ServiceKey{Proto: "TCP", Match: m}, Sched: "rr", Dests: []*pb.Dest{
			{Addr: "10.1.0.200", Port: 0, Weight: 100, Fwd: "SNAT", Active: 2},
		}},
	}
	want := "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  10.0.0.1:80 rr\n" +
		"MATCH tcp,from=10.2.0.0-10.2.0.255:0-0,oif=dp0 rr\n" +
		"  -> 10.1.0.200:0                 SNAT    100    2          0         \n"
	if got := (Lister{Format: FmtNumeric}).ListAll(4096, svcs); got != want {
		t.Errorf("-L -n:\n%s\nwant:\n%s", got, want)
	}
	wantRule := "-A -t 10.0.0.1:80 -s rr\n" +
		"-A -H " + m + " -s rr\n" +
		"-a -H " + m + " -r 10.1.0.200:0 -J -w 100\n"
	got := (Lister{Format: FmtNumeric | FmtRule}).ListAll(4096, svcs)
	if got != wantRule {
		t.Errorf("-S -n:\n%s\nwant:\n%s", got, wantRule)
	}
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if _, err := Parse(args(line), ParseOptions{}); err != nil {
			t.Errorf("saved line %q does not parse: %s", line, err.Msg)
		}
	}
}
