package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const full = `
dataplane: {socket: /run/gvs-lab/dataplane.sock, poll_interval: 500ms, resync_interval: 0, call_timeout: 2}
log: {level: debug, format: console}
cpus: [0, 1]
http: {listen: "127.0.0.1:0"}
global_defs:
  timeouts: {tcp: 900, tcpfin: 2m, udp: 300}
  bindto: 10.2.0.3
virtual_servers:
  - name: web
    vip: 10.1.0.100
    port: 80
    lb_algo: WRR
    lb_kind: FNAT
    delay_loop: 2
    inhibit_on_failure: true
    local_addresses: [{ip: 10.2.0.100, interface: dp1}, {ip: 10.2.0.101}]
    sorry_server: {ip: 10.2.0.99, port: 8080, weight: 2}
    real_servers:
      - ip: 10.2.0.11
        port: 8080
        weight: 3
        uthreshold: 100
        lthreshold: 50
        HTTP_GET:
          url:
            - {path: /health, status_code: "200-299,302", regex: "ok"}
            - {path: /, status_code: 200, digest: 0123456789ABCDEF0123456789abcdef}
          virtualhost: www.example.com
          connect_timeout: 0.5
          retry: 2
          delay_before_retry: 250ms
      - ip: 10.2.0.12
        port: 8080
        inhibit_on_failure: false
        TCP_CHECK: {connect_port: 8081, bindto: 10.2.0.4, fall: 3, rise: 2, alpha: true, delay_loop: 1}
        SSL_GET: {}
        MISC_CHECK: {misc_path: " /bin/check.sh arg "}
  - protocol: udp
    vip: fd00:1::100
    port: 53
    lb_algo: sh
    sched_flags: [sh-port, sh-fallback, sh-port]
    local_addresses: [{ip: "fd00:2::100", interface: dp1}]
    real_servers:
      - ip: "fd00:2::11"
        port: 53
        UDP_CHECK: {payload_hex: "0a 0b", regex: "^x", connect_timeout: 1}
      - ip: "fd00:2::12"
        port: 53
        weight: 0
        UDP_CHECK: {payload: ping, require_reply: false}
`

