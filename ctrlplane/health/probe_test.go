package health

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/ctrlplane/config"
)

var testSvc = config.ServiceKey{Proto: "TCP", Addr: netip.MustParseAddr("10.1.0.100"), Port: 80}

func probe(t *testing.T, c config.Check) error {
	t.Helper()
	if c.Timeout == 0 {
		c.Timeout = time.Second
	}
	p, err := NewProber(testSvc, c.Target, c)
	if err != nil {
		t.Fatal(err)
	}
	return p.Probe(context.Background())
}

func addrPort(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	target := addrPort(t, ln.Addr())
	if err := probe(t, config.Check{Kind: config.TCPCheckKind, Target: target}); err != nil {
		t.Errorf("listening server: %v", err)
	}
	<-peers
	// bindto: the server sees the configured source address
	if err := probe(t, config.Check{Kind: config.TCPCheckKind, Target: target, Bind: netip.MustParseAddr("127.0.0.2")}); err != nil {
		t.Errorf("with bindto: %v", err)
	}
	if p := <-peers; !strings.HasPrefix(p, "127.0.0.2:") {
		t.Errorf("bindto 127.0.0.2: server saw %s", p)
	}
	ln.Close()
	err = probe(t, config.Check{Kind: config.TCPCheckKind, Target: target})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("closed port: %v, want connection refused", err)
	}
}

func TestHTTPCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, "rs1 healthy")
		case "/host":
			fmt.Fprint(w, r.Host)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			http.Error(w, "broken", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	target := addrPort(t, srv.Listener.Addr())
	sum := md5.Sum([]byte("rs1 healthy"))
	digest := hex.EncodeToString(sum[:])
	cases := []struct {
		name  string
		urls  []config.URLCheck
		vhost string
		want  string // "" healthy, else part of the error
	}{
		{"2xx", []config.URLCheck{{Path: "/ok"}}, "", ""},
		{"500", []config.URLCheck{{Path: "/broken"}}, "", "status 500, want 200-299"},
		{"500 allowed", []config.URLCheck{{Path: "/broken", Codes: config.StatusCodes{{Lo: 500, Hi: 503}}}}, "", ""},
		{"redirect is judged, not followed", []config.URLCheck{{Path: "/moved"}}, "", "status 302"},
		{"redirect allowed", []config.URLCheck{{Path: "/moved", Codes: config.StatusCodes{{Lo: 302, Hi: 302}}}}, "", ""},
		{"regex", []config.URLCheck{{Path: "/ok", Regex: "rs[0-9] healthy"}}, "", ""},
		{"regex mismatch", []config.URLCheck{{Path: "/ok", Regex: "^down"}}, "", `does not match "^down"`},
		{"digest", []config.URLCheck{{Path: "/ok", Digest: digest}}, "", ""},
		{"digest mismatch", []config.URLCheck{{Path: "/ok", Digest: strings.Repeat("0", 32)}}, "", "body digest " + digest},
		{"every url", []config.URLCheck{{Path: "/ok"}, {Path: "/broken"}}, "", "GET /broken: status 500"},
		{"virtualhost", []config.URLCheck{{Path: "/host", Regex: "^www.example.com$"}}, "www.example.com", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := probe(t, config.Check{Kind: config.HTTPGetKind, Target: target, URLs: tc.urls, VirtualHost: tc.vhost})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unhealthy: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	// a server that never answers: the check times out
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	start := time.Now()
	err := probe(t, config.Check{Kind: config.HTTPGetKind, Target: addrPort(t, ln.Addr()), Timeout: 200 * time.Millisecond,
		URLs: []config.URLCheck{{Path: "/"}}})
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") || time.Since(start) > 2*time.Second {
		t.Errorf("silent server: %v after %s", err, time.Since(start))
	}
}

func TestSSLCheck(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "secure")
	}))
	defer srv.Close()
	target := addrPort(t, srv.Listener.Addr())
	c := config.Check{Kind: config.SSLGetKind, Target: target, URLs: []config.URLCheck{{Path: "/", Regex: "secure"}}}
	if err := probe(t, c); err != nil {
		t.Errorf("SSL_GET on a self-signed server: %v", err)
	}
	c.Kind = config.HTTPGetKind // plain HTTP to a TLS port fails
	if err := probe(t, c); err == nil {
		t.Error("HTTP_GET to a TLS server passed")
	}
}

// udpServer answers each datagram with prefix+datagram, or not at all.
func udpServer(t *testing.T, prefix string, answer bool) netip.AddrPort {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if answer {
				pc.WriteTo(append([]byte(prefix), buf[:n]...), from)
			}
		}
	}()
	return addrPort(t, pc.LocalAddr())
}

