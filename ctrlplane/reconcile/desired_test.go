package reconcile

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/ctrlplane/health"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// loopServer is a TCP server on loopback that can be stopped and restarted
// on the same port.
type loopServer struct {
	addr netip.AddrPort
	ln   net.Listener
}

func newLoopServer(t *testing.T) *loopServer {
	s := &loopServer{}
	s.listen(t, "127.0.0.1:0")
	s.addr = netip.MustParseAddrPort(s.ln.Addr().String())
	t.Cleanup(func() { s.ln.Close() })
	return s
}

func (s *loopServer) listen(t *testing.T, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
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

func (s *loopServer) stop()              { s.ln.Close() }
func (s *loopServer) start(t *testing.T) { s.listen(t, s.addr.String()) }
func tcpCheck(a netip.AddrPort) config.Check {
	return config.Check{Kind: config.TCPCheckKind, Target: a, Timeout: 200 * time.Millisecond,
		Interval: 20 * time.Millisecond, RetryInterval: 10 * time.Millisecond, Rise: 2, Fall: 2}
}

// TestDesiredFollowsHealth runs real health checks against loopback servers
// and checks the desired state the reconciler would apply: a failed server
// with inhibit_on_failure is quiesced, one without is removed, the sorry
// server comes in when none is left and goes when one recovers.
func TestDesiredFollowsHealth(t *testing.T) {
	rs1, rs2 := newLoopServer(t), newLoopServer(t)
	sorry := netip.MustParseAddrPort("127.0.0.1:1")
	key := config.ServiceKey{Proto: "TCP", Addr: netip.MustParseAddr("10.1.0.100"), Port: 80}
	svcs := []config.Service{{Key: key, Name: "web", Sched: "wrr",
		Sorry: &config.Dest{Addr: sorry, Weight: 1},
		Reals: []config.Real{
			{Dest: config.Dest{Addr: rs1.addr, Weight: 2}, Inhibit: true, Checks: []config.Check{tcpCheck(rs1.addr)}},
			{Dest: config.Dest{Addr: rs2.addr, Weight: 3}, Inhibit: false, Checks: []config.Check{tcpCheck(rs2.addr)}},
		}}}
	kicks := make(chan struct{}, 100)
	h := health.NewManager(zap.NewNop(), func() { kicks <- struct{}{} })
	defer h.Close()
	h.Update(svcs)
	dests := func() map[netip.AddrPort]DestState { return Desired(svcs, h)[key].Dests }
	is := func(want map[netip.AddrPort]DestState) func() bool {
		return func() bool {
			got := dests()
			if len(got) != len(want) {
				return false
			}
			for a, d := range want {
				if d.Fwd == "" {
					d.Fwd = config.FwdFullNAT // the service has no lb_kind
				}
				if got[a] != d {
					return false
				}
			}
			return true
		}
	}
	testenv.Eventually(t, time.Second, "both up", is(map[netip.AddrPort]DestState{rs1.addr: {Weight: 2}, rs2.addr: {Weight: 3}}))

	rs1.stop()
	testenv.Eventually(t, 3*time.Second, "rs1 quiesced (inhibit_on_failure)", is(map[netip.AddrPort]DestState{rs1.addr: {Weight: 0}, rs2.addr: {Weight: 3}}))
	rs2.stop()
	testenv.Eventually(t, 3*time.Second, "rs2 removed, sorry server in",
		is(map[netip.AddrPort]DestState{rs1.addr: {Weight: 0}, sorry: {Weight: 1}}))
	rs2.start(t)
	testenv.Eventually(t, 3*time.Second, "rs2 back after rise, sorry server out",
		is(map[netip.AddrPort]DestState{rs1.addr: {Weight: 0}, rs2.addr: {Weight: 3}}))
	rs1.start(t)
	testenv.Eventually(t, 3*time.Second, "rs1 restored", is(map[netip.AddrPort]DestState{rs1.addr: {Weight: 2}, rs2.addr: {Weight: 3}}))
	if len(kicks) != 4 {
		t.Errorf("%d reconcile kicks, want one per real-server transition (4)", len(kicks))
	}
}

func TestDesiredSorryRules(t *testing.T) {
	key := config.ServiceKey{Proto: "TCP", Addr: netip.MustParseAddr("10.1.0.100"), Port: 80}
	sorry := &config.Dest{Addr: netip.MustParseAddrPort("10.2.0.99:80"), Weight: 4}
	a := netip.MustParseAddrPort("10.2.0.11:80")
	cases := []struct {
		name      string
		reals     []config.Real
		wantSorry bool
	}{
		{"no real servers", nil, true},
		{"one up", []config.Real{{Dest: config.Dest{Addr: a, Weight: 1}}}, false},
		{"only weight 0 up: nothing serves", []config.Real{{Dest: config.Dest{Addr: a, Weight: 0}}}, true},
	}
	for _, tc := range cases {
		d := Desired([]config.Service{{Key: key, Sorry: sorry, Reals: tc.reals}}, nil)[key].Dests
		if _, ok := d[sorry.Addr]; ok != tc.wantSorry {
			t.Errorf("%s: sorry server present %v, want %v", tc.name, ok, tc.wantSorry)
		}
	}
}
