package integration

// Tests of the cluster lab (scripts/cluster.sh): two GVS nodes, each with
// its dataplane, BIRD and gvs-controlplane, behind a router running BIRD
// with OSPF ECMP and an L4 multipath hash. Everything is real: the routing
// daemons, the kernel's multipath routes, Linux TCP on the client and the
// real servers.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/internal/nsutil"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// Cluster is a running cluster lab.
type Cluster struct {
	t    *testing.T
	root string
	Env  map[string]string
}

// StartCluster runs scripts/cluster.sh up and registers the tear-down, and
// waits until the router holds the VIP through both nodes.
func StartCluster(t *testing.T) *Cluster {
	t.Helper()
	requireRoot(t)
	root := repoRoot(t)
	for _, b := range []string{"gvs-dataplane", "gvs-controlplane", "gvs-testsrv"} {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			t.Fatalf("bin/%s missing: run make build", b)
		}
	}
	if _, err := exec.LookPath("bird"); err != nil {
		t.Fatal("bird missing: scripts/deps.sh installs bird2")
	}
	script := filepath.Join(root, "scripts", "cluster.sh")
	exec.Command(script, "down").Run() // a lab left over by a killed run
	if out, err := exec.Command(script, "up").CombinedOutput(); err != nil {
		t.Fatalf("cluster up: %v\n%s", err, out)
	}
	c := &Cluster{t: t, root: root, Env: map[string]string{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
		if o, err := exec.Command(script, "down").CombinedOutput(); err != nil {
			t.Errorf("cluster down: %v\n%s", err, o)
		}
	})
	out, err := exec.Command(script, "env").Output()
	if err != nil {
		t.Fatalf("cluster env: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			c.Env[k] = v
		}
	}
	c.waitNextHops(30*time.Second, c.Env["NODE_A_KNI_IP"], c.Env["NODE_B_KNI_IP"])
	return c
}

func (c *Cluster) dumpLogs() {
	for _, n := range []string{"A", "B"} {
		for _, f := range []string{"controlplane.log", "dataplane.log", "bird.out"} {
			if b, err := os.ReadFile(filepath.Join(c.Env["NODE_"+n+"_DIR"], f)); err == nil {
				c.t.Logf("node %s %s:\n%s", n, f, tail(string(b), 25))
			}
		}
	}
	if o, err := c.birdc("show", "ospf", "neighbors"); err == nil {
		c.t.Logf("router: %s", o)
	}
	o, _ := exec.Command("ip", "-n", c.Env["RT_NS"], "route").CombinedOutput()
	c.t.Logf("router routes:\n%s", o)
}

// birdc asks the router's BIRD.
func (c *Cluster) birdc(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", c.Env["RT_BIRD_SOCKET"]}, args...)...).CombinedOutput()
	return string(out), err
}

var nextHopRE = regexp.MustCompile(`via (\d+\.\d+\.\d+\.\d+)`)

// nextHops are the router kernel's next hops towards the VIP, sorted.
func (c *Cluster) nextHops() []string {
	out, err := exec.Command("ip", "-n", c.Env["RT_NS"], "route", "show", c.Env["VIP"]+"/32").CombinedOutput()
	if err != nil {
		c.t.Fatalf("ip route: %v\n%s", err, out)
	}
	var hops []string
	for _, m := range nextHopRE.FindAllStringSubmatch(string(out), -1) {
		hops = append(hops, m[1])
	}
	slices.Sort(hops)
	return hops
}

// waitNextHops waits until the router's route to the VIP goes exactly
// through hops (none: no route), and returns how long that took.
func (c *Cluster) waitNextHops(d time.Duration, hops ...string) time.Duration {
	c.t.Helper()
	slices.Sort(hops)
	start := time.Now()
	testenv.Eventually(c.t, d, fmt.Sprintf("the router's route to the VIP via %v", hops), func() bool {
		return slices.Equal(c.nextHops(), hops)
	})
	return time.Since(start)
}

