package daemon

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
)

// TestDaemonSync: with a sync section the daemon drains its dataplane's
// events, becomes ready when no peer answers its bulk request, exports
// gvs_sync_* metrics, and re-installs its table after the dataplane
// restarts (the watcher tells it).
func TestDaemonSync(t *testing.T) {
	dir := t.TempDir()
	sock := dptest.Socket(t)
	dp := dptest.Start(t, sock, 1)
	key := filepath.Join(dir, "sync.key")
	if err := os.WriteFile(key, []byte("a-shared-cluster-key-of-32-bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "gvs.yaml")
	y := fmt.Sprintf(`
dataplane: {socket: %s, poll_interval: 50ms, resync_interval: 0}
http: {listen: "127.0.0.1:0"}
control: {socket: "off"}
sync: {interface: lo, node_id: 1, key_file: %s, bulk_wait: 200ms, port: 18848}
`, sock, key)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Start(Options{ConfigPath: cfg, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Sync == nil {
		t.Fatal("no sync node")
	}
	select {
	case <-d.Sync.ReadyC():
	case <-time.After(10 * time.Second):
		t.Fatal("sync never ready")
	}
	waitUntil(t, "the dataplane's sync stream", dp.DP.SyncAttached)
	if h := d.syncHold(); h != "" {
		t.Errorf("announcement held back (%q) although sync is ready", h)
	}
	resp, err := http.Get("http://" + d.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"gvs_sync_ready 1", `gvs_sync_bulk_total{what="requests"}`, `gvs_sync_rejected_total{reason="bad_tag"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// the dataplane restarts: the node re-installs once the reconciler ran
	dp.Stop()
	dp.DP.Stop()
	dp2 := dptest.Start(t, sock, 1)
	waitUntil(t, "a re-install after the restart", func() bool { return d.Sync.Stats().ReinstallRuns >= 1 })
	waitUntil(t, "the sync stream on the new dataplane", dp2.DP.SyncAttached)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
