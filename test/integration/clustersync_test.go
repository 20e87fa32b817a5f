package integration

// Session sync in the cluster lab (docs/sync.md): the nodes multicast
// their connections over their KNI interfaces (dp0.kni, through their own
// dataplanes and the router's bridge) and install each other's.

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	sessync "github.com/gvs-lb/gvs/ctrlplane/sync"
	"github.com/gvs-lb/gvs/internal/nsutil"
)

// peerConns lists node's connections whose local address is lip (the
// other node's: they came by sync).
func (c *Cluster) peerConns(node, lip string) int {
	c.t.Helper()
	conn, err := grpc.NewClient("unix://"+c.Env["NODE_"+node+"_DP_SOCKET"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := pb.NewDataplaneClient(conn).ListConns(ctx, &pb.ListConnsRequest{})
	if err != nil {
		c.t.Fatal(err)
	}
	n := 0
	for {
		page, err := st.Recv()
		if err == io.EOF {
			return n
		}
		if err != nil {
			c.t.Fatalf("node %s ListConns: %v", node, err)
		}
		for _, cn := range page.Conns {
			if ap, err := netip.ParseAddrPort(cn.Local); err == nil && ap.Addr().String() == lip {
				n++
			}
		}
	}
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