// get makes one HTTP request to the VIP on a new connection from the
// client and returns the real server's name and the local address the
// real server saw (which node carried the connection).
func (c *Cluster) get() (rs, laddr string, err error) {
	conn, err := nsutil.Dial(c.Env["CLIENT_NS"], "tcp", c.Env["VIP"]+":80", 2*time.Second)
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\nHost: vip\r\n\r\n"); err != nil {
		return "", "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", "", err
	}
	_, body, ok := strings.Cut(string(b), "\r\n\r\n")
	if !ok {
		return "", "", fmt.Errorf("no HTTP answer: %q", b)
	}
	// gvs-testsrv answers "NAME peer=ADDR:PORT ..."
	f := strings.Fields(body)
	if len(f) < 2 || !strings.HasPrefix(f[1], "peer=") {
		return "", "", fmt.Errorf("unexpected body %q", body)
	}
	la, _, _ := strings.Cut(strings.TrimPrefix(f[1], "peer="), ":")
	return f[0], la, nil
}

// spread makes n requests on new connections and counts them per local
// address (per node).
func (c *Cluster) spread(n int) map[string]int {
	c.t.Helper()
	by := map[string]int{}
	for i := 0; i < n; i++ {
		_, la, err := c.get()
		if err != nil {
			c.t.Fatalf("request %d of %d: %v", i+1, n, err)
		}
		by[la]++
	}
	return by
}

