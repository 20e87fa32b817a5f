package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
	"github.com/gvs-lb/gvs/ctrlplane/reconcile"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// realServer is an HTTP server on loopback that can be stopped and
// started again on the same port.
type realServer struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	ln   net.Listener
}

func newRealServer(t *testing.T) *realServer {
	s := &realServer{t: t}
	s.start("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *realServer) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.ln, s.addr = ln, ln.Addr().String()
	s.mu.Unlock()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "healthy") }))
}

func (s *realServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

func (s *realServer) port() string { _, p, _ := net.SplitHostPort(s.addr); return p }

func writeConfig(t *testing.T, path, sock string, rs1, rs2 *realServer, weight1 int) {
	t.Helper()
	y := fmt.Sprintf(`
dataplane: {socket: %s, poll_interval: 50ms, resync_interval: 0}
http: {listen: "127.0.0.1:0"}
control: {socket: %s}
virtual_servers:
  - name: web
    vip: 10.1.0.100
    port: 80
    lb_algo: wrr
    local_addresses: [{ip: 10.2.0.100, interface: dp1}]
    sorry_server: {ip: 127.0.0.1, port: 1}
    real_servers:
      - ip: 127.0.0.1
        port: %s
        weight: %d
        inhibit_on_failure: true
        HTTP_GET: {url: [{path: /, regex: healthy}], delay_loop: 50ms, connect_timeout: 0.5, retry: 1, delay_before_retry: 20ms}
      - ip: 127.0.0.1
        port: %s
        weight: 3
        TCP_CHECK: {delay_loop: 50ms, fall: 2, rise: 2, delay_before_retry: 20ms}
  - name: dns
    protocol: UDP
    vip: 10.1.0.100
    port: 53
    local_addresses: [{ip: 10.2.0.100}]
    real_servers: [{ip: 10.2.0.11, port: 53}]
`, sock, filepath.Join(filepath.Dir(path), "ctl.sock"), rs1.port(), weight1, rs2.port())
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
}

func dests(t *testing.T, api pb.DataplaneClient) map[string]int32 {
	resp, err := api.ListServices(context.Background(), &pb.ListServicesRequest{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.1.0.100", Port: 80}})
	if err != nil {
		return nil
	}
	m := map[string]int32{}
	for _, d := range resp.Services[0].Dests {
		m[d.Addr+":"+strconv.Itoa(int(d.Port))] = d.Weight
	}
	return m
}

func same(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestDaemon runs the whole control plane against a real in-process
// dataplane and real HTTP servers on loopback: configuration, health
// transitions with quiesce, removal and the sorry server, reloads (refused
// and applied) over HTTP, /metrics, /state and a dataplane restart.
func TestDaemon(t *testing.T) {
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	api := dptest.Client(t, sock)
	rs1, rs2 := newRealServer(t), newRealServer(t)
	cfgPath := filepath.Join(t.TempDir(), "controlplane.yaml")
	writeConfig(t, cfgPath, sock, rs1, rs2, 2)

	core, logs := observer.New(zapcore.InfoLevel)
	d, err := Start(Options{ConfigPath: cfgPath, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	base := "http://" + d.Addr().String()
	ctl := unixClient(d.ControlSocket())
	const ctlBase = "http://gvs-controlplane"
	a1, a2 := rs1.addr, rs2.addr
	if got := dests(t, api); !same(got, map[string]int32{a1: 2, a2: 3}) {
		t.Fatalf("dests after start: %v", got)
	}

	rs1.stop()
	testenv.Eventually(t, 3*time.Second, "rs1 quiesced", func() bool { return same(dests(t, api), map[string]int32{a1: 0, a2: 3}) })
	rs2.stop()
	testenv.Eventually(t, 3*time.Second, "rs2 removed and the sorry server in", func() bool {
		return same(dests(t, api), map[string]int32{a1: 0, "127.0.0.1:1": 1})
	})
	rs2.start(a2)
	testenv.Eventually(t, 3*time.Second, "rs2 back, sorry server out", func() bool { return same(dests(t, api), map[string]int32{a1: 0, a2: 3}) })
	rs1.start(a1)
	testenv.Eventually(t, 3*time.Second, "rs1 restored", func() bool { return same(dests(t, api), map[string]int32{a1: 2, a2: 3}) })
	if n := logs.FilterMessage("real server down").Len(); n != 2 {
		t.Errorf("%d 'real server down' logs, want 2", n)
	}

	// an invalid file is refused over HTTP; nothing changes
	cfg := d.Rec.Config()
	good, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(good), "lb_algo: wrr", "lb_algo: wrr\n    lb_kind: SNAT", 1)), 0o644)
	// the metrics listener serves neither reload nor state
	for _, path := range []string{"/reload", "/state"} {
		resp, err := http.Post(base+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s on the metrics listener: %d, want 404/405", path, resp.StatusCode)
		}
		if resp, err = http.Get(base + path); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET %s on the metrics listener: %d, want 404/405", path, resp.StatusCode)
		}
	}
	if d.Rec.Config() != cfg || logs.FilterMessage("reload refused: invalid configuration; the running configuration stays").Len() != 0 {
		t.Fatal("the metrics listener reached reload")
	}
	resp, err := ctl.Post(ctlBase+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "lb_kind SNAT: not supported") {
		t.Errorf("invalid reload: %d %s", resp.StatusCode, body)
	}
	if d.Rec.Config() != cfg || logs.FilterMessage("reload refused: invalid configuration; the running configuration stays").Len() != 1 {
		t.Error("an invalid file replaced the configuration, or was not logged")
	}

	// a valid change: only that weight changes
	ops := d.Rec.Stats().Ops
	writeConfig(t, cfgPath, sock, rs1, rs2, 5)
	resp, err = ctl.Post(ctlBase+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !same(dests(t, api), map[string]int32{a1: 5, a2: 3}) || d.Rec.Stats().Ops != ops+1 {
		t.Errorf("reload: %d, dests %v, %d ops", resp.StatusCode, dests(t, api), d.Rec.Stats().Ops-ops)
	}
	if err := d.Reload(context.Background()); err != nil || d.Rec.Stats().Ops != ops+1 {
		t.Errorf("an identical reload: %v, %d ops", err, d.Rec.Stats().Ops-ops)
	}

	// /metrics parses and has the service's series
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"gvs_dataplane_up", "gvs_service_connections_total", "gvs_dest_weight", "gvs_real_server_up",
		"gvs_worker_rx_packets_total", "gvs_port_rx_packets_total", "gvs_controlplane_reconciles_total", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if f := fams["gvs_dest_weight"]; f == nil || len(f.Metric) != 3 {
		t.Errorf("gvs_dest_weight: %v", f)
	}

	// /state lists the configured services with health and dataplane weights
	resp, err = ctl.Get(ctlBase + "/state")
	if err != nil {
		t.Fatal(err)
	}
	var st State
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || len(st.Services) != 2 || !st.Dataplane.Up || st.Services[0].Name != "web" ||
		len(st.Services[0].Reals) != 2 || st.Services[0].Reals[0].DataplaneWeight == nil || *st.Services[0].Reals[0].DataplaneWeight != 5 ||
		!st.Services[0].Reals[0].Up || len(st.Services[0].Reals[0].Checks) != 1 || st.Services[0].Sorry == nil || st.Services[0].Sorry.Up {
		t.Errorf("/state: %v %+v", err, st)
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v", err)
	}

	// the dataplane restarts empty: everything comes back
	want := dests(t, api)
	dp.Stop()
	dptest.Start(t, sock, 1)
	fresh := dptest.Client(t, sock)
	testenv.Eventually(t, 5*time.Second, "services back after a dataplane restart", func() bool { return same(dests(t, fresh), want) })
}

// unixClient sends every request to the unix socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

// TestStartErrors: a bad file or listener fails Start with the reason.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cp.yaml")
	os.WriteFile(p, []byte("virtual_servers: [{vip: 10.1.0.100, port: 80, lb_kind: SNAT, local_addresses: [{ip: 10.2.0.100}]}]"), 0o644)
	if _, err := Start(Options{ConfigPath: p, Logger: zap.NewNop()}); err == nil || !strings.Contains(err.Error(), "lb_kind SNAT: not supported") {
		t.Errorf("bad file: %v", err)
	}
	os.WriteFile(p, []byte("http: {listen: '127.0.0.1:0'}\ncontrol: {socket: "+filepath.Join(dir, "ctl.sock")+"}"), 0o644)
	if _, err := Start(Options{ConfigPath: p, Logger: zap.NewNop(), CPUs: []int{5000}}); err == nil || !strings.Contains(err.Error(), "--cpus") {
		t.Errorf("bad --cpus: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	if _, err := Start(Options{ConfigPath: p, Logger: zap.NewNop(), Listen: ln.Addr().String(), Socket: filepath.Join(dir, "none.sock")}); err == nil ||
		!strings.Contains(err.Error(), "http.listen") {
		t.Errorf("busy listener: %v", err)
	}
	// the control socket's path names a file that is not a socket: refused, the file kept
	notSock := filepath.Join(dir, "precious")
	os.WriteFile(notSock, []byte("x"), 0o600)
	if _, err := Start(Options{ConfigPath: p, Logger: zap.NewNop(), ControlSocket: notSock, Socket: filepath.Join(dir, "none.sock")}); err == nil ||
		!strings.Contains(err.Error(), "control.socket") || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("control socket over a file: %v", err)
	}
	if b, err := os.ReadFile(notSock); err != nil || string(b) != "x" {
		t.Errorf("the file under control.socket was touched: %q %v", b, err)
	}
	// no dataplane yet is not an error: the control plane waits for it
	d, err := Start(Options{ConfigPath: p, Logger: zap.NewNop(), Socket: filepath.Join(dir, "none.sock")})
	if err != nil {
		t.Fatalf("without a dataplane: %v", err)
	}
	if err := d.Reload(context.Background()); err != nil && !errors.Is(err, reconcile.ErrRefused) {
		t.Logf("reload without a dataplane: %v", err) // retried in the background
	}
	d.Close()
}

// TestAffinity pins every thread of the process and checks them all.
func TestAffinity(t *testing.T) {
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	cpus := cpusAllowed()
	if len(cpus) == 0 {
		t.Fatal("no CPU")
	}
	defer func() {
		var all []int
		for i := 0; i < 1024; i++ {
			if orig.IsSet(i) {
				all = append(all, i)
			}
		}
		setAffinity(all)
	}()
	if err := setAffinity(cpus[:1]); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // exited
		}
		if set.Count() != 1 || !set.IsSet(cpus[0]) {
			t.Errorf("thread %d not pinned to CPU %d", tid, cpus[0])
		}
	}
	if err := setAffinity([]int{1023}); err == nil || !strings.Contains(err.Error(), "sched_setaffinity") {
		t.Errorf("a CPU that does not exist: %v", err)
	}
}
