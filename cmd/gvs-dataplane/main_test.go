package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/daemon"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// The test binary doubles as the daemon: GVS_TEST_CHILD selects a role.
func TestMain(m *testing.M) {
	switch os.Getenv("GVS_TEST_CHILD") {
	case "main":
		os.Args = append([]string{"gvs-dataplane"}, strings.Fields(os.Getenv("GVS_TEST_ARGS"))...)
		main()
		os.Exit(0)
	case "crash":
		// the daemon as start-up wires it, then its crash handler with the
		// real exit
		c, err := config.Load(os.Getenv("GVS_TEST_CONFIG"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		log, _ := zap.NewDevelopment()
		d, err := daemon.Start(c, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if d.DP.Options().OnCrash == nil {
			fmt.Fprintln(os.Stderr, "start-up did not install a crash handler")
			os.Exit(1)
		}
		d.DP.Options().OnCrash(dataplane.CrashReport{Where: "worker 0", Value: "forced"})
		os.Exit(0) // not reached: the handler exits 2
	}
	os.Exit(m.Run())
}

// memConfig writes a dataplane config on in-memory ports (no KNI, no
// devices) with its socket in dir.
func memConfig(t *testing.T, dir string) (cfg, sock string) {
	sock = filepath.Join(dir, "run", "dp.sock")
	cfg = filepath.Join(dir, "dataplane.yaml")
	y := fmt.Sprintf(`api: {socket: %s}
log: {level: info, format: console}
ports: [{name: dp0, driver: mem, kni: {enabled: false}}]
addresses: [{addr: 10.1.0.1/24, dev: dp0}]
ipvs: {conn_capacity: 1024}
`, sock)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, sock
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

func child(t *testing.T, role string, env ...string) (*exec.Cmd, *lockedBuffer) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"GVS_TEST_CHILD=" + role}, env...)...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

func answers(sock string) bool {
	c, err := net.Dial("unix", sock)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// addrsOf lists the dataplane's addresses through its API.
func addrsOf(t *testing.T, sock string) []string {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := pb.NewDataplaneClient(conn).ListAddrs(ctx, &pb.ListAddrsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range r.Addrs {
		out = append(out, a.Prefix+" "+a.Dev)
	}
	return out
}

// TestSignals: SIGHUP re-reads the file and applies the difference (an
// address and a route more), refuses a file that changes what needs a
// restart and one that fails halfway (nothing changes, the socket keeps
// answering); SIGTERM stops the dataplane and removes the socket.
func TestSignals(t *testing.T) {
	dir := t.TempDir()
	cfg, sock := memConfig(t, dir)
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd, out := child(t, "main", "GVS_TEST_ARGS=-c "+cfg)
	defer cmd.Process.Kill()
	testenv.Eventually(t, 20*time.Second, "the API socket", func() bool { return answers(sock) })
	hup := func(file string, logged string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		n := strings.Count(out.String(), logged)
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "the SIGHUP's "+logged, func() bool { return strings.Count(out.String(), logged) > n })
		if !answers(sock) {
			t.Fatalf("the socket stopped answering after SIGHUP:\n%s", out)
		}
	}
	before := addrsOf(t, sock)
	// more addresses and a route: applied
	grown := strings.Replace(string(base), "addresses: [{addr: 10.1.0.1/24, dev: dp0}]",
		"addresses: [{addr: 10.1.0.1/24, dev: dp0}, {addr: 10.1.0.9/32, dev: dp0}]\nroutes: [{dst: 10.9.0.0/16, via: 10.1.0.254}]", 1)
	hup(grown, "reloaded")
	after := addrsOf(t, sock)
	if !slices.Contains(after, "10.1.0.9/32 dp0") || len(after) != len(before)+1 {
		t.Errorf("addresses after the reload: %v (before %v)", after, before)
	}
	// a route whose gateway is off-link: refused whole, the address of the
	// same file not added either
	bad := strings.Replace(grown, "{addr: 10.1.0.9/32, dev: dp0}", "{addr: 10.1.0.9/32, dev: dp0}, {addr: 10.1.0.10/32, dev: dp0}", 1)
	bad = strings.Replace(bad, "via: 10.1.0.254}", "via: 10.1.0.254}, {dst: 10.8.0.0/16, via: 192.0.2.1}", 1)
	hup(bad, "reload refused")
	if got := addrsOf(t, sock); !slices.Equal(got, after) {
		t.Errorf("a refused reload changed the addresses: %v, was %v", got, after)
	}
	// more workers: needs a restart
	hup(grown+"workers: {count: 2}\n", "need a restart")
	if got := addrsOf(t, sock); !slices.Equal(got, after) {
		t.Errorf("a refused reload changed the addresses: %v, was %v", got, after)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, out)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after SIGTERM: %v", err)
	}
}

// TestCrashRemovesSocket: the crash handler start-up installs logs the
// report, removes the socket and exits with status 2.
func TestCrashRemovesSocket(t *testing.T) {
	cfg, sock := memConfig(t, t.TempDir())
	cmd, out := child(t, "crash", "GVS_TEST_CONFIG="+cfg)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2\n%s", err, out)
	}
	if !strings.Contains(out.String(), "exiting after a crash") {
		t.Errorf("the crash was not logged:\n%s", out)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after a crash: %v", err)
	}
}

// TestCheckRefusesWhatStartRefuses: --check builds the model as start-up
// does, so what start-up would refuse is refused with the object named.
func TestCheckRefusesWhatStartRefuses(t *testing.T) {
	dir := t.TempDir()
	base := "ports: [{name: dp0, driver: mem, kni: {enabled: false}}]\napi: {socket: " + filepath.Join(dir, "s") + "}\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"duplicate address", "addresses: [{addr: 10.1.0.1/24, dev: dp0}, {addr: 10.1.0.1/24, dev: dp0}]", "10.1.0.1"},
		{"duplicate vlan id", "vlans: [{name: v1, port: dp0, id: 5}, {name: v2, port: dp0, id: 5}]", "id 5"},
		{"gateway off-link", "addresses: [{addr: 10.1.0.1/24, dev: dp0}]\nroutes: [{dst: 0.0.0.0/0, via: 10.9.9.9}]", "10.9.9.9"},
		{"route equal to a connected prefix", "addresses: [{addr: 10.1.0.1/24, dev: dp0}]\nroutes: [{dst: 10.1.0.0/24, dev: dp0}]", "10.1.0.0/24"},
		{"multicast neighbour", "neighbours: [{addr: 224.0.0.5, lladdr: '02:00:00:00:00:01', dev: dp0}]", "224.0.0.5"},
		{"core that does not exist", "workers: {count: 1, cores: [1000]}", "CPU 1000"},
		{"negative drain interval", "workers: {drain_interval: -1ms}", `line 3: "-1ms" is not a duration`},
		{"tables that do not fit", "workers: {count: 64}\nports: [{name: dp0, driver: mem, queues: 64, kni: {enabled: false}}]\nipvs: {conn_capacity: 67108864}", "ipvs.conn_capacity"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.yaml")
			y := base + c.yaml
			if strings.HasPrefix(c.yaml, "workers: {count: 64}") {
				y = strings.Replace(y, "ports: [{name: dp0, driver: mem, kni: {enabled: false}}]\n", "", 1)
			}
			os.WriteFile(p, []byte(y), 0o644)
			cmd, out := child(t, "main", "GVS_TEST_ARGS=--check -c "+p)
			err := cmd.Wait()
			if err == nil || !strings.Contains(out.String(), c.want) {
				t.Errorf("--check: %v, output %q, want it to name %q", err, out, c.want)
			}
		})
	}
}
