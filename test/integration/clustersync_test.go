package integration

// Session sync in the cluster lab (docs/sync.md): the nodes multicast
// their connections over their KNI interfaces (dp0.kni, through their own
// dataplanes and the router's bridge) and install each other's.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sessync "github.com/gvs-lb/gvs/ctrlplane/sync"
	"github.com/gvs-lb/gvs/internal/nsutil"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// peerConns counts node's connections whose local address is lip (the
// other node's: they came by sync).
func (c *Cluster) peerConns(node, lip string) int {
	c.t.Helper()
	n := 0
	for _, cn := range c.conns(node) {
		if ap, err := netip.ParseAddrPort(cn.Local); err == nil && ap.Addr().String() == lip {
			n++
		}
	}
	return n
}

// syncMetric reads a gvs_sync_* sample from node's /metrics.
func (c *Cluster) syncMetric(node, sample string) float64 {
	c.t.Helper()
	resp, err := nsutil.HTTPClient(c.Env["NODE_"+node+"_NS"], 3*time.Second).Get("http://127.0.0.1:9105/metrics")
	if err != nil {
		c.t.Fatalf("node %s metrics: %v", node, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	c.t.Fatalf("node %s: no sample %s", node, sample)
	return 0
}

// TestClusterSessionSync: connections spread over both nodes appear on
// the other node too (its dataplane lists them with the first node's
// local address), sent over the real KNI path; datagrams with a wrong key,
// cut short or of an unknown version, multicast from the router's bridge,
// are refused and counted by both nodes.
func TestClusterSessionSync(t *testing.T) {
	c := StartCluster(t)
	for _, n := range []string{"A", "B"} {
		if c.syncMetric(n, "gvs_sync_ready") != 1 {
			t.Fatalf("node %s: sync not ready although announcing", n)
		}
	}
	by := c.spread(40)
	la, lb := c.Env["NODE_A_LIP"], c.Env["NODE_B_LIP"]
	if by[la] == 0 || by[lb] == 0 {
		t.Fatalf("connections by node %v: both nodes should carry some", by)
	}
	// each connection (threshold 3: SYN, ACK, request) reaches the other node
	deadline := time.Now().Add(10 * time.Second)
	for {
		gotB, gotA := c.peerConns("B", la), c.peerConns("A", lb)
		if gotB >= by[la] && gotA >= by[lb] {
			t.Logf("node B holds %d of A's %d connections, node A %d of B's %d", gotB, by[la], gotA, by[lb])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("synced connections: B holds %d of A's %d, A holds %d of B's %d", gotB, by[la], gotA, by[lb])
		}
		time.Sleep(100 * time.Millisecond)
	}
	// hostile datagrams on the front segment
	var tr *sessync.Multicast
	if err := nsutil.Do(c.Env["RT_NS"], func() (err error) {
		tr, err = sessync.ListenMulticast("br0", sessync.DefaultGroup)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	enc := sessync.NewEncoder([]byte("not the cluster key, but long enough"))
	forged := append([]byte(nil), enc.Finish(sessync.Header{Type: sessync.TypeBulkRequest, Sender: 99, Seq: 1, Timestamp: time.Now()})...)
	v2 := append([]byte(nil), forged...)
	v2[2] = 2
	before := map[string][3]float64{}
	reasons := []string{"bad_tag", "truncated", "unknown_version"}
	sample := func(r string) string { return `gvs_sync_rejected_total{reason="` + r + `"}` }
	for _, n := range []string{"A", "B"} {
		var v [3]float64
		for i, r := range reasons {
			v[i] = c.syncMetric(n, sample(r))
		}
		before[n] = v
	}
	for _, d := range [][]byte{forged, forged[:10], v2} {
		if err := tr.Send(d); err != nil {
			t.Fatal(err)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for _, n := range []string{"A", "B"} {
		for i, r := range reasons {
			for c.syncMetric(n, sample(r)) < before[n][i]+1 {
				if time.Now().After(deadline) {
					t.Fatalf("node %s: %s not counted", n, sample(r))
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}

// keptConn is an HTTP/1.1 keep-alive connection from the client to the VIP.
type keptConn struct {
	conn net.Conn
	r    *bufio.Reader
	lip  string // the local address the real server saw: the node carrying it
}

// request sends one request on kc and returns the local address the real
// server saw.
func (kc *keptConn) request(timeout time.Duration) (string, error) {
	ans, err := keepAliveGet(kc.conn, kc.r, timeout)
	if err != nil {
		return "", err
	}
	peer := strings.TrimPrefix(strings.Fields(ans)[1], "peer=")
	la, _, _ := strings.Cut(peer, ":")
	return la, nil
}

// restartDataplane kills node's gvs-dataplane (SIGKILL) and starts it
// again as scripts/cluster.sh does, KNI addresses included; the pid file
// is updated so that the lab's down stops the new one.
func (c *Cluster) restartDataplane(node string) {
	c.t.Helper()
	pidFile := filepath.Join(c.Env["NODE_"+node+"_DIR"], "dataplane.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		c.t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill gvs-dataplane %d: %v", pid, err)
	}
	testenv.Eventually(c.t, 10*time.Second, "the killed dataplane to exit", func() bool { return syscall.Kill(pid, 0) != nil })
	c.startDataplane(node)
}

// startDataplane starts node's gvs-dataplane as scripts/cluster.sh does,
// KNI addresses included, and records its pid for the lab's down.
func (c *Cluster) startDataplane(node string) {
	c.t.Helper()
	dir := c.Env["NODE_"+node+"_DIR"]
	ns := c.Env["NODE_"+node+"_NS"]
	pidFile := filepath.Join(dir, "dataplane.pid")
	out, err := os.OpenFile(filepath.Join(dir, "dataplane.out"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, "setsid", filepath.Join(c.root, "bin", "gvs-dataplane"), "-c", filepath.Join(dir, "dataplane.yaml"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go cmd.Wait()
	os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	i := map[string]string{"A": "1", "B": "2"}[node]
	testenv.Eventually(c.t, 20*time.Second, "the new dataplane's KNI devices", func() bool {
		return exec.Command("ip", "-n", ns, "link", "show", "dp1.kni").Run() == nil &&
			exec.Command("ip", "-n", ns, "link", "show", "dp0.kni").Run() == nil
	})
	for _, a := range [][]string{{"10.20.0.2" + i + "/24", "dp0.kni"}, {"10.22.0.2" + i + "/24", "dp1.kni"}} {
		if o, err := exec.Command("ip", "-n", ns, "addr", "add", a[0], "dev", a[1]).CombinedOutput(); err != nil {
			c.t.Fatalf("ip addr add %v: %v %s", a, err, o)
		}
		if o, err := exec.Command("ip", "-n", ns, "link", "set", a[1], "up").CombinedOutput(); err != nil {
			c.t.Fatalf("ip link set %s up: %v %s", a[1], err, o)
		}
	}
}

// TestClusterDataplaneRestartKeepsConnections: node A's gvs-dataplane is
// killed and started again while its control plane runs; the control
// plane re-installs the connections from its synced table, and
// keep-alive connections that went through A carry requests again on the
// same TCP connection (no reset), to the same real server connection.
func TestClusterDataplaneRestartKeepsConnections(t *testing.T) {
	c := StartCluster(t)
	la := c.Env["NODE_A_LIP"]
	var kept []*keptConn
	for try := 0; try < 60 && len(kept) < 4; try++ {
		conn, err := nsutil.Dial(c.Env["CLIENT_NS"], "tcp", c.Env["VIP"]+":80", 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		kc := &keptConn{conn: conn, r: bufio.NewReader(conn)}
		if kc.lip, err = kc.request(3 * time.Second); err != nil {
			t.Fatalf("first request: %v", err)
		}
		if kc.lip != la {
			conn.Close()
			continue
		}
		// a second request: the connection is past the sync threshold for sure
		if _, err := kc.request(3 * time.Second); err != nil {
			t.Fatalf("second request: %v", err)
		}
		kept = append(kept, kc)
		defer conn.Close()
	}
	if len(kept) < 4 {
		t.Fatalf("only %d of 60 connections went through node A", len(kept))
	}
	// node A's table holds a connection before A sends it (ctrlplane/sync):
	// node B listing every kept one means A's table has them all (its
	// count alone can be made of the connections closed above)
	testenv.Eventually(t, 10*time.Second, "node A's table to hold its kept connections (node B lists them)", func() bool {
		b := c.conns("B")
		for _, kc := range kept {
			if b[kc.conn.LocalAddr().String()] == nil {
				return false
			}
		}
		return true
	})
	start := time.Now()
	c.restartDataplane("A")
	testenv.Eventually(t, 30*time.Second, "node A's control plane to re-install", func() bool {
		return c.syncMetric("A", "gvs_sync_reinstalled_total") >= float64(len(kept))
	})
	t.Logf("dataplane of node A restarted and %v connections re-installed after %v", c.syncMetric("A", "gvs_sync_reinstalled_total"),
		time.Since(start).Round(10*time.Millisecond))
	broken := 0
	for i, kc := range kept {
		lip, err := kc.request(20 * time.Second)
		if err != nil || lip != la {
			broken++
			t.Errorf("connection %d after the restart: %v (local address %q)", i, err, lip)
		}
	}
	t.Logf("%d of %d connections through node A broken by its dataplane restart", broken, len(kept))
}
