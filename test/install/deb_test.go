// Package install checks GVS's Debian package the way an operator meets
// it: `make deb`, its contents, and `dpkg -i` in a clean Debian bookworm
// root made by debootstrap (kept under /var/cache/gvs-test between runs;
// each run installs into an overlay of it, so the cache stays clean). It
// needs root (chroot, mounts) and debootstrap (scripts/deps.sh).
package install

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/testenv"
)

const (
	cacheDir = "/var/cache/gvs-test"
	suite    = "bookworm"
	mirror   = "http://deb.debian.org/debian"
	// systemd for systemd-analyze verify of the installed units, procps
	// for the units' /bin/kill (the package depends on it)
	include = "systemd,procps"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debianRoot returns the cached clean bookworm root, making it with
// debootstrap the first time.
func debianRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(cacheDir, suite+"-minbase")
	if _, err := os.Stat(filepath.Join(root, ".gvs-complete")); err == nil {
		return root
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatal("debootstrap missing: run scripts/deps.sh (as root)")
	}
	tmp := root + ".partial"
	os.RemoveAll(tmp)
	os.RemoveAll(root)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, "", "debootstrap", "--variant=minbase", "--include="+include, suite, tmp, mirror)
	if err := os.WriteFile(filepath.Join(tmp, ".gvs-complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, root); err != nil {
		t.Fatal(err)
	}
	t.Logf("debootstrap %s (cold cache): %s", suite, time.Since(start).Round(time.Second))
	return root
}

// overlay mounts a writable copy of lower (changes go to a temporary
// directory) and returns its path.
func overlay(t *testing.T, lower string) string {
	t.Helper()
	dir := t.TempDir()
	up, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{up, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+up+",workdir="+work); err != nil {
		t.Fatalf("overlay of %s: %v", lower, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", merged, err)
		}
	})
	return merged
}