func TestParseFull(t *testing.T) {
	c, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.Dataplane.PollInterval.D() != 500*time.Millisecond || c.Dataplane.ResyncInterval.D() != 0 || c.Dataplane.CallTimeout.D() != 2*time.Second {
		t.Errorf("dataplane %+v", c.Dataplane)
	}
	if got := c.Timeouts(); got != (Timeouts{TCP: 900 * time.Second, TCPFin: 2 * time.Minute, UDP: 300 * time.Second}) {
		t.Errorf("timeouts %+v", got)
	}
	if len(c.Services) != 2 {
		t.Fatalf("%d services", len(c.Services))
	}
	web := c.Services[0]
	if web.Key.String() != "TCP 10.1.0.100:80" || web.Name != "web" || web.Sched != "wrr" || !web.Inhibit {
		t.Errorf("web %+v", web)
	}
	if !reflect.DeepEqual(web.LAddrs, []LAddr{{Addr: netip.MustParseAddr("10.2.0.100"), Dev: "dp1"}, {Addr: netip.MustParseAddr("10.2.0.101")}}) {
		t.Errorf("laddrs %+v", web.LAddrs)
	}
	if web.Sorry == nil || web.Sorry.Addr.String() != "10.2.0.99:8080" || web.Sorry.Weight != 2 {
		t.Errorf("sorry %+v", web.Sorry)
	}
	r1, r2 := web.Reals[0], web.Reals[1]
	if r1.Weight != 3 || r1.Upper != 100 || r1.Lower != 50 || !r1.Inhibit || len(r1.Checks) != 1 {
		t.Errorf("rs1 %+v", r1)
	}
	h := r1.Checks[0]
	want := Check{Kind: HTTPGetKind, Target: netip.MustParseAddrPort("10.2.0.11:8080"), Bind: netip.MustParseAddr("10.2.0.3"),
		Timeout: 500 * time.Millisecond, Interval: 2 * time.Second, RetryInterval: 250 * time.Millisecond, Rise: 1, Fall: 3,
		URLs: []URLCheck{{Path: "/health", Codes: StatusCodes{{200, 299}, {302, 302}}, Regex: "ok"},
			{Path: "/", Codes: StatusCodes{{200, 200}}, Digest: "0123456789abcdef0123456789abcdef"}},
		VirtualHost: "www.example.com"}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("HTTP_GET\n got %+v\nwant %+v", h, want)
	}
	if r2.Weight != 1 || r2.Inhibit || len(r2.Checks) != 3 {
		t.Fatalf("rs2 %+v", r2)
	}
	tcp, ssl, misc := r2.Checks[0], r2.Checks[1], r2.Checks[2]
	if tcp.Kind != TCPCheckKind || tcp.Target.String() != "10.2.0.12:8081" || tcp.Bind.String() != "10.2.0.4" ||
		tcp.Fall != 3 || tcp.Rise != 2 || !tcp.Alpha || tcp.Interval != time.Second || tcp.RetryInterval != time.Second ||
		tcp.Timeout != DefaultConnectTimeout {
		t.Errorf("TCP_CHECK %+v", tcp)
	}
	if ssl.Kind != SSLGetKind || len(ssl.URLs) != 1 || ssl.URLs[0].Path != "/" || !ssl.URLs[0].Codes.Match(204) ||
		ssl.URLs[0].Codes.Match(302) || ssl.Fall != 2 {
		t.Errorf("SSL_GET defaults %+v", ssl)
	}
	if misc.Kind != MiscCheckKind || misc.Script != "/bin/check.sh arg" || misc.Timeout != 2*time.Second || misc.Target.IsValid() {
		t.Errorf("MISC_CHECK %+v (misc_timeout defaults to delay_loop)", misc)
	}
	dns := c.Services[1]
	if dns.Key.String() != "UDP [fd00:1::100]:53" || !reflect.DeepEqual(dns.SchedFlags, []string{"sh-fallback", "sh-port"}) {
		t.Errorf("dns %+v", dns)
	}
	u1, u2 := dns.Reals[0].Checks[0], dns.Reals[1].Checks[0]
	if string(u1.Payload) != "\x0a\x0b" || !u1.RequireReply || u1.Regex != "^x" || u1.Bind.IsValid() {
		t.Errorf("UDP_CHECK 1 %+v (the IPv4 global bindto must not apply to IPv6)", u1)
	}
	if string(u2.Payload) != "ping" || u2.RequireReply || dns.Reals[1].Weight != 0 {
		t.Errorf("UDP_CHECK 2 %+v", u2)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(`
virtual_servers:
  - vip: 10.1.0.100
    port: 80
    local_addresses: [{ip: 10.2.0.100}]
    real_servers: [{ip: 10.2.0.11, port: 8080, TCP_CHECK: {}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Dataplane.Socket != DefaultSocket || c.HTTP.Listen != DefaultListen || c.Log.Level != "info" ||
		c.Dataplane.ResyncInterval.D() != 30*time.Second || c.Dataplane.PollInterval.D() != time.Second {
		t.Errorf("process defaults %+v %+v", c.Dataplane, c.HTTP)
	}
	s := c.Services[0]
	if s.Key.Proto != "TCP" || s.Sched != "wlc" || s.Inhibit || s.Sorry != nil {
		t.Errorf("service defaults %+v", s)
	}
	r := s.Reals[0]
	chk := r.Checks[0]
	if r.Weight != 1 || chk.Interval != DefaultDelayLoop || chk.Timeout != DefaultConnectTimeout ||
		chk.RetryInterval != DefaultDelayBeforeRetry || chk.Fall != 2 || chk.Rise != 1 || chk.Alpha {
		t.Errorf("real server defaults %+v %+v", r, chk)
	}
	if empty, err := Parse(nil); err != nil || len(empty.Services) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

// TestErrors: every error path names where (service, real server, field)
// and says what to do.
func TestErrors(t *testing.T) {
	svc := func(body string) string {
		return "virtual_servers:\n  - vip: 10.1.0.100\n    port: 80\n    local_addresses: [{ip: 10.2.0.100}]\n" + body
	}
	rs := func(body string) string {
		return svc("    real_servers:\n      - ip: 10.2.0.11\n        port: 8080\n" + body)
	}
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top key", "virtual_server: []", []string{"line 1", "unknown key virtual_server", "the top level"}},
		{"unknown rs key", rs("        wieght: 3\n"), []string{"line 8", "unknown key wieght", "a real server"}},
		{"unknown check key", rs("        TCP_CHECK: {conect_timeout: 3}\n"), []string{"unknown key conect_timeout", "TCP_CHECK"}},
		{"bad duration", rs("        TCP_CHECK: {connect_timeout: soon}\n"), []string{`"soon" is not a duration`, "500ms"}},
		{"negative duration", rs("        TCP_CHECK: {delay_loop: -1}\n"), []string{"out of range"}},
		{"status code", rs("        HTTP_GET: {url: [{status_code: abc}]}\n"), []string{`status_code "abc"`, "200-299"}},
		{"status range", rs("        HTTP_GET: {url: [{status_code: 299-200}]}\n"), []string{`status_code "299-200"`}},
		{"poll", "dataplane: {poll_interval: 1ms}", []string{"dataplane.poll_interval", "at least 10ms"}},
		{"log level", "log: {level: loud}", []string{"log.level", "debug, info, warn or error"}},
		{"log format", "log: {format: xml}", []string{"log.format", "json or console"}},
		{"listen", "http: {listen: nowhere}", []string{"http.listen", "host:port"}},
		{"listen port", "http: {listen: 'x:99999'}", []string{"http.listen", "0-65535"}},
		{"cpus", "cpus: [0, 0]", []string{"cpus", "listed twice"}},
		{"cpus range", "cpus: [-1]", []string{"cpus", "0-1023"}},
		{"timeout frac", "global_defs: {timeouts: {tcp: 1.5}}", []string{"global_defs.timeouts.tcp", "whole seconds"}},
		{"state timeout frac", "global_defs: {timeouts: {syn_recv: 1.5}}", []string{"global_defs.timeouts.syn_recv", "whole seconds"}},
		{"negative timeout", "global_defs: {timeouts: {time_wait: -5}}", []string{"out of range"}},
		{"timeout state name", "global_defs: {timeouts: {synrecv: 5}}", []string{"synrecv", "global_defs.timeouts"}},
		{"bindto", "global_defs: {bindto: x}", []string{"global_defs.bindto", "not an IP address"}},
		{"protocol", "virtual_servers: [{protocol: SCTP, vip: 10.1.0.100, port: 80}]", []string{"virtual_servers[0]", `protocol "SCTP"`, "TCP or UDP"}},
		{"vip missing", "virtual_servers: [{name: web, port: 80}]", []string{`virtual_server "web"`, "vip missing"}},
		{"vip bad", "virtual_servers: [{vip: 224.0.0.1, port: 80}]", []string{"virtual_servers[0]", "vip", "unicast"}},
		{"port missing", "virtual_servers: [{vip: 10.1.0.100}]", []string{"virtual_servers[0]", "port missing", "persistence"}},
		{"port range", "virtual_servers: [{vip: 10.1.0.100, port: 70000}]", []string{"virtual_servers[0]", "port 70000", "1-65535"}},
		{"lb_algo", svc("    lb_algo: fastest\n"), []string{"virtual_server TCP 10.1.0.100:80", `lb_algo "fastest"`, "wrr"}},
		{"lb_kind DR with laddrs", svc("    lb_kind: DR\n"), []string{"TCP 10.1.0.100:80", "local_addresses with lb_kind DR", "remove local_addresses"}},
		{"lb_kind NAT with laddrs", svc("    lb_kind: NAT\n"), []string{"local_addresses with lb_kind NAT", "remove local_addresses"}},
		{"lb_kind TUN", svc("    lb_kind: TUN\n"), []string{"local_addresses with lb_kind TUN", "remove local_addresses"}},
		{"lb_kind SNAT", svc("    lb_kind: snat\n"), []string{"lb_kind snat", "not supported", "ipvsadm -A -H MATCH", "FULLNAT, NAT, DR or TUN"}},
		{"lb_kind junk", svc("    lb_kind: magic\n"), []string{`lb_kind "magic"`, "FULLNAT", "DR"}},
		{"sched flag", svc("    sched_flags: [flag-9]\n"), []string{`sched_flags "flag-9"`, "sh-port"}},
		{"sched flag algo", svc("    sched_flags: [mh-port]\n"), []string{"sched_flags mh-port", "only for lb_algo mh"}},
		{"persistence frac", svc("    persistence_timeout: 1.5\n"), []string{"TCP 10.1.0.100:80", "persistence_timeout 1.5s", "whole seconds, at least 1"}},
		{"persistence ms", svc("    persistence_timeout: 500ms\n"), []string{"persistence_timeout 500ms", "whole seconds, at least 1"}},
		{"persistence huge", svc("    persistence_timeout: 2000000h\n"), []string{"persistence_timeout", "whole seconds"}},
		{"granularity alone", svc("    persistence_granularity: 255.255.255.0\n"), []string{"TCP 10.1.0.100:80", "persistence_granularity 255.255.255.0 without persistence", "add persistence_timeout"}},
		{"granularity holes", svc("    persistence_timeout: 300\n    persistence_granularity: 255.0.255.0\n"), []string{`persistence_granularity "255.0.255.0"`, "not contiguous", "255.255.255.0"}},
		{"granularity bits", svc("    persistence_timeout: 300\n    persistence_granularity: 255.255.255.250\n"), []string{"not contiguous"}},
		{"granularity junk", svc("    persistence_timeout: 300\n    persistence_granularity: wide\n"), []string{`persistence_granularity "wide"`, "255.255.255.0"}},
		{"granularity range", svc("    persistence_timeout: 300\n    persistence_granularity: 33\n"), []string{"prefix length 33", "1-32"}},
		{"granularity zero", svc("    persistence_timeout: 300\n    persistence_granularity: 0.0.0.0\n"), []string{"persistence_granularity 0.0.0.0", "0 bits", "1-32"}},
		{"granularity family", svc("    persistence_timeout: 300\n    persistence_granularity: 'ffff::'\n"), []string{"an IPv6 mask for an IPv4 service"}},
		{"granularity v6", "virtual_servers: [{vip: 'fd00:1::100', port: 80, persistence_timeout: 300, persistence_granularity: 129, local_addresses: [{ip: 'fd00:2::100'}]}]",
			[]string{"TCP [fd00:1::100]:80", "prefix length 129", "1-128"}},
		{"granularity v6 mask", "virtual_servers: [{vip: 'fd00:1::100', port: 80, persistence_timeout: 300, persistence_granularity: 'ffff:ff00:ffff::', local_addresses: [{ip: 'fd00:2::100'}]}]",
			[]string{"not contiguous", "ffff:ffff:ffff:ffff::"}},
		{"ops tcp", svc("    ops: true\n"), []string{"TCP 10.1.0.100:80", "ops", "UDP services only", "protocol: UDP"}},
		{"ops mid_flow", "virtual_servers: [{protocol: UDP, vip: 10.1.0.100, port: 53, lb_algo: mh, mid_flow: true, ops: true, local_addresses: [{ip: 10.2.0.100}]}]",
			[]string{"UDP 10.1.0.100:53", "ops and mid_flow", "remove mid_flow"}},
		{"port 0 without persistence", "virtual_servers: [{vip: 10.1.0.100, port: 0}]", []string{"virtual_servers[0]", "port 0 (all ports) needs persistence", "add persistence_timeout"}},
		{"rs port 0 on a port service", svc("    real_servers: [{ip: 10.2.0.11, port: 0}]\n"), []string{"real_servers[0]", "port 0 (the port the client asked for) is only for a port-0 service"}},
		{"sorry port 0 on a port service", svc("    sorry_server: {ip: 10.2.0.9, port: 0}\n"), []string{"sorry_server", "port 0", "only for a port-0 service"}},
		{"check of a port-0 rs", "virtual_servers: [{vip: 10.1.0.100, port: 0, persistence_timeout: 300, local_addresses: [{ip: 10.2.0.100}], real_servers: [{ip: 10.2.0.11, port: 0, TCP_CHECK: {}}]}]",
			[]string{"TCP 10.1.0.100:0", "real_server 10.2.0.11:0: TCP_CHECK", "connect_port missing", "connect_port: 80"}},
		{"http check of a port-0 rs", "virtual_servers: [{vip: 10.1.0.100, port: 0, persistence_timeout: 300, local_addresses: [{ip: 10.2.0.100}], real_servers: [{ip: 10.2.0.11, port: 0, HTTP_GET: {connect_ip: 10.2.0.12}}]}]",
			[]string{"real_server 10.2.0.11:0: HTTP_GET", "connect_port missing"}},
		{"no laddr", "virtual_servers: [{vip: 10.1.0.100, port: 80}]", []string{"TCP 10.1.0.100:80", "local_addresses missing", "FULLNAT needs"}},
		{"laddr bad", "virtual_servers: [{vip: 10.1.0.100, port: 80, local_addresses: [{ip: foo}]}]", []string{"local_addresses[0].ip \"foo\""}},
		{"laddr family", "virtual_servers: [{vip: 10.1.0.100, port: 80, local_addresses: [{ip: 'fd00::1'}]}]", []string{"local_addresses[0].ip fd00::1", "family", "IPv4"}},
		{"laddr twice", "virtual_servers: [{vip: 10.1.0.100, port: 80, local_addresses: [{ip: 10.2.0.1}, {ip: 10.2.0.1}]}]", []string{"local_addresses[1].ip 10.2.0.1", "twice"}},
		{"dup service", svc("") + "  - vip: 10.1.0.100\n    port: 80\n    local_addresses: [{ip: 10.2.0.100}]\n", []string{"virtual_servers[1]", "TCP 10.1.0.100:80 is defined twice", "merge"}},
		{"rs ip missing", svc("    real_servers: [{port: 80}]\n"), []string{"real_servers[0]", "ip missing"}},
		{"rs ip bad", svc("    real_servers: [{ip: 10.2.0, port: 80}]\n"), []string{"real_servers[0]", `ip "10.2.0"`}},
		{"rs family", svc("    real_servers: [{ip: 'fd00::1', port: 80}]\n"), []string{"real_servers[0]", "NAT64"}},
		{"rs port", svc("    real_servers: [{ip: 10.2.0.11}]\n"), []string{"real_servers[0]", "port missing"}},
		{"rs twice", svc("    real_servers: [{ip: 10.2.0.11, port: 80}, {ip: 10.2.0.11, port: 80}]\n"), []string{"real_server 10.2.0.11:80", "twice"}},
		{"weight", rs("        weight: -1\n"), []string{"real_server 10.2.0.11:8080", "weight -1", "0-65535"}},
		{"threshold", rs("        uthreshold: 5\n        lthreshold: 10\n"), []string{"real_server 10.2.0.11:8080", "lthreshold 10 above uthreshold 5"}},
		{"threshold range", rs("        uthreshold: 5000000000\n"), []string{"uthreshold 5000000000"}},
		{"retry and fall", rs("        TCP_CHECK: {retry: 1, fall: 2}\n"), []string{"real_server 10.2.0.11:8080: TCP_CHECK", "retry and fall", "fall = retry + 1"}},
		{"retry range", rs("        TCP_CHECK: {retry: -1}\n"), []string{"TCP_CHECK", "retry -1"}},
		{"fall range", rs("        TCP_CHECK: {fall: 1000}\n"), []string{"TCP_CHECK", "fall 1000", "1-100"}},
		{"rise range", rs("        TCP_CHECK: {rise: -2}\n"), []string{"TCP_CHECK", "rise -2"}},
		{"delay short", rs("        TCP_CHECK: {delay_loop: 1ms}\n"), []string{"TCP_CHECK", "delay_loop 1ms", "at least 10ms"}},
		{"connect_ip", rs("        TCP_CHECK: {connect_ip: x}\n"), []string{"TCP_CHECK", `connect_ip "x"`}},
		{"connect_port", rs("        TCP_CHECK: {connect_port: 99999}\n"), []string{"TCP_CHECK", "connect_port 99999"}},
		{"bindto", rs("        TCP_CHECK: {bindto: 'fd00::3'}\n"), []string{"TCP_CHECK", "bindto fd00::3", "family"}},
		{"bindto bad", rs("        TCP_CHECK: {bindto: me}\n"), []string{"TCP_CHECK", `bindto "me"`}},
		{"url path", rs("        HTTP_GET: {url: [{path: health}]}\n"), []string{"HTTP_GET", `url[0].path "health"`, "starting with /"}},
		{"url regex", rs("        SSL_GET: {url: [{path: /, regex: '['}]}\n"), []string{"SSL_GET", "url[0].regex", "fix the regular expression"}},
		{"url digest", rs("        HTTP_GET: {url: [{path: /, digest: abc}]}\n"), []string{"HTTP_GET", "url[0].digest", "32 hex digits"}},
		{"udp both payloads", rs("        UDP_CHECK: {payload: a, payload_hex: '61'}\n"), []string{"UDP_CHECK", "payload and payload_hex"}},
		{"udp hex", rs("        UDP_CHECK: {payload_hex: zz}\n"), []string{"UDP_CHECK", `payload_hex "zz"`}},
		{"udp regex", rs("        UDP_CHECK: {regex: '('}\n"), []string{"UDP_CHECK", "regex", "fix the regular expression"}},
		{"udp regex no reply", rs("        UDP_CHECK: {regex: a, require_reply: false}\n"), []string{"UDP_CHECK", "regex needs a reply"}},
		{"misc path", rs("        MISC_CHECK: {misc_timeout: 3}\n"), []string{"MISC_CHECK", "misc_path missing"}},
		{"sorry ip", svc("    sorry_server: {ip: nope, port: 80}\n"), []string{"sorry_server.ip \"nope\""}},
		{"sorry family", svc("    sorry_server: {ip: 'fd00::1', port: 80}\n"), []string{"sorry_server.ip fd00::1", "family"}},
		{"sorry port", svc("    sorry_server: {ip: 10.2.0.9}\n"), []string{"sorry_server", "port missing"}},
		{"sorry weight", svc("    sorry_server: {ip: 10.2.0.9, port: 80, weight: 0}\n"), []string{"sorry_server.weight 0", "1-65535"}},
		{"sorry is real", rs("    sorry_server: {ip: 10.2.0.11, port: 8080}\n"), []string{"sorry_server 10.2.0.11:8080 is also a real_server"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestAllErrorsReported(t *testing.T) {
	_, err := Parse([]byte(`
log: {level: loud}
virtual_servers:
  - {vip: 10.1.0.100, port: 80, lb_kind: DR, lb_algo: x, local_addresses: [{ip: 10.2.0.1}]}
`))
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("want three errors, one per line: %v", err)
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cp.yaml")
	if _, err := Load(p); err == nil {
		t.Error("missing file accepted")
	}
	os.WriteFile(p, []byte("cpus: [x]"), 0o644)
	if _, err := Load(p); err == nil || !strings.HasPrefix(err.Error(), p+": ") {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestStatusCodes(t *testing.T) {
	var s StatusCodes
	if !s.Match(200) || !s.Match(299) || s.Match(300) || s.String() != "200-299" {
		t.Error("empty set is 200-299")
	}
	s = StatusCodes{{200, 200}, {300, 399}}
	if !s.Match(301) || s.Match(404) || s.String() != "200,300-399" {
		t.Errorf("%v", s)
	}
}
