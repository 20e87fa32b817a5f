package integration

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runIn starts a command in namespace ns until the test ends and returns
// its combined output so far.
func runIn(t *testing.T, ns string, args ...string) *lockedBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// its own process group, ended as a whole (nginx's workers too), and
	// Wait returns even if a child keeps the output open
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%v: %v (make deps installs it)", args, err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	return out
}

// nginxPP runs nginx (Debian's) in namespace ns until the test ends,
// listening with proxy_protocol on each listen address (addr:port, IPv6
// in brackets): / answers "nginx $proxy_protocol_addr", /big is the 2 MB
// file returned, and dir/access.log has one line per request:
// $proxy_protocol_addr:$proxy_protocol_port $remote_addr "$request".
func nginxPP(t *testing.T, l *Lab, ns string, listen ...string) (dir string, big []byte) {
	t.Helper()
	dir = t.TempDir()
	os.Chmod(dir, 0o755)
	big = make([]byte, 2<<20)
	for i := range big {
		big[i] = byte(i * 7 >> 3)
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	var listens strings.Builder
	for _, a := range listen {
		fmt.Fprintf(&listens, "    listen %s proxy_protocol;\n", a)
	}
	nginxConf := fmt.Sprintf(`daemon off;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  log_format pp '$proxy_protocol_addr:$proxy_protocol_port $remote_addr "$request"';
  server {
%[2]s    access_log %[1]s/access.log pp;
    root %[1]s;
    location = / { return 200 "nginx $proxy_protocol_addr\n"; }
  }
}
`, dir, listens.String())
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(nginxConf), 0o644); err != nil {
		t.Fatal(err)
	}
	runIn(t, ns, "nginx", "-c", filepath.Join(dir, "nginx.conf"))
	testenv.Eventually(t, 10*time.Second, "nginx listening", func() bool {
		ss := l.MustNS(ns, "ss", "-ltn")
		for _, a := range listen {
			if !strings.Contains(ss, a) {
				return false
			}
		}
		return true
	})
	return dir, big
}

