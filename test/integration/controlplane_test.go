package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/internal/nsutil"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// cpListen is where the control plane serves /metrics and /reload, inside
// gvs-lb.
const cpListen = "127.0.0.1:9105"

// Health-check timing of the test's config: delay_loop 1 s, retry 1
// (fall 2), rise 2, delay_before_retry 0.5 s.
const (
	cpInterval = time.Second
	cpFall     = 2
	cpRise     = 2
	cpSlack    = 3 * time.Second
)

// controlPlaneConfig is the FullNAT service of the ipvsadm tests (TCP VIP:80
// wrr, rs1:8080 weight 1, rs2:8080 weight 3) plus a TCP echo service on
// VIP:7000, with health checks leaving through dp1.kni.
func controlPlaneConfig(l *Lab, rs2Weight int, echoWeight int) string {
	return fmt.Sprintf(`# gvs-controlplane config of TestControlPlane
dataplane: {socket: %[1]s, poll_interval: 200ms}
log: {level: info, format: json}
cpus: [0]
http: {listen: "%[2]s"}
global_defs:
  bindto: %[3]s
  timeouts: {tcp: 800, tcpfin: 120, udp: 300}
virtual_servers:
  - name: web
    protocol: TCP
    vip: %[4]s
    port: 80
    lb_algo: wrr
    lb_kind: FULLNAT
    local_addresses: [{ip: %[5]s, interface: %[6]s}]
    real_servers:
      - ip: %[7]s
        port: 8080
        weight: 1
        HTTP_GET:
          url: [{path: /, status_code: 200, regex: "^rs1 "}]
          delay_loop: 1
          connect_timeout: 1
          retry: 1
          delay_before_retry: 0.5
          rise: 2
      - ip: %[8]s
        port: 8080
        weight: %[9]d
        HTTP_GET: {url: [{path: /, regex: "^rs2 "}], delay_loop: 1, connect_timeout: 1, retry: 1, delay_before_retry: 0.5, rise: 2}
  - name: echo
    protocol: TCP
    vip: %[4]s
    port: 7000
    lb_algo: rr
    local_addresses: [{ip: %[5]s, interface: %[6]s}]
    real_servers:
      - ip: %[7]s
        port: 7000
        weight: %[10]d
        TCP_CHECK: {delay_loop: 1, connect_timeout: 1}
`, l.Env["DP_SOCKET"], cpListen, l.Env["LB_KNI_RS_IP"], l.Env["VIP"], l.Env["LIP"], l.Env["LB_RS_PORT"],
		l.Env["RS1_IP"], l.Env["RS2_IP"], rs2Weight, echoWeight)
}

// stoppable runs gvs-testsrv in a namespace and returns a function that
// stops it (also called when the test ends).
func (l *Lab) stoppable(ns, name string, args ...string) func() {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, filepath.Join(l.root, "bin", "gvs-testsrv"), "--name", name}, args...)...)
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	done := false
	stop := func() {
		if !done {
			done = true
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}
	l.t.Cleanup(stop)
	return stop
}

// controlPlane is gvs-controlplane running in gvs-lb.
type controlPlane struct {
	cmd *exec.Cmd
	log string
	cfg string
}

func (l *Lab) startControlPlane(cfg string) *controlPlane {
	l.t.Helper()
	bin := filepath.Join(l.root, "bin", "gvs-controlplane")
	if _, err := os.Stat(bin); err != nil {
		l.t.Fatal("bin/gvs-controlplane missing: run make (or go build -o bin/ ./cmd/gvs-controlplane)")
	}
	dir := l.t.TempDir()
	cp := &controlPlane{cfg: filepath.Join(dir, "controlplane.yaml"), log: filepath.Join(dir, "controlplane.log")}
	if err := os.WriteFile(cp.cfg, []byte(cfg), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", cp.cfg, "--dry-run").CombinedOutput(); err != nil {
		l.t.Fatalf("--dry-run: %v\n%s", err, out)
	}
	logf, err := os.Create(cp.log)
	if err != nil {
		l.t.Fatal(err)
	}
	cp.cmd = exec.Command("ip", "netns", "exec", l.Env["LB_NS"], bin, "-c", cp.cfg)
	cp.cmd.Stdout, cp.cmd.Stderr = logf, logf
	if err := cp.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		cp.cmd.Process.Signal(syscall.SIGTERM)
		cp.cmd.Wait()
		logf.Close()
		if l.t.Failed() {
			b, _ := os.ReadFile(cp.log)
			l.t.Logf("gvs-controlplane log:\n%s", tail(string(b), 60))
		}
	})
	return cp
}

// logged reports whether the control plane logged msg.
func (cp *controlPlane) logged(msg string) bool {
	b, _ := os.ReadFile(cp.log)
	return strings.Contains(string(b), msg)
}

