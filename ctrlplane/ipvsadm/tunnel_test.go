package ipvsadm

import (
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// tunnelGolden: computed apart from this package with Python's % over
// ipvsadm 1.31's print_tunnel_rule and --tun-info (fwd_tun_info) format
// strings, and pasted here.
var tunnelGolden = map[string]string{
	"save": "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.0.3:80 -i -w 1 --tun-type ipip\n-a -t 10.0.0.1:80 -r 192.168.0.4:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum\n-a -t 10.0.0.1:80 -r 192.168.0.5:80 -i -w 1 --tun-type gre --tun-nocsum\n-a -t 10.0.0.1:80 -r 192.168.0.6:80 -i -w 1 --tun-type gue --tun-port 5555 --tun-remcsum\n-a -t 10.0.0.1:80 -r 192.168.0.7:80 -i -w 1 --tun-type gre --tun-csum\n-a -t 10.0.0.1:80 -r 192.168.0.9:80 -g -w 1\n",
	"info": "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\nTCP  10.0.0.1:80 rr\n  -> 192.168.0.3:80               Tunnel  ipip          1      0          0         \n  -> 192.168.0.4:80               Tunnel  gue:6080:+c   2      0          0         \n  -> 192.168.0.5:80               Tunnel  gre:-c        1      0          0         \n  -> 192.168.0.6:80               Tunnel  gue:5555:r+c  1      0          0         \n  -> 192.168.0.7:80               Tunnel  gre:+c        1      0          0         \n  -> 192.168.0.9:80               Route   n/a           1      0          0         \n",
}

// tunnelTable is what the dataplane API lists for tunnel real servers of
// every type (ipip leaves tun_csum empty, as the apiserver does).
func tunnelTable() []*pb.Service {
	return []*pb.Service{{Key: key("TCP", "10.0.0.1", 80), Sched: "rr", Dests: []*pb.Dest{
		{Addr: "192.168.0.3", Port: 80, Weight: 1, Fwd: "Tunnel", TunType: "ipip"},
		{Addr: "192.168.0.4", Port: 80, Weight: 2, Fwd: "Tunnel", TunType: "gue", TunPort: 6080, TunCsum: "tun-csum"},
		{Addr: "192.168.0.5", Port: 80, Weight: 1, Fwd: "Tunnel", TunType: "gre", TunCsum: "tun-nocsum"},
		{Addr: "192.168.0.6", Port: 80, Weight: 1, Fwd: "Tunnel", TunType: "gue", TunPort: 5555, TunCsum: "tun-remcsum"},
		{Addr: "192.168.0.7", Port: 80, Weight: 1, Fwd: "Tunnel", TunType: "gre", TunCsum: "tun-csum"},
		{Addr: "192.168.0.9", Port: 80, Weight: 1, Fwd: "Route"},
	}}}
}

func TestTunnelSave(t *testing.T) {
	if got := (Lister{Format: FmtNumeric | FmtRule}).ListAll(4096, tunnelTable()); got != tunnelGolden["save"] {
		t.Errorf("ipvsadm -S -n:\n%q\nwant\n%q", got, tunnelGolden["save"])
	}
}

func TestTunnelInfo(t *testing.T) {
	if got := (Lister{Format: FmtNumeric | FmtTunInfo}).ListAll(4096, tunnelTable()); got != tunnelGolden["info"] {
		t.Errorf("ipvsadm -L -n --tun-info:\n%q\nwant\n%q", got, tunnelGolden["info"])
	}
}

// TestTunnelRequests: every line -S writes for a tunnel real server
// parses back into the request that carries the same options, and GVS
// refuses none of them.
func TestTunnelRequests(t *testing.T) {
	for _, c := range []struct {
		line      string
		typ, csum string
		port      uint32
		fwd       string
	}{
		{"-a -t 10.0.0.1:80 -r 192.168.0.3:80 -i -w 1 --tun-type ipip", "ipip", "", 0, "Tunnel"},
		{"-a -t 10.0.0.1:80 -r 192.168.0.3 -i", "", "", 0, "Tunnel"},
		{"-a -t 10.0.0.1:80 -r 192.168.0.4:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum", "gue", "tun-csum", 6080, "Tunnel"},
		{"-a -t 10.0.0.1:80 -r 192.168.0.5:80 -i -w 1 --tun-type gre --tun-nocsum", "gre", "tun-nocsum", 0, "Tunnel"},
		{"-e -t 10.0.0.1:80 -r 192.168.0.6:80 -i --tun-type gue --tun-port 5555 --tun-remcsum", "gue", "tun-remcsum", 5555, "Tunnel"},
		{"-a -t 10.0.0.1:80 -r 192.168.0.7:80 -i --tun-type gre --tun-csum", "gre", "tun-csum", 0, "Tunnel"},
		{"-a -t [2001:db8::1]:80 -r [2001:db8::7]:80 -i --tun-type gre", "gre", "", 0, "Tunnel"},
	} {
		cmd, err := Parse(args(c.line), ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %s", c.line, err.Msg)
		}
		if gerr := cmd.CheckGVS(); gerr != nil {
			t.Fatalf("%s: refused: %s", c.line, gerr.Msg)
		}
		d := cmd.DestPB().GetDest()
		if d.GetFwd() != c.fwd || d.GetTunType() != c.typ || d.GetTunPort() != c.port || d.GetTunCsum() != c.csum || d.GetPort() != 80 {
			t.Errorf("%s: request %v", c.line, d)
		}
	}
}

// TestTunnelParseErrors: ipvsadm 1.31's tunnel_opt_check rules for gre
// (gue's and ipip's are in TestParseErrors).
func TestTunnelParseErrors(t *testing.T) {
	for _, c := range []struct{ line, msg string }{
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -i --tun-type gre --tun-port 4000", "Illegal 'tun-port' option with the 'gre' tunnel type"},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -i --tun-type gre --tun-remcsum", "Illegal 'tun-remcsum' option with the 'gre' tunnel type"},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -i --tun-type gre --tun-nocsum --tun-csum", "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type"},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -i --tun-type vxlan", "illegal tunnel type specified"},
		{"-a -t 10.0.0.1:80 -r 192.168.0.1 -g --tun-type gre", "Tunnel options conflict with forward method"},
	} {
		_, err := Parse(args(c.line), ParseOptions{})
		if err == nil || err.Msg != c.msg || err.Code != 2 {
			t.Errorf("%s: got %v, want %q (exit 2)", c.line, err, c.msg)
		}
	}
}