// api dials node's dataplane API; done closes it.
func (c *Cluster) api(node string) (api pb.DataplaneClient, ctx context.Context, done func()) {
	c.t.Helper()
	conn, err := grpc.NewClient("unix://"+c.Env["NODE_"+node+"_DP_SOCKET"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	return pb.NewDataplaneClient(conn), ctx, func() { cancel(); conn.Close() }
}

// newConns is the node's lb_new_conns summed over its workers.
func (c *Cluster) newConns(node string) uint64 {
	c.t.Helper()
	api, ctx, done := c.api(node)
	defer done()
	r, err := api.ListWorkers(ctx, &pb.Empty{})
	if err != nil {
		c.t.Fatalf("node %s ListWorkers: %v", node, err)
	}
	var n uint64
	for _, w := range r.Workers {
		for _, ctr := range w.Counters {
			if ctr.Name == "lb_new_conns" {
				n += ctr.Value
			}
		}
	}
	return n
}

// ctl runs `gvs-controlplane ARGS` against node's control socket.
func (c *Cluster) ctl(node string, args ...string) string {
	c.t.Helper()
	args = append(args, "--control-socket", c.Env["NODE_"+node+"_CP_SOCKET"])
	out, err := exec.Command(filepath.Join(c.root, "bin", "gvs-controlplane"), args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("gvs-controlplane %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestClusterECMP: both nodes form OSPF adjacencies with the router, which
// holds one route to the VIP with a next hop per node (the nodes' KNI
// addresses); 200 short HTTP connections from the client (distinct source
// ports, L4 multipath hash) are spread over both nodes, and both nodes'
// dataplanes counted new connections.
func TestClusterECMP(t *testing.T) {
	c := StartCluster(t)
	out, err := c.birdc("show", "ospf", "neighbors")
	if err != nil || strings.Count(out, "Full/") != 2 {
		t.Fatalf("router's OSPF neighbours (want two Full): %v\n%s", err, out)
	}
	before := map[string]uint64{"A": c.newConns("A"), "B": c.newConns("B")}
	by := c.spread(200)
	a, b := by[c.Env["NODE_A_LIP"]], by[c.Env["NODE_B_LIP"]]
	t.Logf("200 connections: node A %d, node B %d", a, b)
	if a+b != 200 || a == 0 || b == 0 {
		t.Errorf("connections per node %v: want all 200 spread over both nodes' local addresses", by)
	}
	for n, want := range map[string]int{"A": a, "B": b} {
		if got := c.newConns(n) - before[n]; got != uint64(want) {
			t.Errorf("node %s lb_new_conns grew by %d, want %d", n, got, want)
		}
	}
}

// TestClusterHealthWithdraw: every real server of the VIP fails its
// health checks on node A only (its MISC_CHECK) → A withdraws the VIP, the
// router keeps B alone and every connection goes through B; the checks
// passing again bring A back.
func TestClusterHealthWithdraw(t *testing.T) {
	c := StartCluster(t)
	fail := c.Env["NODE_A_FAIL_FILE"]
	if err := os.WriteFile(fail, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	took := c.waitNextHops(15*time.Second, c.Env["NODE_B_KNI_IP"])
	t.Logf("node A withdrawn %v after its checks started failing", took.Round(10*time.Millisecond))
	var st struct {
		Announce struct {
			Prefixes []struct {
				Prefix, Kind, Reason string
				Announce             bool
			}
		}
	}
	decodeJSON(t, c.ctl("A", "state"), &st)
	// the VIP is withdrawn for its health; the local addresses (own and
	// the peer's backup) stay announced: replies still come back to them
	kinds := map[string]string{}
	for _, p := range st.Announce.Prefixes {
		kinds[p.Prefix] = fmt.Sprintf("%s %v %s", p.Kind, p.Announce, p.Reason)
	}
	want := map[string]string{
		c.Env["VIP"] + "/32":        "vip false TCP 10.30.0.100:80 has no real server up",
		c.Env["NODE_A_LIP"] + "/32": "local_address true ",
		c.Env["NODE_B_LIP"] + "/32": "backup_local_address true ",
	}
	if !maps.Equal(kinds, want) {
		t.Errorf("node A's announce state: %v, want %v", kinds, want)
	}
	if by := c.spread(40); by[c.Env["NODE_B_LIP"]] != 40 {
		t.Errorf("connections per node while A is withdrawn: %v, want all 40 through B", by)
	}
	os.Remove(fail)
	c.waitNextHops(15*time.Second, c.Env["NODE_A_KNI_IP"], c.Env["NODE_B_KNI_IP"])
}

// TestClusterDrain: `gvs-controlplane drain` withdraws node A's VIP (new
// connections all go through B) and keeps A's connections: after
// `undrain` the router hashes an open connection back to A, which still
// serves it. (During the drain that flow reaches B, which knows it only
// through session sync: not under test here.)
func TestClusterDrain(t *testing.T) {
	c := StartCluster(t)
	// a connection through A, open across the drain
	var conn io.ReadWriteCloser
	for i := 0; i < 50 && conn == nil; i++ {
		k, err := nsutil.Dial(c.Env["CLIENT_NS"], "tcp", c.Env["VIP"]+":80", 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(k, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
		b := make([]byte, 4096)
		n, err := k.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b[:n]), "peer="+c.Env["NODE_A_LIP"]+":") {
			conn = k
		} else {
			k.Close()
		}
	}
	if conn == nil {
		t.Fatal("no connection went through node A in 50 tries")
	}
	defer conn.Close()
	if out := c.ctl("A", "drain"); !strings.HasPrefix(out, "draining") {
		t.Errorf("drain answered %q", out)
	}
	c.waitNextHops(10*time.Second, c.Env["NODE_B_KNI_IP"])
	if by := c.spread(20); by[c.Env["NODE_B_LIP"]] != 20 {
		t.Errorf("connections while A drains: %v, want all through B", by)
	}
	// drain withdrew the route, not A's connections: once A is announced
	// again the router hashes the same flow to A, which still serves it
	c.ctl("A", "undrain")
	c.waitNextHops(10*time.Second, c.Env["NODE_A_KNI_IP"], c.Env["NODE_B_KNI_IP"])
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
		t.Fatalf("the connection through A after undrain: %v", err)
	}
	b := make([]byte, 4096)
	n, err := conn.Read(b)
	if err != nil || !strings.Contains(string(b[:n]), "peer="+c.Env["NODE_A_LIP"]+":") {
		t.Errorf("the connection through A after drain and undrain: %v %q", err, b[:n])
	}
}

// decodeJSON decodes s into v.
func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v in %s", err, s)
	}
}

// TestClusterBGP: node A's control plane announces the VIP by BGP (GoBGP
// inside gvs-controlplane, peering from A's KNI address with the router's
// BIRD): the session comes up, the router learns the VIP with A's KNI
// address as next hop, and stopping the control plane withdraws it.
func TestClusterBGP(t *testing.T) {
	c := StartCluster(t)
	dir := c.Env["NODE_A_DIR"]
	pid, err := os.ReadFile(filepath.Join(dir, "controlplane.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(string(pid), &p)
	syscall.Kill(p, syscall.SIGTERM)
	testenv.Eventually(t, 10*time.Second, "node A's OSPF control plane stopped", func() bool { return syscall.Kill(p, 0) != nil })
	c.waitNextHops(10*time.Second, c.Env["NODE_B_KNI_IP"]) // its stub network withdrawn on exit

	orig, err := os.ReadFile(c.Env["NODE_A_CP_CONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	kni := c.Env["NODE_A_KNI_IP"]
	cfg := regexp.MustCompile(`(?m)^  bird: .*$`).ReplaceAllString(string(orig), fmt.Sprintf(
		"  bgp: {local_as: 65001, router_id: %s, neighbors: [{address: %s, peer_as: 65000, local_address: %s, hold_time: 3}]}",
		kni, c.Env["RT_FRONT_IP"], kni))
	cfg = strings.ReplaceAll(cfg, "controlplane.sock", "controlplane-bgp.sock")
	cfg = strings.ReplaceAll(cfg, "controlplane.log", "controlplane-bgp.log")
	path := filepath.Join(dir, "controlplane-bgp.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", c.Env["NODE_A_NS"], filepath.Join(c.root, "bin", "gvs-controlplane"), "-c", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "controlplane-bgp.log"))
			t.Logf("BGP control plane log:\n%s", tail(string(b), 40))
		}
	})
	bgpRoute := func() string {
		out, _ := c.birdc("show", "route", "protocol", "gvs_a")
		return out
	}
	testenv.Eventually(t, 20*time.Second, "the BGP session with node A established", func() bool {
		out, _ := c.birdc("show", "protocols", "gvs_a")
		return strings.Contains(out, "Established")
	})
	testenv.Eventually(t, 10*time.Second, "the VIP learnt by BGP from node A", func() bool {
		return strings.Contains(bgpRoute(), c.Env["VIP"]+"/32")
	})
	if out := bgpRoute(); !strings.Contains(out, "via "+kni) {
		t.Errorf("BGP route's next hop is not A's KNI address %s:\n%s", kni, out)
	}
	// the router prefers BGP (preference 200 in its config) over B's OSPF
	// route: traffic follows the BGP route to A
	c.waitNextHops(10*time.Second, kni)
	if by := c.spread(10); by[c.Env["NODE_A_LIP"]] != 10 {
		t.Errorf("connections while the BGP route is installed: %v, want all through A", by)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	stopped = true
	testenv.Eventually(t, 5*time.Second, "the VIP withdrawn from the router's BGP table", func() bool {
		return !strings.Contains(bgpRoute(), c.Env["VIP"]+"/32")
	})
	c.waitNextHops(10*time.Second, c.Env["NODE_B_KNI_IP"])
}

// TestClusterNodeDeath: node A's dataplane and control plane are killed
// (SIGKILL, as a crash): nothing withdraws anything, the router notices by
// the OSPF dead interval (3 s) and keeps B alone; new connections then all
// succeed through B. The time from the kill to the route change is logged
// (the failover time of the announcement; connections that were on A
// survive only with session sync).
func TestClusterNodeDeath(t *testing.T) {
	c := StartCluster(t)
	dir := c.Env["NODE_A_DIR"]
	start := time.Now()
	for _, f := range []string{"dataplane.pid", "controlplane.pid"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		fmt.Sscan(string(b), &pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s %d: %v", f, pid, err)
		}
	}
	c.waitNextHops(15*time.Second, c.Env["NODE_B_KNI_IP"])
	t.Logf("router removed node A %v after the kill (OSPF hello 1 s, dead 3 s)", time.Since(start).Round(10*time.Millisecond))
	if by := c.spread(50); by[c.Env["NODE_B_LIP"]] != 50 {
		t.Errorf("connections after node A died: %v, want all 50 through B", by)
	}
}