// reload rewrites the config file and sends SIGHUP.
func (cp *controlPlane) reload(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(cp.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// try is one GET through the VIP on a new connection: the answering real
// server's name, or an error.
func try(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	name, _, _ := strings.Cut(string(b), " ")
	return name, nil
}

// dests returns the destinations of service proto VIP:port as addr:port → weight.
func (l *Lab) dests(port uint32) map[string]int32 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := l.api.ListServices(ctx, &pb.ListServicesRequest{Key: &pb.ServiceKey{Proto: "TCP", Addr: l.Env["VIP"], Port: port}})
	if err != nil || len(r.Services) != 1 {
		return nil
	}
	m := map[string]int32{}
	for _, d := range r.Services[0].Dests {
		m[fmt.Sprintf("%s:%d", d.Addr, d.Port)] = d.Weight
	}
	return m
}

// scrape reads /metrics from inside gvs-lb and parses it with the
// Prometheus text parser.
func (l *Lab) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := nsutil.HTTPClient(l.Env["LB_NS"], 5*time.Second).Get("http://" + cpListen + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// series returns the value of the one series of name whose labels include
// want.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		n := 0
		for _, lp := range m.Label {
			if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
				n++
			}
		}
		if n != len(want) {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
		return m.Gauge.GetValue(), true
	}
	return 0, false
}

