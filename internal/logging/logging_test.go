package logging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoStackTraceOnErrors: an error logged at start-up (a refused
// configuration) is one line, in both formats.
func TestNoStackTraceOnErrors(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		p := filepath.Join(t.TempDir(), "log")
		log, err := New("info", format, p)
		if err != nil {
			t.Fatal(err)
		}
		log.Error("start failed")
		log.Sync()
		b, _ := os.ReadFile(p)
		if s := strings.TrimSpace(string(b)); !strings.Contains(s, "start failed") || strings.Count(s, "\n") != 0 {
			t.Errorf("%s: %q, want one line without a stack", format, s)
		}
	}
	if _, err := New("loud", "json", ""); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := New("info", "xml", ""); err == nil || !strings.Contains(err.Error(), "log.format") {
		t.Errorf("bad format: %v", err)
	}
}
