package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/daemon"
)

const reloadBase = `ports:
  - {name: dp0, driver: mem, kni: {enabled: false}}
  - {name: dp1, driver: mem, kni: {enabled: false}}
addresses:
  - {addr: 10.1.0.1/24, dev: dp0}
  - {addr: 10.2.0.1/24, dev: dp1}
ipvs: {conn_capacity: 1024}
`

// startFileDP runs gvs-dataplane's daemon from a file, as the binary does
// (the file recorded for reloads), and returns its socket and file.
func startFileDP(t *testing.T) (sock, file string) {
	dir := t.TempDir()
	sock = filepath.Join(dir, "dp.sock")
	file = filepath.Join(dir, "dataplane.yaml")
	writeFile(t, file, "api: {socket: "+sock+"}\n"+reloadBase)
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Start(c, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	d.SetConfigPath(file)
	t.Cleanup(d.Close)
	return sock, file
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReload: dpip reload --check lists the changes and applies none;
// dpip reload applies an address and a route; a file with an off-link
// gateway and one that changes the worker count are refused with the
// route and the setting named, and addr/route show stay byte for byte
// what they were; a file given by a relative path is read by the
// dataplane as the caller's file.
func TestReload(t *testing.T) {
	sock, file := startFileDP(t)
	head := "api: {socket: " + sock + "}\n"
	grown := head + reloadBase + `  - {addr: 10.1.0.9/32, dev: dp0}
routes:
  - {dst: 10.9.0.0/16, via: 10.2.0.254}
`
	grown = strings.Replace(grown, "ipvs: {conn_capacity: 1024}\n  - {addr: 10.1.0.9/32, dev: dp0}\n",
		"  - {addr: 10.1.0.9/32, dev: dp0}\nipvs: {conn_capacity: 1024}\n", 1)
	writeFile(t, file, grown)
	if _, err := config.Load(file); err != nil {
		t.Fatalf("test file: %v\n%s", err, grown)
	}

	addrs0, routes0 := mustDpip(t, sock, "addr show"), mustDpip(t, sock, "route show")
	got := mustDpip(t, sock, "reload --check")
	want := file + `: valid, a reload would apply:
  addr add 10.1.0.9/32 dev dp0
  route add 10.9.0.0/16 via 10.2.0.254
`
	if got != want {
		t.Errorf("reload --check:\n%s\nwant:\n%s", got, want)
	}
	if a, r := mustDpip(t, sock, "addr show"), mustDpip(t, sock, "route show"); a != addrs0 || r != routes0 {
		t.Errorf("reload --check changed the dataplane:\n%s%s", a, r)
	}

	got = mustDpip(t, sock, "reload")
	if want := strings.Replace(want, ": valid, a reload would apply:", ": reloaded:", 1); got != want {
		t.Errorf("reload:\n%s\nwant:\n%s", got, want)
	}
	addrs1, routes1 := mustDpip(t, sock, "addr show"), mustDpip(t, sock, "route show")
	if !strings.Contains(addrs1, "inet 10.1.0.9/32 scope global dp0") {
		t.Errorf("address missing after the reload:\n%s", addrs1)
	}
	if !strings.Contains(routes1, "inet 10.9.0.0/16 via 10.2.0.254 src 0.0.0.0 dev dp1 scope global metric 0 proto static") {
		t.Errorf("route missing after the reload:\n%s", routes1)
	}
	if got := mustDpip(t, sock, "reload"); got != file+": reloaded, nothing changed\n" {
		t.Errorf("second reload: %q", got)
	}

	unchanged := func(what string) {
		t.Helper()
		if a, r := mustDpip(t, sock, "addr show"), mustDpip(t, sock, "route show"); a != addrs1 || r != routes1 {
			t.Errorf("%s changed the dataplane:\n%s%s\nwas:\n%s%s", what, a, r, addrs1, routes1)
		}
	}
	// an off-link gateway, with another address in the same file: refused
	// whole, named
	bad := strings.Replace(grown, "  - {addr: 10.1.0.9/32, dev: dp0}\n", "  - {addr: 10.1.0.9/32, dev: dp0}\n  - {addr: 10.1.0.10/32, dev: dp0}\n", 1) +
		"  - {dst: 10.8.0.0/16, via: 192.0.2.1}\n"
	writeFile(t, file, bad)
	for _, line := range []string{"reload --check", "reload"} {
		out, err := dpip(t, sock, line)
		if err == nil || !strings.Contains(err.Error(), "192.0.2.1") || !strings.Contains(err.Error(), "unchanged") {
			t.Errorf("%s of a file with an off-link gateway: %v\n%s", line, err, out)
		}
		unchanged(line + " of a bad file")
	}
	// a setting that needs a restart
	writeFile(t, file, grown+"workers: {count: 2}\n")
	out, err := dpip(t, sock, "reload")
	if err == nil || !strings.Contains(err.Error(), "reload refused: workers") || !strings.Contains(err.Error(), "need a restart") {
		t.Errorf("reload of a file with more workers: %v\n%s", err, out)
	}
	unchanged("a file changing the worker count")
	// a file that does not parse
	writeFile(t, file, grown+"routes: [\n")
	if out, err := dpip(t, sock, "reload"); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("reload of a broken file: %v\n%s", err, out)
	}
	unchanged("a broken file")

	// a path given, relative to the caller: the address goes away again
	other := filepath.Join(t.TempDir(), "other.yaml")
	writeFile(t, other, strings.Replace(grown, "  - {addr: 10.1.0.9/32, dev: dp0}\n", "", 1))
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, other)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustDpip(t, sock, "reload "+rel); got != other+": reloaded:\n  addr del 10.1.0.9/32 dev dp0\n" {
		t.Errorf("reload %s: %q", rel, got)
	}
	if a := mustDpip(t, sock, "addr show"); strings.Contains(a, "10.1.0.9/32") {
		t.Errorf("address still there after reloading %s:\n%s", other, a)
	}
}
