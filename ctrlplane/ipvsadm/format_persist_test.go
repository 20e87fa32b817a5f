package ipvsadm

import (
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// Persistence and one-packet scheduling in listings, -S and -R. The
// expected texts were computed apart from this package with a C-style
// printf (Python's %) over ipvsadm 1.31's format strings.
var goldenPersist = map[string]string{
	"persistList": "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  10.0.0.1:80 rr persistent 600 mask 255.255.255.0\n  -> 192.168.0.1:80               FullNat 0      1          2         \n  -> 192.168.0.2:80               FullNat 3      4          0         \n",
	"persistConn": "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n  -> RemoteAddress:Port\nTCP  10.0.0.1:80 rr persistent 600 mask 255.255.255.0\n  -> 192.168.0.1:80               0         5           1          2         \n  -> 192.168.0.2:80               3         7           4          0         \n",
	"opsList":     "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nUDP  10.0.0.1:53 rr ops\n  -> 192.168.0.5:53               FullNat 1      0          0         \n",
	"port0v6List": "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  [2001:db8::1]:0 wlc persistent 300 mask 64\n  -> [2001:db8::a]:0              FullNat 1      0          0         \n",
	"templates":   "IPVS connection entries\npro expire state       source             virtual            local              destination\nTCP 14:59  ESTABLISHED 203.0.113.9:40000  10.0.0.1:80        10.0.0.200:1025    192.168.0.2:80\nTCP 09:59  NONE        203.0.113.0:0      10.0.0.1:80        -                  192.168.0.2:80\n",
	"saved": "-A -t 10.0.0.1:80 -s rr -p 600 -M 255.255.255.0\n-a -t 10.0.0.1:80 -r 192.168.0.1:80 -b -w 0\n-a -t 10.0.0.1:80 -r 192.168.0.2:80 -b -w 3\n" +
		"-A -u 10.0.0.1:53 -s rr -o\n-a -u 10.0.0.1:53 -r 192.168.0.5:53 -b -w 1\n" +
		"-A -t [2001:db8::1]:0 -s wlc -p 300 -M 64\n-a -t [2001:db8::1]:0 -r [2001:db8::a]:0 -b -w 1\n",
}

func persistTable() []*pb.Service {
	return []*pb.Service{
		{Key: key("TCP", "10.0.0.1", 80), Sched: "rr", Persistent: true, PersistentTimeout: 600, PersistentPrefix: 24, Dests: []*pb.Dest{
			{Addr: "192.168.0.2", Port: 80, Weight: 3, Fwd: "FullNat", Active: 4, PersistConns: 7},
			{Addr: "192.168.0.1", Port: 80, Weight: 0, Fwd: "FullNat", Active: 1, Inactive: 2, PersistConns: 5},
		}},
		{Key: key("UDP", "10.0.0.1", 53), Sched: "rr", OnePacket: true, Dests: []*pb.Dest{
			{Addr: "192.168.0.5", Port: 53, Weight: 1, Fwd: "FullNat"},
		}},
		{Key: key("TCP", "2001:db8::1", 0), Sched: "wlc", Persistent: true, PersistentTimeout: 300, PersistentPrefix: 64, Dests: []*pb.Dest{
			{Addr: "2001:db8::a", Port: 0, Weight: 1, Fwd: "FullNat"},
		}},
	}
}

func checkPersist(t *testing.T, name, got string) {
	t.Helper()
	if want := goldenPersist[name]; got != want {
		t.Errorf("%s:\ngot:\n%s\nwant:\n%s\ngot  %q\nwant %q", name, got, want, got, want)
	}
}

func TestPersistenceListings(t *testing.T) {
	svcs := persistTable()
	checkPersist(t, "persistList", Lister{Format: FmtNumeric}.ListAll(4096, svcs[:1]))
	checkPersist(t, "persistConn", Lister{Format: FmtNumeric | FmtPersistentConn}.ListAll(4096, svcs[:1]))
	checkPersist(t, "opsList", Lister{Format: FmtNumeric}.ListAll(4096, svcs[1:2]))
	checkPersist(t, "port0v6List", Lister{Format: FmtNumeric}.ListAll(4096, svcs[2:]))
	// a host mask prints nothing, as ipvsadm omits 255.255.255.255 and 128
	host := persistTable()[0]
	host.PersistentPrefix = 32
	if got := (Lister{Format: FmtNumeric}).ListAll(4096, []*pb.Service{host}); !strings.Contains(got, "rr persistent 600\n") {
		t.Errorf("a /32 mask is listed:\n%s", got)
	}
}

func TestTemplateConns(t *testing.T) {
	conns := []*pb.Conn{
		{Proto: "TCP", State: "ESTABLISHED", ExpireNs: 899_999_999_999, Client: "203.0.113.9:40000", Virtual: "10.0.0.1:80", Local: "10.0.0.200:1025", Dest: "192.168.0.2:80"},
		{Proto: "TCP", State: "NONE", ExpireNs: 599_500_000_000, Client: "203.0.113.0:0", Virtual: "10.0.0.1:80", Dest: "192.168.0.2:80", Template: true, Worker: -1},
	}
	checkPersist(t, "templates", Lister{Format: FmtNumeric}.Conns(conns))
}

func TestPersistenceSaveRestore(t *testing.T) {
	saved := Lister{Format: FmtRule | FmtNumeric}.ListAll(4096, persistTable())
	checkPersist(t, "saved", saved)
	cmds, err := ParseRestore(strings.NewReader(saved), "ipvsadm", ParseOptions{})
	if err != nil {
		t.Fatalf("restore: %s", err.Msg)
	}
	for _, c := range cmds {
		if e := c.CheckGVS(); e != nil {
			t.Fatalf("line %d refused: %s", c.Line, e.Msg)
		}
	}
	if again := (Lister{Format: FmtRule | FmtNumeric}).ListAll(4096, apply(t, cmds)); again != saved {
		t.Errorf("-S | -R | -S changed the table:\nbefore:\n%s\nafter:\n%s", saved, again)
	}
}
