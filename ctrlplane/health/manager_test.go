package health

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gvs-lb/gvs/ctrlplane/config"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// toggleServer is a TCP server on a fixed loopback port that can be
// stopped and started again.
type toggleServer struct {
	t    *testing.T
	addr netip.AddrPort
	mu   sync.Mutex
	ln   net.Listener
}

func newToggleServer(t *testing.T) *toggleServer {
	s := &toggleServer{t: t}
	s.start("127.0.0.1:0")
	s.addr = addrPort(t, s.ln.Addr())
	t.Cleanup(s.stop)
	return s
}

func (s *toggleServer) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (s *toggleServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

func (s *toggleServer) restart() { s.start(s.addr.String()) }

func tcpCheck(target netip.AddrPort, rise, fall int) config.Check {
	return config.Check{Kind: config.TCPCheckKind, Target: target, Timeout: 200 * time.Millisecond,
		Interval: 20 * time.Millisecond, RetryInterval: 10 * time.Millisecond, Rise: rise, Fall: fall}
}

func services(reals ...config.Real) []config.Service {
	return []config.Service{{Key: testSvc, Name: "web", Reals: reals}}
}

func real(addr netip.AddrPort, inhibit bool, checks ...config.Check) config.Real {
	return config.Real{Dest: config.Dest{Addr: addr, Weight: 1}, Inhibit: inhibit, Checks: checks}
}

func newManager(t *testing.T) (*Manager, *observer.ObservedLogs, *atomic.Int32) {
	core, logs := observer.New(zapcore.InfoLevel)
	var changes atomic.Int32
	m := NewManager(zap.New(core), func() { changes.Add(1) })
	t.Cleanup(m.Close)
	return m, logs, &changes
}

// TestFallRise: a real TCP server stopped goes down after fall failures and
// comes back after rise successes; every transition is logged with the
// same keys.
func TestFallRise(t *testing.T) {
	srv := newToggleServer(t)
	m, logs, changes := newManager(t)
	m.Update(services(real(srv.addr, true, tcpCheck(srv.addr, 2, 3))))
	if !m.Up(testSvc, srv.addr) || changes.Load() != 0 {
		t.Fatal("a new real server starts up (keepalived's default)")
	}
	testenv.Eventually(t, 2*time.Second, "a first successful check", func() bool {
		s := m.Snapshot()
		return len(s) == 1 && len(s[0].Checks) == 1 && !s[0].Checks[0].LastRun.IsZero()
	})
	srv.stop()
	testenv.Eventually(t, 3*time.Second, "the real server down", func() bool { return !m.Up(testSvc, srv.addr) })
	if changes.Load() != 1 {
		t.Errorf("%d change notifications, want 1", changes.Load())
	}
	s := m.Snapshot()[0]
	if s.Up || s.Checks[0].Up || s.Checks[0].Reason == "" || s.ServiceName != "web" {
		t.Errorf("snapshot %+v", s)
	}
	srv.restart()
	testenv.Eventually(t, 3*time.Second, "the real server up again", func() bool { return m.Up(testSvc, srv.addr) })
	if changes.Load() != 2 {
		t.Errorf("%d change notifications, want 2", changes.Load())
	}
	down := logs.FilterMessage("real server down").All()
	up := logs.FilterMessage("real server up").All()
	if len(down) != 1 || len(up) != 1 {
		t.Fatalf("logged %d down and %d up transitions", len(down), len(up))
	}
	for _, e := range append(down, up...) {
		f := e.ContextMap()
		for _, k := range []string{"service", "real_server", "check", "state", "action"} {
			if _, ok := f[k]; !ok {
				t.Errorf("log %q lacks key %s: %v", e.Message, k, f)
			}
		}
		if f["service"] != "TCP 10.1.0.100:80" || f["name"] != "web" || f["real_server"] != srv.addr.String() || f["check"] != "TCP_CHECK" {
			t.Errorf("log %q fields %v", e.Message, f)
		}
	}
	if f := down[0].ContextMap(); f["state"] != "down" || f["reason"] == nil || f["action"] != "quiesce (weight 0)" {
		t.Errorf("down log %v", f)
	}
	if f := up[0].ContextMap(); f["state"] != "up" || f["action"] != "restore" {
		t.Errorf("up log %v", f)
	}
}

// TestIsolatedFailure: with fall 2, one failed answer between good ones
// never takes the server down.
func TestIsolatedFailure(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	target := addrPort(t, srv.Listener.Addr())
	c := tcpCheck(target, 1, 2)
	c.Kind, c.URLs = config.HTTPGetKind, []config.URLCheck{{Path: "/"}}
	m, logs, changes := newManager(t)
	m.Update(services(real(target, false, c)))
	testenv.Eventually(t, 3*time.Second, "8 checks", func() bool { return n.Load() >= 8 })
	if changes.Load() != 0 || !m.Up(testSvc, target) || logs.Len() != 0 {
		t.Errorf("one failure flipped the state: %d changes, logs %v", changes.Load(), logs.All())
	}
}

// TestAlpha: alpha starts a check down; it comes up after rise successes.
func TestAlpha(t *testing.T) {
	srv := newToggleServer(t)
	c := tcpCheck(srv.addr, 3, 1)
	c.Alpha = true
	m, _, changes := newManager(t)
	m.Update(services(real(srv.addr, false, c)))
	if m.Up(testSvc, srv.addr) || changes.Load() != 1 {
		t.Fatalf("alpha: up %v, %d changes", m.Up(testSvc, srv.addr), changes.Load())
	}
	testenv.Eventually(t, 3*time.Second, "up after rise", func() bool { return m.Up(testSvc, srv.addr) })
}

// TestAllChecksMustPass: a real server with two checks is down while either
// is down.
func TestAllChecksMustPass(t *testing.T) {
	good := newToggleServer(t)
	bad := newToggleServer(t)
	bad.stop()
	c2 := tcpCheck(bad.addr, 1, 1)
	c2.Kind = config.MiscCheckKind
	c2.Target = netip.AddrPort{}
	c2.Script = "exit 1"
	m, _, _ := newManager(t)
	m.Update(services(real(good.addr, false, tcpCheck(good.addr, 1, 1), c2)))
	testenv.Eventually(t, 3*time.Second, "down by its MISC_CHECK", func() bool { return !m.Up(testSvc, good.addr) })
	s := m.Snapshot()[0]
	if len(s.Checks) != 2 || s.Checks[0].Kind != "MISC_CHECK" || s.Checks[0].Up || !s.Checks[1].Up {
		t.Errorf("checks %+v", s.Checks)
	}
}

// TestUpdateKeepsState: reloading the same checks keeps their state and
// runner; a changed check of a down server starts down; removed servers
// are forgotten.
func TestUpdateKeepsState(t *testing.T) {
	srv := newToggleServer(t)
	other := newToggleServer(t)
	srv.stop()
	slow := tcpCheck(srv.addr, 5, 1)
	slow.Interval = time.Hour // one probe, then silence: state changes only by Update
	m, _, changes := newManager(t)
	m.Update(services(real(srv.addr, false, slow), real(other.addr, false, tcpCheck(other.addr, 1, 1))))
	testenv.Eventually(t, 2*time.Second, "down", func() bool { return !m.Up(testSvc, srv.addr) })
	first := m.Snapshot()[0].Checks[0].LastRun
	n := changes.Load()

	m.Update(services(real(srv.addr, false, slow), real(other.addr, false, tcpCheck(other.addr, 1, 1))))
	if m.Up(testSvc, srv.addr) || m.Snapshot()[0].Checks[0].LastRun != first || changes.Load() != n {
		t.Error("an unchanged reload restarted the check or changed the state")
	}

	srv.restart()
	changed := slow
	changed.Timeout = 300 * time.Millisecond
	m.Update(services(real(srv.addr, false, changed)))
	if m.Up(testSvc, srv.addr) {
		t.Error("a changed check of a down real server must start down")
	}
	testenv.Eventually(t, 3*time.Second, "up after rise 5", func() bool { return m.Up(testSvc, srv.addr) })
	if s := m.Snapshot(); len(s) != 1 {
		t.Errorf("removed real server still listed: %+v", s)
	}
	if !m.Up(testSvc, other.addr) {
		t.Error("an unknown real server counts as up")
	}
}

// TestSourceMissing: a check that cannot bind its source address (not on
// this host) does not count as a failure: the state stays, the reason is
// shown, and it is logged once.
func TestSourceMissing(t *testing.T) {
	srv := newToggleServer(t)
	srv.stop()
	c := tcpCheck(srv.addr, 1, 1)
	c.Bind = netip.MustParseAddr("192.0.2.1") // TEST-NET-1: not on this host
	m, logs, changes := newManager(t)
	m.Update(services(real(srv.addr, false, c)))
	var first time.Time
	testenv.Eventually(t, 2*time.Second, "a probe", func() bool {
		first = m.Snapshot()[0].Checks[0].LastRun
		return !first.IsZero() && logs.FilterMessage("health check cannot run: state kept").Len() == 1
	})
	// more probes: still one log line, still up
	testenv.Eventually(t, 2*time.Second, "a later probe", func() bool {
		return m.Snapshot()[0].Checks[0].LastRun.After(first)
	})
	s := m.Snapshot()[0]
	if !s.Up || changes.Load() != 0 || !strings.Contains(s.Checks[0].Reason, "cannot assign requested address") ||
		logs.FilterMessage("health check cannot run: state kept").Len() != 1 {
		t.Errorf("state %+v, %d changes, logs %v", s, changes.Load(), logs.All())
	}
}