// TestDebInstalls: make deb builds a package holding the binaries, the
// units, the sample configs as conffiles and the docs; dpkg -i installs it
// in a clean Debian root (maintainer scripts included: the gvs group is
// created, systemctl is not called without a running systemd); the
// installed binaries run, the installed configs pass gvs-dataplane --check
// and gvs-controlplane --dry-run, systemd-analyze verify accepts the
// installed units, an edited conffile survives a reinstall, and removal
// then purge leave no binary and no config behind.
func TestDebInstalls(t *testing.T) {
	testenv.RequireRoot(t)
	t0 := time.Now()
	src := repoRoot()
	run(t, src, "make", "--no-print-directory", "deb")
	deb, err := filepath.EvalSymlinks(filepath.Join(src, "bin", "gvs.deb"))
	if err != nil {
		t.Fatalf("make deb made no bin/gvs.deb: %v", err)
	}
	tBuild := time.Since(t0)

	// contents: every file with its mode and owner
	contents := run(t, "", "dpkg-deb", "-c", deb)
	entries := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(contents), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 {
			entries[strings.TrimPrefix(f[len(f)-1], ".")] = f[0] + " " + f[1]
		}
	}
	want := map[string]string{
		"/usr/sbin/gvs-dataplane":                      "-rwxr-xr-x root/root",
		"/usr/sbin/gvs-controlplane":                   "-rwxr-xr-x root/root",
		"/usr/sbin/ipvsadm":                            "-rwxr-xr-x root/root",
		"/usr/sbin/dpip":                               "-rwxr-xr-x root/root",
		"/usr/bin/gvs-pktgen":                          "-rwxr-xr-x root/root",
		"/lib/systemd/system/gvs-dataplane.service":    "-rw-r--r-- root/root",
		"/lib/systemd/system/gvs-controlplane.service": "-rw-r--r-- root/root",
		"/etc/gvs/dataplane.yaml":                      "-rw-r--r-- root/root",
		"/etc/gvs/controlplane.yaml":                   "-rw-r--r-- root/root",
		"/usr/share/doc/gvs/README.md":                 "-rw-r--r-- root/root",
		"/usr/share/doc/gvs/operations.md":             "-rw-r--r-- root/root",
	}
	for path, mode := range want {
		if got, ok := entries[path]; !ok || got != mode {
			t.Errorf("package entry %s: %q, want %q", path, got, mode)
		}
	}
	for path := range entries {
		if strings.Contains(path, "gvs-testsrv") {
			t.Errorf("the test server is packaged: %s", path)
		}
	}
	fields := run(t, "", "dpkg-deb", "-f", deb, "Package", "Architecture", "Depends")
	wantFields := "Package: gvs\nArchitecture: " + runtime.GOARCH + "\nDepends: passwd, procps\n"
	if fields != wantFields {
		t.Errorf("control fields:\n%s\nwant:\n%s", fields, wantFields)
	}
	if got := run(t, "", "dpkg-deb", "-I", deb, "conffiles"); got != "/etc/gvs/dataplane.yaml\n/etc/gvs/controlplane.yaml\n" {
		t.Errorf("conffiles: %q", got)
	}

	// install into a clean bookworm root
	t1 := time.Now()
	lower := debianRoot(t)
	tRoot := time.Since(t1)
	dir := overlay(t, lower)
	in := func(args ...string) string {
		t.Helper()
		return run(t, "", "chroot", append([]string{dir}, args...)...)
	}
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp", "gvs.deb"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chroot", dir, "getent", "group", "gvs").CombinedOutput(); err == nil {
		t.Fatalf("the clean root already has a gvs group: %s", out)
	}
	out := in("dpkg", "-i", "/tmp/gvs.deb")
	if strings.Contains(out, "daemon-reload") || strings.Contains(out, "System has not been booted with systemd") {
		t.Errorf("postinst called systemctl without a running systemd:\n%s", out)
	}
	if g := in("getent", "group", "gvs"); !strings.HasPrefix(g, "gvs:x:") {
		t.Errorf("no gvs group after installing: %q", g)
	}
	if st := in("dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", "gvs"); !strings.HasPrefix(st, "installed ") {
		t.Errorf("dpkg-query: %q", st)
	}

	// the binaries run in the clean root (static: nothing else needed)
	for cmd, mark := range map[string]string{
		"gvs-dataplane": "--config", "gvs-controlplane": "--dry-run", "dpip": "reload", "gvs-pktgen": "Usage",
	} {
		if out := in(cmd, "--help"); !strings.Contains(out, mark) {
			t.Errorf("%s --help lacks %q:\n%s", cmd, mark, out)
		}
	}
	if out, err := exec.Command("chroot", dir, "ipvsadm", "--help").CombinedOutput(); !strings.Contains(string(out), "--add-service") {
		t.Errorf("ipvsadm --help (%v):\n%s", err, out)
	}
	if out := in("gvs-dataplane", "--check", "-c", "/etc/gvs/dataplane.yaml"); !strings.Contains(out, "configuration is valid") {
		t.Errorf("installed dataplane.yaml: %s", out)
	}
	if out := in("gvs-controlplane", "--dry-run", "-c", "/etc/gvs/controlplane.yaml"); !strings.Contains(out, "configuration is valid") {
		t.Errorf("installed controlplane.yaml: %s", out)
	}
	// the conffiles, as shipped and registered
	for _, name := range []string{"dataplane.yaml", "controlplane.yaml"} {
		got, err := os.ReadFile(filepath.Join(dir, "etc", "gvs", name))
		shipped, _ := os.ReadFile(filepath.Join(src, "dist", "etc", "gvs", name))
		if err != nil || !bytes.Equal(got, shipped) {
			t.Errorf("/etc/gvs/%s: %v (differs from dist/etc/gvs/%s)", name, err, name)
		}
	}
	if cf := in("dpkg-query", "-W", "-f=${Conffiles}", "gvs"); !strings.Contains(cf, "/etc/gvs/dataplane.yaml ") || !strings.Contains(cf, "/etc/gvs/controlplane.yaml ") {
		t.Errorf("registered conffiles: %q", cf)
	}
	// the installed units, checked by the root's own systemd
	verify := exec.Command("chroot", dir, "systemd-analyze", "verify",
		"/lib/systemd/system/gvs-dataplane.service", "/lib/systemd/system/gvs-controlplane.service")
	if out, err := verify.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify of the installed units: %v\n%s", err, out)
	}

	// an edited conffile survives a reinstall; remove keeps it, purge not
	edited := filepath.Join(dir, "etc", "gvs", "dataplane.yaml")
	f, err := os.OpenFile(edited, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("# edited by the operator\n")
	f.Close()
	in("dpkg", "-i", "--force-confold", "/tmp/gvs.deb")
	if b, _ := os.ReadFile(edited); !bytes.HasSuffix(b, []byte("# edited by the operator\n")) {
		t.Error("reinstalling replaced the operator's dataplane.yaml")
	}
	in("dpkg", "-r", "gvs")
	if _, err := os.Stat(filepath.Join(dir, "usr", "sbin", "gvs-dataplane")); err == nil {
		t.Error("gvs-dataplane left after dpkg -r")
	}
	if _, err := os.Stat(edited); err != nil {
		t.Errorf("dpkg -r removed the conffile: %v", err)
	}
	in("dpkg", "-P", "gvs")
	if _, err := os.Stat(edited); err == nil {
		t.Error("dataplane.yaml left after dpkg -P")
	}
	t.Logf("make deb %s, Debian root %s, install checks %s, total %s",
		tBuild.Round(time.Second), tRoot.Round(time.Second), time.Since(t1).Round(time.Second)-tRoot.Round(time.Second), time.Since(t0).Round(time.Second))
}
