package ipvsadm

import (
	"net/netip"
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func TestParseBlklstWhtlst(t *testing.T) {
	for _, c := range []struct {
		line, list, prefix string
	}{
		{"--add-blklst -t 10.0.0.1:80 -k 192.168.1.7", "deny", "192.168.1.7/32"},
		{"-U -t 10.0.0.1:80 --blklst 192.168.1.0/24", "deny", "192.168.1.0/24"},
		{"-V -t 10.0.0.1:80 -k 192.168.1.9/24", "deny", "192.168.1.0/24"},
		{"-O -t [2001:db8::1]:443 -2 2001:db8:1::/48", "allow", "2001:db8:1::/48"},
		{"--del-whtlst -t [2001:db8::1]:443 --whtlst [2001:db8::7]", "allow", "2001:db8::7/128"},
		{"-O -u 10.0.0.1:53 -2 10.1.1.1:53", "allow", "10.1.1.1/32"}, // DPVS reads the entry as a service address
	} {
		cmd, err := Parse(append([]string{"ipvsadm"}, strings.Fields(c.line)...), ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.line, err)
		}
		if e := cmd.CheckGVS(); e != nil {
			t.Fatalf("%s: %v", c.line, e)
		}
		r := cmd.ACLPB()
		if r.List != c.list || r.Prefix != c.prefix || r.Service.GetAddr() == "" {
			t.Errorf("%s: request %v, want %s %s", c.line, r, c.list, c.prefix)
		}
	}
	for line, want := range map[string]string{
		"-U -t 10.0.0.1:80":                       "You need to supply the 'blklst-address' option for the 'add-blklst' command",
		"-U -k 1.2.3.4":                           "You need to supply the 'service-address' option for the 'add-blklst' command",
		"-U -t 10.0.0.1:80 -k 1.2.3.4/33":         "illegal blacklist entry format, require [ IP | ipset:NAME ]",
		"-O -t 10.0.0.1:80 -2 nonsense":           "illegal whitelist entry format, require [ IP | ipset:NAME ]",
		"-U -t 10.0.0.1:80 -k 1.2.3.4 -2 1.2.3.4": "Illegal 'whtlst-address' option with the 'add-blklst' command",
		"-B -t 10.0.0.1:80 -k 1.2.3.4":            "Illegal 'blklst-address' option with the 'get-blklst' command",
		"-U -t 10.0.0.1:80 -k 1.2.3.4 -k 5.6.7.8": "multiple 'blklst-address' options specified",
	} {
		_, err := Parse(append([]string{"ipvsadm"}, strings.Fields(line)...), ParseOptions{})
		if err == nil || err.Msg != want || err.Code != ExitFail {
			t.Errorf("%s: got %v, want %q (exit 2)", line, err, want)
		}
	}
}

func TestACLListing(t *testing.T) {
	svcs := []*pb.Service{
		{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.1", Port: 80}, Deny: []string{"192.168.1.7/32", "10.0.0.0/8"}, Allow: []string{"172.16.0.0/12"}},
		{Key: &pb.ServiceKey{Proto: "UDP", Addr: "2001:db8::1", Port: 53}, Deny: []string{"2001:db8:1::/48"}},
		{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.2", Port: 80}},
	}
	want := "" +
		"PROTO    VIP:VPORT                      BLACKLIST                     \n" +
		"TCP      10.0.0.1:80                    192.168.1.7                   \n" +
		"TCP      10.0.0.1:80                    10.0.0.0/8                    \n" +
		"UDP      [2001:db8::1]:53               2001:db8:1::/48               \n"
	if got := ACLs(svcs, false); got != want {
		t.Errorf("blklst listing:\n%q\nwant\n%q", got, want)
	}
	want = "" +
		"PROTO    VIP:VPORT                      WHITELIST                     \n" +
		"TCP      10.0.0.1:80                    172.16.0.0/12                 \n"
	if got := ACLs(svcs, true); got != want {
		t.Errorf("whtlst listing:\n%q\nwant\n%q", got, want)
	}
}

// FuzzParseListEntry: the -k/-2 parser never panics, and what it accepts
// is a masked prefix that reads back as itself.
func FuzzParseListEntry(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "10.0.0.0/8", "2001:db8::/32", "[2001:db8::1]", "1.2.3.4:80", "ipset:x", "/", "1.2.3.4/", "::ffff:1.2.3.4/120"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ipset, ok := parseListEntry(s)
		if !ok || ipset {
			return
		}
		if !p.IsValid() || p != p.Masked() {
			t.Fatalf("%q: accepted %v", s, p)
		}
		if q, err := netip.ParsePrefix(p.String()); err != nil || q != p {
			t.Fatalf("%q: %v does not read back (%v)", s, p, err)
		}
	})
}

// The GVS limit options reach the API and come back in -S as given, so
// -S | -R keeps them.
func TestLimitOptionsRoundTrip(t *testing.T) {
	line := "-A -t 10.0.0.1:80 -s rr --conn-rate-limit 1000 --per-source-limit 20"
	cmd, err := Parse(append([]string{"ipvsadm"}, strings.Fields(line)...), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc := cmd.ServicePB()
	if svc.ConnRateLimit != 1000 || svc.PerSourceRateLimit != 20 {
		t.Fatalf("request %v", svc)
	}
	saved := Lister{Format: FmtRule | FmtNumeric}.ListAll(0, []*pb.Service{svc})
	if saved != line+"\n" {
		t.Fatalf("-S wrote %q, want %q", saved, line+"\n")
	}
	listed := Lister{Format: FmtNumeric}.ListAll(0, []*pb.Service{svc})
	if !strings.Contains(listed, "TCP  10.0.0.1:80 rr conn-rate-limit 1000 per-source-limit 20\n") {
		t.Fatalf("-L wrote %q", listed)
	}
	for l, want := range map[string]string{
		"-A -t 10.0.0.1:80 --conn-rate-limit -1":             "invalid conn-rate-limit value `-1' specified: give connections per second, 0 for no limit",
		"-a -t 10.0.0.1:80 -r 10.0.0.2 --per-source-limit 5": "Illegal 'per-source-limit' option with the 'add-server' command",
	} {
		if _, err := Parse(append([]string{"ipvsadm"}, strings.Fields(l)...), ParseOptions{}); err == nil || err.Msg != want {
			t.Errorf("%s: got %v, want %q", l, err, want)
		}
	}
}
