package integration

// A whole node failing over in the cluster lab (docs/cluster.md, "Local
// addresses that survive a node"): the local addresses are routed (10.23.0.0/24,
// the real servers reach them through the router), each node announces its
// own as an OSPF stub /32 and the peer's with a worse cost, and session sync
// has put every connection of each node on the other. When node A dies the
// router drops A's routes after the OSPF dead interval: the client's flows
// re-hash to B and the real servers' replies to A's local address follow B's
// backup route, so B carries A's connections on.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/internal/nsutil"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// routeHops are the router kernel's next hops towards dst (a /32), sorted.
func (c *Cluster) routeHops(dst string) []string {
	out, err := exec.Command("ip", "-n", c.Env["RT_NS"], "route", "show", dst+"/32").CombinedOutput()
	if err != nil {
		c.t.Fatalf("ip route show %s: %v\n%s", dst, err, out)
	}
	var hops []string
	for _, m := range nextHopRE.FindAllStringSubmatch(string(out), -1) {
		hops = append(hops, m[1])
	}
	slices.Sort(hops)
	return hops
}

// conns lists node's connections by client address:port.
func (c *Cluster) conns(node string) map[string]*pb.Conn {
	c.t.Helper()
	api, ctx, done := c.api(node)
	defer done()
	st, err := api.ListConns(ctx, &pb.ListConnsRequest{})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]*pb.Conn{}
	for {
		page, err := st.Recv()
		if err == io.EOF {
			return out
		}
		if err != nil {
			c.t.Fatalf("node %s ListConns: %v", node, err)
		}
		for _, cn := range page.Conns {
			out[cn.Client] = cn
		}
	}
}

// longConn is a keep-alive connection through the VIP and what the real
// server saw of it: its name and the connection's local address and port
// there (the same on every answer while the connection lives on).
type longConn struct {
	*keptConn
	client string // the client's address:port
	rs     string // "NAME peer=LIP:LPORT"
}

// ask sends one request and returns "NAME peer=LIP:LPORT" from the answer.
func (lc *longConn) ask(timeout time.Duration) (string, error) {
	return keepAliveGet(lc.conn, lc.r, timeout)
}

// keepAliveGet sends one HTTP/1.1 request on a kept-alive connection to
// gvs-testsrv and returns its answer "NAME peer=LIP:LPORT".
func keepAliveGet(conn net.Conn, r *bufio.Reader, timeout time.Duration) (string, error) {
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if resp.StatusCode != http.StatusOK || len(f) < 2 || !strings.HasPrefix(f[1], "peer=") {
		return "", fmt.Errorf("unexpected answer %s %q", resp.Status, b)
	}
	return f[0] + " " + f[1], nil
}

// killNode SIGKILLs node's gvs-dataplane and gvs-controlplane (BIRD keeps
// running, cut off from the network with the dataplane's KNI devices) and
// returns when both are gone.
func (c *Cluster) killNode(node string) {
	c.t.Helper()
	dir := c.Env["NODE_"+node+"_DIR"]
	var pids []int
	for _, f := range []string{"dataplane.pid", "controlplane.pid"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			c.t.Fatal(err)
		}
		var pid int
		fmt.Sscan(string(b), &pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			c.t.Fatalf("kill %s %d: %v", f, pid, err)
		}
		pids = append(pids, pid)
	}
	testenv.Eventually(c.t, 10*time.Second, "node "+node+"'s processes to exit", func() bool {
		for _, p := range pids {
			if syscall.Kill(p, 0) == nil {
				return false
			}
		}
		return true
	})
}

