package integration

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// TestNAT64Lab: an IPv6 client reaches IPv4 real servers through an IPv6
// VIP (FullNAT NAT64, configured with ipvsadm as DPVS users do: -b to an
// IPv4 server, an IPv4 local address), on two workers: Linux's own TCP and
// UDP stacks on both sides; the TOA on rs1's wire carries the client's
// IPv6 address; nginx behind --proxy-protocol v2 logs the client's IPv6
// address ($proxy_protocol_addr); ipvsadm lists the service with FullNat.
func TestNAT64Lab(t *testing.T) {
	l := fullNATLab(t)
	vip6, client6, lip, port := l.Env["VIP6"], l.Env["CLIENT_IP6"], l.Env["LIP"], l.Env["LB_RS_PORT"]
	rs1, rs2 := l.Env["RS1_IP"], l.Env["RS2_IP"]
	v := "[" + vip6 + "]"
	l.Ipvsadm("-A", "-t", v+":80", "-s", "rr")
	l.Ipvsadm("-a", "-t", v+":80", "-r", rs1+":8080", "-b")
	l.Ipvsadm("-a", "-t", v+":80", "-r", rs2+":8080", "-b")
	l.Ipvsadm("-P", "-z", lip, "-t", v+":80", "-F", port)

	toa := captureTOA(t, l, l.Env["RS1_NS"], 8080)
	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	count := map[string]int{}
	for i := 0; i < 50; i++ {
		server, peer := get(t, c, "http://"+v+"/")
		count[server]++
		if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr().String() != lip {
			t.Fatalf("real server saw peer %s, want the IPv4 local address %s", peer, lip)
		}
	}
	// rr per worker: each worker alternates, so the spread is even up to
	// one connection per worker (an odd share on both starts on the same
	// server)
	if count["rs1"]+count["rs2"] != 50 || count["rs1"] < 24 || count["rs1"] > 26 {
		t.Errorf("spread %v, want 25±1 each (rr on two workers)", count)
	}
	got := toa()
	if len(got) == 0 {
		t.Fatal("rs1 never saw a TOA option")
	}
	for _, ap := range got {
		if ap.Addr().String() != client6 {
			t.Fatalf("TOA carries %s, want the IPv6 client %s", ap, client6)
		}
	}

	// UDP: each datagram answered by an IPv4 server, back to the IPv6 client
	l.Ipvsadm("-A", "-u", v+":9000", "-s", "rr")
	l.Ipvsadm("-a", "-u", v+":9000", "-r", rs1+":9000", "-b")
	l.Ipvsadm("-P", "-z", lip, "-u", v+":9000", "-F", port)
	pc, err := nsutil.ListenPacket(l.Env["CLIENT_NS"], "udp", "["+client6+"]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	raddr := &net.UDPAddr{IP: net.ParseIP(vip6), Port: 9000}
	for i := 0; i < 5; i++ {
		msg := fmt.Sprintf("question %d", i)
		var answer string
		for try := 0; try < 5 && answer == ""; try++ {
			pc.WriteTo([]byte(msg), raddr)
			pc.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 1500)
			if n, from, err := pc.ReadFrom(buf); err == nil && from.String() == raddr.String() {
				answer = string(buf[:n])
			}
		}
		if answer != "rs1 "+msg {
			t.Fatalf("UDP answer %q to %q", answer, msg)
		}
	}

	// proxy protocol v2 in front of nginx: the header says TCP6 with the client
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	conf := fmt.Sprintf(`daemon off;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  log_format pp '$proxy_protocol_addr $remote_addr "$request"';
  server {
    listen %[2]s:8083 proxy_protocol;
    access_log %[1]s/access.log pp;
    location = / { return 200 "nginx $proxy_protocol_addr\n"; }
  }
}
`, dir, rs1)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	runIn(t, l.Env["RS1_NS"], "nginx", "-c", filepath.Join(dir, "nginx.conf"))
	waitTCP(t, l.Env["RS1_NS"], rs1+":8083")
	l.Ipvsadm("-A", "-t", v+":8083", "-s", "rr", "--proxy-protocol", "v2")
	l.Ipvsadm("-a", "-t", v+":8083", "-r", rs1+":8083", "-b")
	l.Ipvsadm("-P", "-z", lip, "-t", v+":8083", "-F", port)
	for i := 0; i < 3; i++ {
		if got := l.MustNS(l.Env["CLIENT_NS"], "curl", "-s", "--max-time", "10", "http://"+v+":8083/"); got != "nginx "+client6+"\n" {
			t.Fatalf("nginx through v2 answered %q, want the IPv6 client %s", got, client6)
		}
	}
	testenv.Eventually(t, 5*time.Second, "nginx's access log", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "access.log"))
		return strings.Count(string(b), "\n") >= 3
	})
	b, _ := os.ReadFile(filepath.Join(dir, "access.log"))
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, client6+" "+lip+" ") {
			t.Errorf("nginx access log line %q: want the IPv6 client from the header and the IPv4 local address as peer", line)
		}
	}

	list := l.Ipvsadm("-L", "-n")
	for _, want := range []string{"TCP  " + v + ":80 rr\n", fmt.Sprintf("  -> %-28s FullNat", rs1+":8080"), "TCP  " + v + ":8083 rr ppv2\n"} {
		if !strings.Contains(list, want) {
			t.Errorf("ipvsadm -L -n lacks %q:\n%s", want, list)
		}
	}
	ctr := l.Counters()
	t.Logf("nginx log:\n%s\nlb_nat64_in %d, lb_nat64_out %d, lb_toa_added %d, drop_lb_nat64 %d", b,
		ctr["lb_nat64_in"], ctr["lb_nat64_out"], ctr["lb_toa_added"], ctr["drop_lb_nat64"])
	if ctr["lb_nat64_in"] == 0 || ctr["lb_nat64_out"] == 0 || ctr["drop_lb_nat64"] != 0 {
		t.Errorf("lb_nat64_in %d, lb_nat64_out %d, drop_lb_nat64 %d", ctr["lb_nat64_in"], ctr["lb_nat64_out"], ctr["drop_lb_nat64"])
	}
}
