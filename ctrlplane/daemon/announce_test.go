package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap/zaptest"

	"github.com/gvs-lb/gvs/ctrlplane/internal/bgptest"
	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// TestAnnounceDrain runs the control plane with a BGP neighbour (a GoBGP
// router on loopback) against a real in-process dataplane and a real HTTP
// server: the VIP is announced with the KNI next hop once its service is in
// the dataplane with a healthy real server; drain over the control socket
// withdraws it and keeps the local address; undrain announces it again; the
// real server failing its check withdraws it; /state and /metrics show
// each step; stopping the control plane withdraws everything.
func TestAnnounceDrain(t *testing.T) {
	sock := dptest.Socket(t)
	dptest.Start(t, sock, 1)
	rs := newRealServer(t)
	r := bgptest.Start(t, "127.0.0.1", 65001)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "controlplane.yaml")
	y := fmt.Sprintf(`
dataplane: {socket: %s, poll_interval: 50ms}
http: {listen: "127.0.0.1:0"}
control: {socket: %s}
announce:
  local_addresses: true
  interval: 100ms
  bgp:
    local_as: 65001
    router_id: 10.11.0.21
    neighbors: [{address: %s, port: %d, peer_as: 65000, local_address: 127.0.0.1, hold_time: 9}]
virtual_servers:
  - vip: 10.1.0.100
    port: 80
    local_addresses: [{ip: 10.2.0.100, interface: dp1}]
    real_servers:
      - {ip: 127.0.0.1, port: %s, HTTP_GET: {url: [{path: /}], delay_loop: 50ms, connect_timeout: 0.5, retry: 0, delay_before_retry: 20ms}}
`, sock, filepath.Join(dir, "ctl.sock"), r.Addr, r.Port, rs.port())
	if err := os.WriteFile(cfgPath, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Start(Options{ConfigPath: cfgPath, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			d.Close()
		}
	}()
	nh := netip.MustParseAddr("10.11.0.21")
	vip, lip := netip.MustParsePrefix("10.1.0.100/32"), netip.MustParsePrefix("10.2.0.100/32")
	both := map[netip.Prefix]netip.Addr{vip: nh, lip: nh}
	onlyLIP := map[netip.Prefix]netip.Addr{lip: nh}
	routes := func(want map[netip.Prefix]netip.Addr) func() bool {
		return func() bool { return maps.Equal(r.Routes(t), want) }
	}
	testenv.Eventually(t, 15*time.Second, "VIP and local address at the router", routes(both))
	ctl := unixClient(d.ControlSocket())
	post := func(path string) string {
		t.Helper()
		resp, err := ctl.Post("http://gvs-controlplane"+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s %s", path, resp.Status, b)
		}
		return string(b)
	}
	type state struct {
		Announce struct {
			Draining bool
			Prefixes []struct {
				Prefix      string
				Announce    bool
				Reason      string
				AnnouncedBy []string `json:"announced_by"`
			}
			Protocols []struct {
				Protocol string
				Peers    []struct{ State string }
			}
		}
	}
	getState := func() state {
		t.Helper()
		resp, err := ctl.Get("http://gvs-controlplane/state")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s state
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	announced := func() map[string]float64 {
		t.Helper()
		resp, err := http.Get("http://" + d.Addr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, m := range fams["gvs_announced"].GetMetric() {
			var k []string
			for _, l := range m.GetLabel() {
				k = append(k, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(k, ",")] = m.GetGauge().GetValue()
		}
		out["draining"] = fams["gvs_announce_draining"].GetMetric()[0].GetGauge().GetValue()
		return out
	}
	if got, want := announced(), map[string]float64{"prefix=10.1.0.100/32,protocol=bgp": 1, "prefix=10.2.0.100/32,protocol=bgp": 1, "draining": 0}; !maps.Equal(got, want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
	if s := getState(); len(s.Announce.Protocols) != 1 || len(s.Announce.Protocols[0].Peers) != 1 || s.Announce.Protocols[0].Peers[0].State != "established" {
		t.Errorf("state's protocols: %+v", s.Announce.Protocols)
	}

	if got := post("/drain"); !strings.HasPrefix(got, "draining") {
		t.Errorf("drain answered %q", got)
	}
	testenv.Eventually(t, 10*time.Second, "VIP withdrawn, local address kept", routes(onlyLIP))
	s := getState()
	if !s.Announce.Draining || s.Announce.Prefixes[0].Reason != "draining" || len(s.Announce.Prefixes[0].AnnouncedBy) != 0 {
		t.Errorf("state while draining: %+v", s.Announce)
	}
	if got := announced(); got["prefix=10.1.0.100/32,protocol=bgp"] != 0 || got["draining"] != 1 {
		t.Errorf("metrics while draining: %v", got)
	}
	if got := post("/drain"); got != "already draining\n" {
		t.Errorf("second drain answered %q", got)
	}
	post("/undrain")
	testenv.Eventually(t, 10*time.Second, "VIP announced again", routes(both))

	rs.stop()
	testenv.Eventually(t, 10*time.Second, "VIP withdrawn when its only real server fails", routes(onlyLIP))
	if p := getState().Announce.Prefixes[0]; p.Announce || p.Reason != "TCP 10.1.0.100:80 has no real server up" {
		t.Errorf("VIP's state: %+v", p)
	}
	rs.start(rs.addr)
	testenv.Eventually(t, 10*time.Second, "VIP back with its real server", routes(both))

	d.Close()
	closed = true
	testenv.Eventually(t, 10*time.Second, "everything withdrawn on shutdown", routes(map[netip.Prefix]netip.Addr{}))
}