// TestProxyProtocolLab: --proxy-protocol v1 in front of nginx (listen …
// proxy_protocol) and v2 in front of haproxy (accept-proxy), both from
// Debian, through FullNAT on two workers: each server reads the client's
// address from GVS's header ($proxy_protocol_addr in nginx's access log,
// %[src] in haproxy's answer and log); a 2 MB download through nginx
// checks the shifted acknowledgements for a whole stream; the same with
// the SYN proxy on top; and ipvsadm lists the services as DPVS does.
func TestProxyProtocolLab(t *testing.T) {
	l := fullNATLab(t)
	vip, client := l.Env["VIP"], l.Env["CLIENT_IP"]
	rs1, rs2 := l.Env["RS1_IP"], l.Env["RS2_IP"]
	dir, big := nginxPP(t, l, l.Env["RS1_NS"], rs1+":8081")
	haproxyConf := fmt.Sprintf(`global
  log stdout format raw local0
defaults
  mode http
  log global
  option httplog
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend pp
  bind %s:8082 accept-proxy
  http-request return status 200 content-type text/plain lf-string "haproxy %%[src]\n"
`, rs2)
	if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(haproxyConf), 0o644); err != nil {
		t.Fatal(err)
	}
	haproxyOut := runIn(t, l.Env["RS2_NS"], "haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
	testenv.Eventually(t, 10*time.Second, "haproxy listening", func() bool {
		return strings.Contains(l.MustNS(l.Env["RS2_NS"], "ss", "-ltn"), rs2+":8082")
	})
	for _, s := range []struct {
		port, rs, pp string
	}{{"8081", rs1, "v1"}, {"8082", rs2, "v2"}} {
		l.Ipvsadm("-A", "-t", vip+":"+s.port, "-s", "rr", "--proxy-protocol", s.pp)
		l.Ipvsadm("-a", "-t", vip+":"+s.port, "-r", s.rs+":"+s.port, "-b")
		l.Ipvsadm("-P", "-z", l.Env["LIP"], "-t", vip+":"+s.port, "-F", l.Env["LB_RS_PORT"])
	}
	list := l.Ipvsadm("-L", "-n")
	for _, want := range []string{"TCP  " + vip + ":8081 rr ppv1\n", "TCP  " + vip + ":8082 rr ppv2\n"} {
		if !strings.Contains(list, want) {
			t.Errorf("ipvsadm -L -n lacks %q:\n%s", want, list)
		}
	}
	if save := l.Ipvsadm("-S", "-n"); !strings.Contains(save, "-A -t "+vip+":8082 -s rr --proxy-protocol v2") {
		t.Errorf("ipvsadm -S -n:\n%s", save)
	}

	curl := func(url string) string {
		t.Helper()
		return l.MustNS(l.Env["CLIENT_NS"], "curl", "-s", "--max-time", "10", "--interface", client, url)
	}
	for i := 0; i < 5; i++ {
		if got := curl("http://" + vip + ":8081/"); got != "nginx "+client+"\n" {
			t.Fatalf("nginx through v1 answered %q, want the client %s", got, client)
		}
		if got := curl("http://" + vip + ":8082/"); got != "haproxy "+client+"\n" {
			t.Fatalf("haproxy through v2 answered %q, want the client %s", got, client)
		}
	}
	sum := l.MustNS(l.Env["CLIENT_NS"], "sh", "-c", "curl -s --max-time 20 --interface "+client+" http://"+vip+":8081/big | sha256sum")
	if want := fmt.Sprintf("%x", sha256.Sum256(big)); !strings.HasPrefix(sum, want) {
		t.Fatalf("2 MB through v1: sha256 %q, want %s", sum, want)
	}
	// the SYN proxy on top of v2
	l.Ipvsadm("-E", "-t", vip+":8082", "-s", "rr", "--proxy-protocol", "v2", "-j", "enable")
	for i := 0; i < 5; i++ {
		if got := curl("http://" + vip + ":8082/"); got != "haproxy "+client+"\n" {
			t.Fatalf("haproxy through SYN proxy + v2 answered %q", got)
		}
	}
	testenv.Eventually(t, 5*time.Second, "the servers' logs", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "access.log"))
		return strings.Count(string(b), client+":") >= 6 && strings.Count(haproxyOut.String(), client+":") >= 10
	})
	b, _ := os.ReadFile(filepath.Join(dir, "access.log"))
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, client+":") || !strings.Contains(line, " "+l.Env["LIP"]+" ") {
			t.Errorf("nginx access log line %q: want the client from the header and the local address as peer", line)
		}
	}
	ctr := l.Counters()
	t.Logf("nginx log:\n%s\nhaproxy log (tail):\n%s\nlb_proxy_protocol_added %d, lb_toa_added %d", b, tailLines(haproxyOut.String(), 3),
		ctr["lb_proxy_protocol_added"], ctr["lb_toa_added"])
	if ctr["lb_proxy_protocol_added"] < 16 {
		t.Errorf("lb_proxy_protocol_added %d, want at least one per connection (16)", ctr["lb_proxy_protocol_added"])
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestProxyProtocolLabIPv6: FullNAT over IPv6 with the proxy protocol in
// front of nginx: an IPv6 client, the IPv6 VIP, rs1's IPv6 address behind
// it and the IPv6 local address, on two workers. Through v1 ("PROXY
// TCP6 …") and v2 (AF_INET6/STREAM), nginx answers with and logs the
// client's IPv6 address while its peer is the local address; a 2 MB
// download through v2 checks the shifted sequence numbers of a whole
// IPv6 stream.
func TestProxyProtocolLabIPv6(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	vip6, cip6, lip6, rs1 := l.Env["VIP6"], l.Env["CLIENT_IP6"], l.Env["LIP6"], l.Env["RS1_IP6"]
	dir, big := nginxPP(t, l, l.Env["RS1_NS"], hostPort(rs1, "8081"), hostPort(rs1, "8082"))
	for _, s := range []struct{ port, pp string }{{"8081", "v1"}, {"8082", "v2"}} {
		svc := hostPort(vip6, s.port)
		l.Ipvsadm("-A", "-t", svc, "-s", "rr", "--proxy-protocol", s.pp)
		l.Ipvsadm("-a", "-t", svc, "-r", hostPort(rs1, s.port), "-b")
		l.Ipvsadm("-P", "-z", lip6, "-t", svc, "-F", l.Env["LB_RS_PORT"])
	}
	list := l.Ipvsadm("-L", "-n")
	for _, want := range []string{"TCP  [" + vip6 + "]:8081 rr ppv1\n", "TCP  [" + vip6 + "]:8082 rr ppv2\n"} {
		if !strings.Contains(list, want) {
			t.Errorf("ipvsadm -L -n lacks %q:\n%s", want, list)
		}
	}

	curl := func(url string) string {
		t.Helper()
		return l.MustNS(l.Env["CLIENT_NS"], "curl", "-s", "--max-time", "10", "--interface", cip6, url)
	}
	const n = 5
	for i := 0; i < n; i++ {
		for _, port := range []string{"8081", "8082"} {
			if got := curl("http://" + hostPort(vip6, port) + "/"); got != "nginx "+cip6+"\n" {
				t.Fatalf("nginx through port %s answered %q, want the client %s", port, got, cip6)
			}
		}
	}
	sum := l.MustNS(l.Env["CLIENT_NS"], "sh", "-c", "curl -s --max-time 20 --interface "+cip6+" http://"+hostPort(vip6, "8082")+"/big | sha256sum")
	if want := fmt.Sprintf("%x", sha256.Sum256(big)); !strings.HasPrefix(sum, want) {
		t.Fatalf("2 MB through v2 over IPv6: sha256 %q, want %s", sum, want)
	}
	const conns = 2*n + 1
	testenv.Eventually(t, 5*time.Second, "nginx's access log", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "access.log"))
		return strings.Count(string(b), "\n") >= conns
	})
	b, _ := os.ReadFile(filepath.Join(dir, "access.log"))
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, cip6+":") || !strings.Contains(line, " "+lip6+" ") {
			t.Errorf("nginx access log line %q: want the client %s from the header and the local address %s as peer", line, cip6, lip6)
		}
	}
	ctr := l.Counters()
	t.Logf("nginx log (tail):\n%s\nlb_proxy_protocol_added %d", tailLines(string(b), 3), ctr["lb_proxy_protocol_added"])
	if ctr["lb_proxy_protocol_added"] < conns {
		t.Errorf("lb_proxy_protocol_added %d, want at least one per connection (%d)", ctr["lb_proxy_protocol_added"], conns)
	}
}
