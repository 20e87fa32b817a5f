package install

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// capNumbers are the capabilities the units may name (linux/capability.h).
var capNumbers = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
	"CAP_IPC_LOCK": 14, "CAP_SYS_ADMIN": 21, "CAP_SYS_NICE": 23, "CAP_SYS_RESOURCE": 24, "CAP_PERFMON": 38, "CAP_BPF": 39,
}

// unitCaps reads CapabilityBoundingSet= of a unit in dist/systemd.
func unitCaps(t *testing.T, unit string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(), "dist", "systemd", unit))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapabilityBoundingSet="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatalf("%s has no CapabilityBoundingSet=", unit)
	return nil
}

// TestUnitCapabilities runs bin/gvs-dataplane as gvs-dataplane.service
// does — uid 0 limited to the unit's CapabilityBoundingSet, no new
// privileges, the socket group as its primary group — on an AF_XDP veth
// port with KNI and SCHED_FIFO workers, in a namespace of its own: it
// starts, its bounding set is the unit's, the socket has the group and
// mode 0660, dpip reaches it, and a worker thread runs SCHED_FIFO; then
// gvs-controlplane under its unit's set configures a service through it
// and answers on its control socket.
func TestUnitCapabilities(t *testing.T) {
	testenv.RequireRoot(t)
	bin := filepath.Join(repoRoot(), "bin", "gvs-dataplane")
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("bin/gvs-dataplane missing: run make build")
	}
	caps := unitCaps(t, "gvs-dataplane.service")
	var want uint64
	var set []string
	for _, c := range caps {
		n, ok := capNumbers[c]
		if !ok {
			t.Fatalf("unknown capability %s in the unit", c)
		}
		want |= 1 << n
		set = append(set, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	capArg := strings.Join(set, ",")

	const ns = "gvs-install-caps"
	exec.Command("ip", "netns", "del", ns).Run() // left by a killed run
	run(t, "", "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "", "ip", "-n", ns, "link", "add", "cap0", "type", "veth", "peer", "name", "cap1")
	run(t, "", "ip", "-n", ns, "link", "set", "cap0", "up")
	run(t, "", "ip", "-n", ns, "link", "set", "cap1", "up")

	dir := t.TempDir()
	sockDir := filepath.Join(dir, "run")
	if err := os.Mkdir(sockDir, 0o750); err != nil {
		t.Fatal(err)
	}
	// the unit's Group=gvs and api.group: gvs, with a group every Debian has
	const group = "nogroup"
	run(t, "", "chgrp", group, sockDir)
	sock := filepath.Join(sockDir, "dataplane.sock")
	cfg := filepath.Join(dir, "dataplane.yaml")
	y := fmt.Sprintf(`api: {socket: %s, group: %s}
log: {level: info, format: console}
workers: {count: 1, idle: adaptive, rt_priority: 1}
ports:
  - {name: cap0, driver: afxdp, kni: {enabled: true, name: cap0.kni}}
addresses:
  - {addr: 10.77.0.1/24, dev: cap0}
`, sock, group)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "setpriv",
		"--bounding-set=-all,"+capArg, "--inh-caps=-all,"+capArg, "--ambient-caps=-all,"+capArg,
		"--regid="+group, "--clear-groups", "--no-new-privs", bin, "-c", cfg)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cancel(); <-exited })
	testenv.Eventually(t, 20*time.Second, "the API socket", func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("gvs-dataplane with the unit's capabilities (%s) exited: %v\n%s", capArg, err, out.String())
		default:
		}
		_, err := os.Stat(sock)
		return err == nil
	})
	pid := cmd.Process.Pid // ip netns exec and setpriv exec into the dataplane
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "gvs-dataplane" {
		t.Fatalf("pid %d is %q", pid, comm)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			got, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if got != want {
				t.Errorf("bounding set %#x, want the unit's %#x", got, want)
			}
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(sock, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o660 {
		t.Errorf("socket mode %o, want 0660", st.Mode&0o777)
	}
	if g := run(t, "", "stat", "-c", "%G", sock); strings.TrimSpace(g) != group {
		t.Errorf("socket group %q, want %s", g, group)
	}
	if a := run(t, "", filepath.Join(repoRoot(), "bin", "dpip"), "-S", sock, "addr", "show"); !strings.Contains(a, "inet 10.77.0.1/24 scope global cap0") {
		t.Errorf("dpip addr show:\n%s", a)
	}
	// one thread (the worker) runs SCHED_FIFO: policy is field 41 of stat
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	fifo := 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) > 38 && f[38] == "1" { // fields from 3 on: 41 is index 38
			fifo++
		}
	}
	if fifo != 1 {
		t.Errorf("%d threads run SCHED_FIFO, want the one worker", fifo)
	}
	if l := run(t, "", "ip", "-n", ns, "link", "show", "cap0"); !strings.Contains(l, "xdp") {
		t.Errorf("no XDP program on cap0:\n%s", l)
	}

	// gvs-controlplane under its unit's set configures a service through
	// the socket and serves its own control socket
	var cpSet []string
	for _, c := range unitCaps(t, "gvs-controlplane.service") {
		if _, ok := capNumbers[c]; !ok {
			t.Fatalf("unknown capability %s in gvs-controlplane.service", c)
		}
		cpSet = append(cpSet, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	cpArg := strings.Join(cpSet, ",")
	ctlSock := filepath.Join(sockDir, "controlplane.sock")
	cpCfg := filepath.Join(dir, "controlplane.yaml")
	cy := fmt.Sprintf(`dataplane: {socket: %s}
log: {level: info, format: console}
http: {listen: "off"}
control: {socket: %s, group: %s}
virtual_servers:
  - {vip: 10.77.0.100, port: 80, lb_algo: rr, local_addresses: [{ip: 10.77.0.200}], real_servers: [{ip: 10.77.0.11, port: 8080}]}
`, sock, ctlSock, group)
	if err := os.WriteFile(cpCfg, []byte(cy), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "", filepath.Join(repoRoot(), "bin", "dpip"), "-S", sock, "addr", "add", "10.77.0.100/32", "dev", "cap0")
	run(t, "", filepath.Join(repoRoot(), "bin", "dpip"), "-S", sock, "addr", "add", "10.77.0.200/32", "dev", "cap0")
	cpCmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "setpriv",
		"--bounding-set=-all,"+cpArg, "--inh-caps=-all,"+cpArg, "--ambient-caps=-all,"+cpArg,
		"--regid="+group, "--clear-groups", "--no-new-privs", filepath.Join(repoRoot(), "bin", "gvs-controlplane"), "-c", cpCfg)
	var cpOut strings.Builder
	cpCmd.Stdout, cpCmd.Stderr = &cpOut, &cpOut
	if err := cpCmd.Start(); err != nil {
		t.Fatal(err)
	}
	cpExited := make(chan error, 1)
	go func() { cpExited <- cpCmd.Wait() }()
	t.Cleanup(func() { cpCmd.Process.Signal(unix.SIGTERM); <-cpExited })
	ipvsadm := func() string {
		c := exec.Command(filepath.Join(repoRoot(), "bin", "ipvsadm"), "-L", "-n")
		c.Env = append(os.Environ(), "GVS_DATAPLANE_SOCKET="+sock)
		b, _ := c.CombinedOutput()
		return string(b)
	}
	testenv.Eventually(t, 20*time.Second, "the control plane's service in the dataplane", func() bool {
		select {
		case err := <-cpExited:
			cpExited <- err
			t.Fatalf("gvs-controlplane with its unit's capabilities (%s) exited: %v\n%s", cpArg, err, cpOut.String())
		default:
		}
		return strings.Contains(ipvsadm(), "TCP  10.77.0.100:80 rr")
	})
	if st := run(t, "", filepath.Join(repoRoot(), "bin", "gvs-controlplane"), "state", "--control-socket", ctlSock); !strings.Contains(st, "10.77.0.100") {
		t.Errorf("gvs-controlplane state:\n%s", st)
	}
}