// TestClusterNodeFailover: long-lived keep-alive connections through
// both nodes (at least 6 through A), each synced to the other node; node
// A's dataplane and control plane are SIGKILLed. The router removes A's
// routes by the OSPF dead interval (the VIP goes through B alone, A's
// local address through B's backup route); then every connection carries
// two more requests, answered by the same real-server connection (same
// server, same local address and port), with no reset; new connections
// succeed through B. Then A is started again: once the router routes the
// VIP through both nodes and A's local address to A, A holds every
// connection (bulk transfer) and each carries two more requests
// undisturbed. The failover time and broken/N are logged.
func TestClusterNodeFailover(t *testing.T) {
	c := StartCluster(t)
	kniA, kniB := c.Env["NODE_A_KNI_IP"], c.Env["NODE_B_KNI_IP"]
	la, lb := c.Env["NODE_A_LIP"], c.Env["NODE_B_LIP"]
	// each local address through its owner only: the backup's worse cost
	// keeps the other node out of the route
	testenv.Eventually(t, 20*time.Second, "the local addresses routed to their owners", func() bool {
		return slices.Equal(c.routeHops(la), []string{kniA}) && slices.Equal(c.routeHops(lb), []string{kniB})
	})

	const wantA, maxB = 6, 4
	var onA, onB []*longConn
	for try := 0; try < 100 && (len(onA) < wantA || len(onB) < maxB); try++ {
		conn, err := nsutil.Dial(c.Env["CLIENT_NS"], "tcp", c.Env["VIP"]+":80", 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		lc := &longConn{keptConn: &keptConn{conn: conn, r: bufio.NewReader(conn)}, client: conn.LocalAddr().String()}
		if lc.rs, err = lc.ask(3 * time.Second); err != nil {
			t.Fatalf("first request: %v", err)
		}
		_, peer, _ := strings.Cut(lc.rs, " peer=")
		switch {
		case strings.HasPrefix(peer, la+":") && len(onA) < wantA:
			onA = append(onA, lc)
		case strings.HasPrefix(peer, lb+":") && len(onB) < maxB:
			onB = append(onB, lc)
		default:
			conn.Close()
			continue
		}
		defer conn.Close()
		// a second request: past the sync threshold, and the same real
		// server connection answers
		if again, err := lc.ask(3 * time.Second); err != nil || again != lc.rs {
			t.Fatalf("second request on %s: %q %v, want %q", lc.client, again, err, lc.rs)
		}
	}
	if len(onA) < wantA || len(onB) == 0 {
		t.Fatalf("connections through A %d (want %d), through B %d (want some) in 100 tries", len(onA), wantA, len(onB))
	}
	all := append(append([]*longConn{}, onA...), onB...)

	// A carries its connections and B holds them by sync, with A's local
	// address and port
	listedA := c.conns("A")
	for _, lc := range onA {
		if cn := listedA[lc.client]; cn == nil || !strings.HasSuffix(lc.rs, "peer="+cn.Local) {
			t.Fatalf("node A lists %s as %v, want a connection from local %s", lc.client, cn, lc.rs)
		}
	}
	testenv.Eventually(t, 10*time.Second, "node B to hold A's connections by sync", func() bool {
		listed := c.conns("B")
		for _, lc := range onA {
			cn := listed[lc.client]
			if cn == nil || !strings.HasSuffix(lc.rs, "peer="+cn.Local) || cn.State != "ESTABLISHED" {
				return false
			}
		}
		return true
	})

	start := time.Now()
	c.killNode("A")
	for !(slices.Equal(c.nextHops(), []string{kniB}) && slices.Equal(c.routeHops(la), []string{kniB})) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("20 s after the kill the router still routes the VIP via %v and %s via %v", c.nextHops(), la, c.routeHops(la))
		}
		time.Sleep(20 * time.Millisecond)
	}
	failover := time.Since(start)
	if hops := c.routeHops(lb); !slices.Equal(hops, []string{kniB}) {
		t.Errorf("B's local address routed via %v after A died, want %s", hops, kniB)
	}

	broken := 0
	for round := 1; round <= 2; round++ {
		for i, lc := range all {
			if lc.conn == nil {
				continue // already broken
			}
			got, err := lc.ask(10 * time.Second)
			if err != nil || got != lc.rs {
				broken++
				t.Errorf("connection %d (%s, was %q) request %d after A died: %q %v", i, lc.client, lc.rs, round, got, err)
				lc.conn.Close()
				lc.conn = nil
			}
		}
	}
	t.Logf("node A killed: router converged after %v (VIP via B only, A's local address %s via B's backup route); "+
		"%d of %d long-lived connections broken (%d were on A, %d on B)",
		failover.Round(10*time.Millisecond), la, broken, len(all), len(onA), len(onB))

	// new connections after convergence: through B, from B's own local address
	if by := c.spread(20); by[lb] != 20 {
		t.Errorf("new connections after A died: %v, want all 20 through B's local address %s", by, lb)
	}
	if broken > 0 {
		return
	}

	// A returns (its BIRD kept running): its control plane takes the
	// peers' table by bulk transfer and only then announces the VIP and
	// its own local address; the router hashes part of the flows back to
	// A and sends the replies to A's local address to A again, and no
	// connection notices.
	c.startDataplane("A")
	c.startControlplane("A")
	rejoin := time.Now()
	testenv.Eventually(t, 30*time.Second, "node A back in the VIP's route, its local address routed to A", func() bool {
		return slices.Equal(c.nextHops(), []string{kniA, kniB}) && slices.Equal(c.routeHops(la), []string{kniA})
	})
	back := time.Since(rejoin)
	listed := c.conns("A")
	for _, lc := range all {
		if cn := listed[lc.client]; cn == nil || !strings.HasSuffix(lc.rs, "peer="+cn.Local) {
			t.Errorf("rejoined node A lists %s as %v, want the connection from local %s (bulk transfer)", lc.client, cn, lc.rs)
		}
	}
	if n := c.syncMetric("A", `gvs_sync_bulk_total{what="requests"}`); n < 1 {
		t.Errorf("rejoined node A sent %v bulk requests, want at least 1", n)
	}
	brokenRejoin := 0
	for round := 1; round <= 2; round++ {
		for i, lc := range all {
			if lc.conn == nil {
				continue
			}
			got, err := lc.ask(10 * time.Second)
			if err != nil || got != lc.rs {
				brokenRejoin++
				t.Errorf("connection %d (%s, was %q) request %d after A rejoined: %q %v", i, lc.client, lc.rs, round, got, err)
				lc.conn.Close()
				lc.conn = nil
			}
		}
	}
	t.Logf("node A rejoined: announced again %v after its restart, holding all %d connections; %d of %d broken",
		back.Round(10*time.Millisecond), len(all), brokenRejoin, len(all))
	if by := c.spread(40); by[la] == 0 || by[lb] == 0 || by[la]+by[lb] != 40 {
		t.Errorf("new connections after A rejoined: %v, want all 40 spread over both nodes", by)
	}
}

// startControlplane starts node's gvs-controlplane as scripts/cluster.sh
// does and records its pid for the lab's down.
func (c *Cluster) startControlplane(node string) {
	c.t.Helper()
	dir := c.Env["NODE_"+node+"_DIR"]
	out, err := os.OpenFile(filepath.Join(dir, "controlplane.out"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer out.Close()
	os.Remove(c.Env["NODE_"+node+"_CP_SOCKET"]) // left by the killed one
	cmd := exec.Command("ip", "netns", "exec", c.Env["NODE_"+node+"_NS"], "setsid", filepath.Join(c.root, "bin", "gvs-controlplane"),
		"-c", c.Env["NODE_"+node+"_CP_CONFIG"])
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go cmd.Wait()
	os.WriteFile(filepath.Join(dir, "controlplane.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	testenv.Eventually(c.t, 10*time.Second, "node "+node+"'s control socket", func() bool {
		_, err := os.Stat(c.Env["NODE_"+node+"_CP_SOCKET"])
		return err == nil
	})
}
