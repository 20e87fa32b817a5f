package ipvsadm

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func TestRestoreLines(t *testing.T) {
	in := "# a comment line\n" +
		"ipvsadm -A -t 10.0.0.1:80 -s rr\n" +
		"\n" +
		"   \t \r\n" +
		"-a -t 10.0.0.1:80 -r 192.168.0.1 -b   # trailing comment\r\n" +
		"ipvsadm\n" +
		"-C ipvsadm\n" +
		"-L\t-n"
	got, err := RestoreLines(strings.NewReader(in), "ipvsadm")
	if err != nil {
		t.Fatal(err)
	}
	want := []RestoreLine{
		{2, []string{"ipvsadm", "-A", "-t", "10.0.0.1:80", "-s", "rr"}},
		{5, []string{"ipvsadm", "-a", "-t", "10.0.0.1:80", "-r", "192.168.0.1", "-b"}},
		{7, []string{"ipvsadm", "-C"}},
		{8, []string{"ipvsadm", "-L", "-n"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestParseRestoreErrors(t *testing.T) {
	cases := []struct {
		in   string
		msg  string
		code int
	}{
		{"-A -t 10.0.0.1:80\n\n-a -t 10.0.0.1:80 -r 192.168.0.1 -w 70000\n", "ipvsadm: line 3: illegal weight specified", 2},
		{"-C\n--start-daemon master\n", "ipvsadm: line 2: --start-daemon: not supported yet", 2},
		{"-R\n", "ipvsadm: line 1: " + tryHelp, 255},
		{"--socket /x -L\n", "ipvsadm: line 1: " + tryHelp, 255},
		{"-L --bogus\n", "ipvsadm: line 1: --bogus: unknown option", 255},
		{"-A -t 10.0.0.1:80 -6\n", "ipvsadm: line 1: -6 used before -f\n", 2},
	}
	for _, c := range cases {
		_, err := ParseRestore(strings.NewReader(c.in), "ipvsadm", ParseOptions{})
		if err == nil || err.Msg != c.msg || err.Code != c.code {
			t.Errorf("%q: got %v, want %q (exit %d)", c.in, err, c.msg, c.code)
		}
	}
}

// saveTable adds thresholds and local addresses to the listing table.
func saveTable() []*pb.Service {
	svcs := table()
	svcs[0].Dests[2].Upper, svcs[0].Dests[2].Lower = 100, 10
	svcs[0].Laddrs = []*pb.LAddr{{Addr: "10.0.0.200", Dev: "dpdk0"}}
	return svcs
}

const savedNumeric = `-A -t 192.168.1.1:443 -s wlc -p 300 --sched-flags flag-1,flag-3 -j enable --conn-timeout 90
-a -t 192.168.1.1:443 -r 10.1.0.2:443 -b -w 1
-a -t 192.168.1.1:443 -r 10.1.0.10:8443 -b -w 0
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -m -w 2
-a -t 10.0.0.1:80 -r 192.168.0.2:80 -b -w 1
-a -t 10.0.0.1:80 -r 192.168.0.2:81 -b -w 1 -x 100 -y 10
-P -t 10.0.0.1:80 -z 10.0.0.200 -F dpdk0
-A -u 10.0.0.1:53 -s sh --sched-flags sh-fallback,sh-port
-A -t [2001:db8::1]:80 -s mh --sched-flags mh-port
-a -t [2001:db8::1]:80 -r [2001:db8::a]:80 -b -w 65535
-a -t [2001:db8::1]:80 -r [2001:db8:1::2]:8080 -b -w 3
`

func TestSave(t *testing.T) {
	got := Lister{Format: FmtRule | FmtNumeric}.ListAll(4096, saveTable())
	if got != savedNumeric {
		t.Errorf("got:\n%s\nwant:\n%s", got, savedNumeric)
	}
}

// apply builds the table the restored commands describe, as a dataplane
// would, without one.
func apply(t *testing.T, cmds []RestoreCommand) []*pb.Service {
	t.Helper()
	var svcs []*pb.Service
	find := func(k *pb.ServiceKey) *pb.Service {
		for _, s := range svcs {
			if s.Key.Proto == k.Proto && s.Key.Addr == k.Addr && s.Key.Port == k.Port {
				return s
			}
		}
		t.Fatalf("no service %v", k)
		return nil
	}
	for _, c := range cmds {
		switch c.Cmd {
		case CmdAdd:
			svcs = append(svcs, c.ServicePB())
		case CmdAddDest:
			r := c.DestPB()
			s := find(r.Service)
			s.Dests = append(s.Dests, r.Dest)
		case CmdAddLAddr:
			r := c.LAddrPB()
			s := find(r.Service)
			s.Laddrs = append(s.Laddrs, r.Laddr)
		default:
			t.Fatalf("line %d: unexpected command %v", c.Line, c.Cmd)
		}
	}
	return svcs
}

func TestSaveRestoreRoundTrip(t *testing.T) {
	saved := Lister{Format: FmtRule | FmtNumeric}.ListAll(4096, saveTable())
	cmds, err := ParseRestore(strings.NewReader(saved), "ipvsadm", ParseOptions{})
	if err != nil {
		t.Fatalf("restore: %s", err.Msg)
	}
	if len(cmds) != strings.Count(saved, "\n") {
		t.Fatalf("%d commands from %d lines", len(cmds), strings.Count(saved, "\n"))
	}
	again := Lister{Format: FmtRule | FmtNumeric}.ListAll(4096, apply(t, cmds))
	if again != saved {
		t.Errorf("-S | -R | -S changed the table:\nbefore:\n%s\nafter:\n%s", saved, again)
	}
	// the listing of the restored table is the original's, but for the
	// live counters
	orig := saveTable()
	for _, s := range orig {
		for _, d := range s.Dests {
			d.Active, d.Inactive = 0, 0
		}
	}
	if a, b := (Lister{Format: FmtNumeric | FmtThresholds}).ListAll(4096, apply(t, cmds)),
		(Lister{Format: FmtNumeric | FmtThresholds}).ListAll(4096, orig); a != b {
		t.Errorf("restored table lists differently:\n%s\nwant:\n%s", a, b)
	}
}

// portNames knows service names but no host names.
type portNames struct{ fakeNames }

func (portNames) HostByAddr(netip.Addr) (string, bool) { return "", false }

func TestSaveWithPortNamesRoundTrip(t *testing.T) {
	svcs := []*pb.Service{{Key: key("TCP", "10.0.0.1", 80), Sched: "rr",
		Dests: []*pb.Dest{{Addr: "192.168.0.1", Port: 8080, Fwd: "FullNat", Weight: 1}}}}
	saved := Lister{Format: FmtRule, Names: portNames{}}.ListAll(4096, svcs)
	want := "-A -t 10.0.0.1:http -s rr\n-a -t 10.0.0.1:http -r 192.168.0.1:http-alt -b -w 1\n"
	if saved != want {
		t.Fatalf("got %q, want %q", saved, want)
	}
	cmds, err := ParseRestore(strings.NewReader(saved), "ipvsadm", ParseOptions{Names: portNames{}})
	if err != nil {
		t.Fatalf("restore: %s", err.Msg)
	}
	if got := (Lister{Format: FmtRule | FmtNumeric}).ListAll(4096, apply(t, cmds)); got != "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -b -w 1\n" {
		t.Errorf("restored: %q", got)
	}
}

func TestServicesFile(t *testing.T) {
	s := ParseServices(strings.NewReader("# comment\nhttp\t\t80/tcp\t\twww www-http # WorldWideWeb HTTP\nhttp 80/udp\nhttp-alt 8080/tcp webcache\nbogus\nbad 99999/tcp\nwww 81/tcp\n"))
	for _, c := range []struct {
		name, proto string
		port        uint16
		ok          bool
	}{
		{"http", "tcp", 80, true}, {"www", "tcp", 80, true}, {"webcache", "tcp", 8080, true},
		{"http", "udp", 80, true}, {"http-alt", "udp", 0, false}, {"bad", "tcp", 0, false},
	} {
		if p, ok := s.PortByName(c.name, c.proto); p != c.port || ok != c.ok {
			t.Errorf("PortByName(%s, %s) = %d, %v", c.name, c.proto, p, ok)
		}
	}
	if n, ok := s.ServiceByPort(80, "tcp"); n != "http" || !ok {
		t.Errorf("ServiceByPort(80) = %q, %v", n, ok)
	}
	if n, ok := s.ServiceByPort(81, "tcp"); n != "www" || !ok {
		t.Errorf("ServiceByPort(81) = %q, %v", n, ok)
	}
	var none *Services
	if _, ok := none.PortByName("http", "tcp"); ok {
		t.Error("nil table knows http")
	}
}