func TestUDPCheck(t *testing.T) {
	echo := udpServer(t, "rs1 ", true)
	silent := udpServer(t, "", false)
	closed := func() netip.AddrPort {
		pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
		ap := addrPort(t, pc.LocalAddr())
		pc.Close()
		return ap
	}()
	to := 300 * time.Millisecond
	cases := []struct {
		name string
		c    config.Check
		want string
	}{
		{"reply", config.Check{Target: echo, Payload: []byte("ping"), RequireReply: true}, ""},
		{"reply regex", config.Check{Target: echo, Payload: []byte("ping"), RequireReply: true, Regex: "^rs1 ping$"}, ""},
		{"reply mismatch", config.Check{Target: echo, Payload: []byte("ping"), RequireReply: true, Regex: "^pong"}, "does not match"},
		{"no reply", config.Check{Target: silent, Payload: []byte("ping"), RequireReply: true}, "no reply within 300ms"},
		{"no reply needed", config.Check{Target: silent, Payload: []byte("ping")}, ""},
		{"port unreachable", config.Check{Target: closed, Payload: []byte("ping"), RequireReply: true}, "port unreachable"},
		{"port unreachable without reply", config.Check{Target: closed, Payload: []byte("ping")}, "port unreachable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Kind, tc.c.Timeout = config.UDPCheckKind, to
			err := probe(t, tc.c)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unhealthy: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func script(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "check.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMiscCheck(t *testing.T) {
	rs := netip.MustParseAddrPort("10.2.0.11:8080")
	run := func(s string, timeout time.Duration) error {
		c := config.Check{Kind: config.MiscCheckKind, Script: s, Timeout: timeout}
		p, err := NewProber(testSvc, rs, c)
		if err != nil {
			t.Fatal(err)
		}
		return p.Probe(context.Background())
	}
	if err := run(script(t, `[ "$GVS_REAL_SERVER_IP" = 10.2.0.11 ] && [ "$GVS_REAL_SERVER_PORT" = 8080 ] && [ "$GVS_VIRTUAL_SERVER" = "TCP 10.1.0.100:80" ]`), time.Second); err != nil {
		t.Errorf("exit 0 with the real server in the environment: %v", err)
	}
	if err := run(script(t, "echo backend says no >&2; exit 1"), time.Second); err == nil ||
		!strings.Contains(err.Error(), "exit status 1") || !strings.Contains(err.Error(), "backend says no") {
		t.Errorf("exit 1: %v", err)
	}
	if err := run(script(t, "exit 2"), time.Second); err == nil {
		t.Error("exit 2 passed")
	}
	if err := run(script(t, "true")+" extra-arg", time.Second); err != nil {
		t.Errorf("a command line with arguments: %v", err)
	}
	// a hung script and its children are killed at misc_timeout
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	err := run(script(t, "sleep 30 & echo $! > "+pidFile+"; wait"), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed after misc_timeout 300ms") || time.Since(start) > 3*time.Second {
		t.Fatalf("hung script: %v after %s", err, time.Since(start))
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 {
		t.Fatal("script wrote no pid")
	}
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the script's child %d survived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper is dead).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func TestMachine(t *testing.T) {
	type step struct {
		ok      bool
		changed bool
		up      bool
		pending bool
	}
	cases := []struct {
		name       string
		rise, fall int
		up         bool
		steps      []step
	}{
		{"fall 3", 1, 3, true, []step{
			{false, false, true, true}, {false, false, true, true}, {false, true, false, false}, {false, false, false, false}}},
		{"a success resets the fall count", 1, 2, true, []step{
			{false, false, true, true}, {true, false, true, false}, {false, false, true, true}, {false, true, false, false}}},
		{"rise 2", 2, 1, false, []step{
			{true, false, false, true}, {true, true, true, false}, {true, false, true, false}}},
		{"a failure resets the rise count", 2, 1, false, []step{
			{true, false, false, true}, {false, false, false, false}, {true, false, false, true}, {true, true, true, false}}},
		{"fall 1 rise 1", 1, 1, true, []step{{false, true, false, false}, {true, true, true, false}}},
		{"counts below 1 are 1", 0, 0, true, []step{{false, true, false, false}, {true, true, true, false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(tc.rise, tc.fall, tc.up)
			for i, s := range tc.steps {
				if c := m.Observe(s.ok); c != s.changed || m.Up() != s.up || m.Pending() != s.pending {
					t.Fatalf("step %d (ok=%v): changed %v up %v pending %v, want %v %v %v", i, s.ok, c, m.Up(), m.Pending(), s.changed, s.up, s.pending)
				}
			}
		})
	}
}
