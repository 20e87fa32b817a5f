package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSyncSection(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "sync.key")
	if err := os.WriteFile(key, []byte("  0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("tooshort"), 0o600)

	c, err := Parse([]byte("sync:\n  interface: kni0\n  node_id: 2\n  key_file: " + key + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sync
	if !s.Enabled() || s.GroupAddrPort().String() != "224.0.0.81:8848" || *s.Threshold != 3 || *s.Period != 50 || s.UDP ||
		s.MaxConns != 1<<20 || s.BulkWait != Seconds(3) || s.BulkRate != 2000 || s.MaxSkew != Seconds(30) {
		t.Errorf("defaults: %+v", s)
	}
	if k, err := s.Key(); err != nil || string(k) != "0123456789abcdef0123" {
		t.Errorf("key %q %v", k, err)
	}
	if c, err := Parse([]byte("log:\n  level: info\n")); err != nil || c.Sync.Enabled() {
		t.Errorf("no sync section: enabled=%v %v", c.Sync.Enabled(), err)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"sync:\n  interface: kni0\n  key_file: " + key + "\n", "node_id missing"},
		{"sync:\n  interface: kni0\n  node_id: 1\n", "key_file missing"},
		{"sync:\n  interface: kni0\n  node_id: 1\n  key_file: " + short + "\n", "holds 8 bytes"},
		{"sync:\n  interface: kni0\n  node_id: 1\n  key_file: " + filepath.Join(dir, "none") + "\n", "key_file"},
		{"sync:\n  interface: kni0\n  node_id: 1\n  key_file: " + key + "\n  group: 10.0.0.1\n", "IPv4 multicast"},
		{"sync:\n  interface: kni0\n  node_id: 1\n  key_file: " + key + "\n  port: 70000\n", "port 70000"},
		{"sync:\n  interface: kni0\n  node_id: 1\n  key_file: " + key + "\n  threshold: 0\n", "threshold 0"},
		{"sync:\n  interface: kni0\n  node_id: 1\n  key_file: " + key + "\n  threshold: 200\n  period: 60\n", "period 60"},
		{"sync:\n  interface: kni0\n  node_id: 1\n  key_file: " + key + "\n  bogus: 1\n", "unknown key"},
	} {
		_, err := Parse([]byte(bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want an error with %q", bad.yaml, err, bad.want)
		}
	}
}
