// Package testenv holds what GVS's tests need from their environment:
// root for namespaces and raw sockets, and waiting for a condition. Only
// tests import it.
package testenv

import (
	"os"
	"testing"
	"time"
)

// RequireRoot skips t when not root, except in CI (CI is set), where a
// test that needs root and does not get it fails: CI runs as root, so a
// skip there would hide a test that never ran.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Getuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root, and CI runs as root: run it as root")
	}
	t.Skip("needs root")
}

// Eventually polls cond every 20 ms until it holds or d has passed, then
// fails naming what was awaited. It waits for a state, not for time.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