// TestControlPlane: the FullNAT service configured only by gvs-controlplane
// from YAML serves HTTP; health checks move traffic off a stopped real
// server within interval × fall and bring it back after rise; a SIGHUP
// reload changing one service leaves a connection through another intact;
// /metrics parses; a killed and restarted dataplane gets its services back
// without operator action.
func TestControlPlane(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	stopRS1 := l.stoppable(l.Env["RS1_NS"], "rs1", "--http", l.Env["RS1_IP"]+":8080")
	l.startTestsrv(l.Env["RS1_NS"], "rs1", "--tcp-echo", l.Env["RS1_IP"]+":7000")
	l.startTestsrv(l.Env["RS2_NS"], "rs2", "--http", l.Env["RS2_IP"]+":8080")
	waitTCP(t, l.Env["RS1_NS"], l.Env["RS1_IP"]+":8080")
	waitTCP(t, l.Env["RS1_NS"], l.Env["RS1_IP"]+":7000")
	waitTCP(t, l.Env["RS2_NS"], l.Env["RS2_IP"]+":8080")

	cp := l.startControlPlane(controlPlaneConfig(l, 3, 1))
	vip := l.Env["VIP"]
	url := "http://" + vip + "/"
	rs1, rs2 := l.Env["RS1_IP"]+":8080", l.Env["RS2_IP"]+":8080"
	testenv.Eventually(t, 10*time.Second, "the control plane to configure the service", func() bool {
		d := l.dests(80)
		return d[rs1] == 1 && d[rs2] == 3 && len(l.dests(7000)) == 1
	})
	if out := l.Ipvsadm("-L", "-n"); !strings.Contains(out, "TCP  "+vip+":80 wrr") || !strings.Contains(out, "FullNat 3") {
		t.Errorf("ipvsadm -L -n:\n%s", out)
	}
	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 3*time.Second)
	seen := map[string]int{}
	for i := 0; i < 40; i++ {
		s, _ := get(t, c, url)
		seen[s]++
	}
	if seen["rs1"] == 0 || seen["rs2"] == 0 {
		t.Fatalf("HTTP through the VIP: %v, want both real servers", seen)
	}

	// /metrics from the running control plane
	fams := l.scrape(t)
	svc := map[string]string{"protocol": "TCP", "vip": vip, "port": "80"}
	if v, ok := series(fams, "gvs_service_connections_total", svc); !ok || v < 40 {
		t.Errorf("gvs_service_connections_total%v = %v (%v), want ≥ 40", svc, v, ok)
	}
	if v, ok := series(fams, "gvs_real_server_up", map[string]string{"vip": vip, "port": "80", "real_server": rs1}); !ok || v != 1 {
		t.Errorf("gvs_real_server_up rs1 = %v (%v)", v, ok)
	}
	for _, name := range []string{"gvs_dest_weight", "gvs_dest_active_connections", "gvs_worker_rx_packets_total",
		"gvs_worker_drops_total", "gvs_worker_loops_total", "gvs_port_rx_packets_total", "gvs_dataplane_up"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// a long-lived connection through the echo service
	echo, err := nsutil.Dial(l.Env["CLIENT_NS"], "tcp", vip+":7000", 3*time.Second)
	if err != nil {
		t.Fatalf("echo through the VIP: %v", err)
	}
	defer echo.Close()
	echoRound := func(msg string) error {
		echo.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := fmt.Fprintf(echo, "%s\n", msg); err != nil {
			return err
		}
		line, err := bufio.NewReader(echo).ReadString('\n')
		if err != nil {
			return err
		}
		if line != msg+"\n" {
			return fmt.Errorf("echo %q, want %q", line, msg)
		}
		return nil
	}
	if err := echoRound("hello 1"); err != nil {
		t.Fatal(err)
	}

	// rs1's HTTP server stops: its check fails and traffic moves to rs2
	stopRS1()
	stopped := time.Now()
	testenv.Eventually(t, cpInterval*cpFall+cpSlack, "rs1 removed after its health check failed", func() bool {
		_, in := l.dests(80)[rs1]
		return !in
	})
	t.Logf("rs1 removed %s after its HTTP server stopped (interval %s × fall %d)", time.Since(stopped).Round(10*time.Millisecond), cpInterval, cpFall)
	for i := 0; i < 20; i++ {
		if s, err := try(c, url); err != nil || s != "rs2" {
			t.Fatalf("request %d after rs1 failed: %q %v, want rs2", i, s, err)
		}
	}
	if !cp.logged(`"real server down"`) || !cp.logged(`"real_server":"`+rs1+`"`) || !cp.logged(`"check":"HTTP_GET"`) {
		t.Error("the state change is not logged with service, real_server, check")
	}

	// it comes back after rise
	l.stoppable(l.Env["RS1_NS"], "rs1", "--http", l.Env["RS1_IP"]+":8080")
	started := time.Now()
	testenv.Eventually(t, cpInterval*cpRise+cpSlack, "rs1 restored after rise", func() bool { return l.dests(80)[rs1] == 1 })
	t.Logf("rs1 restored %s after its HTTP server started (interval %s × rise %d)", time.Since(started).Round(10*time.Millisecond), cpInterval, cpRise)
	testenv.Eventually(t, 5*time.Second, "rs1 answering through the VIP again", func() bool {
		s, err := try(c, url)
		return err == nil && s == "rs1"
	})

	// SIGHUP with a change of the web service only: the echo connection
	// (and its service) are untouched
	cp.reload(t, controlPlaneConfig(l, 1, 1))
	testenv.Eventually(t, 5*time.Second, "the reload applied (rs2 weight 1)", func() bool { return l.dests(80)[rs2] == 1 })
	if err := echoRound("hello 2"); err != nil {
		t.Errorf("the connection through the echo service broke during a reload of another service: %v", err)
	}
	conns := l.Ipvsadm("-L", "-n", "-c")
	if !strings.Contains(conns, vip+":7000") {
		t.Errorf("the echo connection is gone from the listing:\n%s", conns)
	}
	// an invalid file is refused; nothing changes
	cp.reload(t, strings.Replace(controlPlaneConfig(l, 2, 1), "lb_kind: FULLNAT", "lb_kind: SNAT", 1))
	testenv.Eventually(t, 5*time.Second, "the invalid reload refused in the log", func() bool { return cp.logged("reload refused") })
	if d := l.dests(80); d[rs2] != 1 {
		t.Errorf("an invalid reload changed the dataplane: %v", d)
	}
	if err := echoRound("hello 3"); err != nil {
		t.Errorf("echo after the refused reload: %v", err)
	}

	// the dataplane is killed and restarted: the services come back
	script := filepath.Join(l.root, "scripts", "lab.sh")
	if out, err := exec.Command(script, "restart-dataplane", "--kill").CombinedOutput(); err != nil {
		t.Fatalf("lab.sh restart-dataplane: %v\n%s", err, out)
	}
	restarted := time.Now()
	testenv.Eventually(t, 20*time.Second, "services back after the dataplane restart", func() bool {
		d := l.dests(80)
		return d[rs1] == 1 && d[rs2] == 1 && len(l.dests(7000)) == 1
	})
	testenv.Eventually(t, 10*time.Second, "HTTP through the VIP after the dataplane restart", func() bool {
		s, err := try(c, url)
		return err == nil && (s == "rs1" || s == "rs2")
	})
	t.Logf("service back %s after the dataplane restart", time.Since(restarted).Round(10*time.Millisecond))
	if v, ok := series(l.scrape(t), "gvs_dataplane_restarts_total", nil); !ok || v < 1 {
		t.Errorf("gvs_dataplane_restarts_total = %v (%v), want ≥ 1", v, ok)
	}
	if out := l.Ipvsadm("-L", "--timeout"); !strings.Contains(out, "Timeout (tcp tcpfin udp): 800 120 300") {
		t.Errorf("timeouts not re-applied after the restart: %s", out)
	}
}
