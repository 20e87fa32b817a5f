package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := newCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	return out.String(), err
}

func TestDryRun(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`
virtual_servers:
  - vip: 10.1.0.100
    port: 80
    local_addresses: [{ip: 10.2.0.100, interface: dp1}]
    real_servers:
      - {ip: 10.2.0.11, port: 8080, TCP_CHECK: {}, HTTP_GET: {}}
      - {ip: 10.2.0.12, port: 8080}
`), 0o644)
	out, err := run(t, "-c", good, "--dry-run")
	if err != nil || out != good+": configuration is valid (1 virtual servers, 2 real servers, 2 health checks)\n" {
		t.Errorf("valid file: %v %q", err, out)
	}
	if _, err := run(t, "-c", good, "--dry-run", "--cpus", "0,0"); err == nil || !strings.Contains(err.Error(), "--cpus: CPU 0 listed twice") {
		t.Errorf("--cpus 0,0: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("virtual_servers: [{vip: 10.1.0.100, port: 80, lb_kind: SNAT}]\n"), 0o644)
	_, err = run(t, "-c", bad, "--dry-run")
	if err == nil {
		t.Fatal("invalid file accepted")
	}
	msg := format(err)
	if !strings.HasPrefix(msg, bad+": virtual_server TCP 10.1.0.100:80: lb_kind SNAT: not supported") ||
		!strings.Contains(msg, "\n  virtual_server TCP 10.1.0.100:80: local_addresses missing") {
		t.Errorf("errors, one per line:\n%s", msg)
	}
	if _, err := run(t, "-c", filepath.Join(dir, "none.yaml"), "--dry-run"); err == nil {
		t.Error("missing file accepted")
	}
}

// TestDryRunRefusesWhatStartRefuses: what start-up would fail on is
// refused by --dry-run too, each naming the field.
func TestDryRunRefusesWhatStartRefuses(t *testing.T) {
	dir := t.TempDir()
	notSock := filepath.Join(dir, "file")
	os.WriteFile(notSock, []byte("x"), 0o600)
	for _, c := range []struct{ yaml, want string }{
		{"cpus: [1023]\n", "cpus: CPU 1023 does not exist"},
		{"http: {listen: 'localhost'}\n", "http.listen: \"localhost\": write host:port"},
		{"http: {listen: '127.0.0.1:99999'}\n", "http.listen: \"127.0.0.1:99999\": port \"99999\""},
		{"control: {socket: " + notSock + "}\n", "control.socket " + notSock + ": exists and is not a socket"},
		{"dataplane: {poll_interval: -1}\n", "out of range"},
	} {
		p := filepath.Join(dir, "c.yaml")
		os.WriteFile(p, []byte(c.yaml), 0o644)
		if _, err := run(t, "-c", p, "--dry-run"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}

// TestReloadAndStateCommands run against a control socket that is not
// there: the error names the socket and the likely causes.
func TestReloadWithoutControlPlane(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, err := run(t, "reload", "--control-socket", sock)
	if err == nil || !strings.Contains(err.Error(), "control socket "+sock) || !strings.Contains(err.Error(), "is gvs-controlplane running") {
		t.Errorf("reload without a control plane: %v", err)
	}
}
