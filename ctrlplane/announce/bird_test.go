package announce

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/ctrlplane/config"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// startBIRD runs a BIRD 2 daemon whose OSPF areas include the two files,
// and returns the speaker's config. BIRD comes from scripts/deps.sh
// (Debian bird2); CI must have it.
func startBIRD(t *testing.T) config.BIRDConf {
	t.Helper()
	bird, err := exec.LookPath("bird")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("bird missing: scripts/deps.sh installs bird2")
		}
		t.Skip("bird missing (apt-get install bird2)")
	}
	testenv.RequireRoot(t)
	dir := t.TempDir()
	c := config.BIRDConf{Socket: filepath.Join(dir, "bird.ctl"), Birdc: "birdc", File: filepath.Join(dir, "gvs4.conf"),
		File6: filepath.Join(dir, "gvs6.conf"), Cost: 10, BackupCost: 110}
	for _, f := range []string{c.File, c.File6} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "bird.conf")
	// OSPF on lo as a stub interface: the router LSA exists and sends nothing
	if err := os.WriteFile(conf, fmt.Appendf(nil, `router id 10.255.0.9;
protocol device {}
protocol ospf v2 gvs4 { ipv4 { import none; export none; }; area 0 {
include "%s";
interface "lo" { stub yes; }; }; }
protocol ospf v3 gvs6 { ipv6 { import none; export none; }; area 0 {
include "%s";
interface "lo" { stub yes; }; }; }
`, c.File, c.File6), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := filepath.Join(dir, "bird.pid")
	if out, err := exec.Command(bird, "-c", conf, "-s", c.Socket, "-P", pid).CombinedOutput(); err != nil {
		t.Fatalf("bird: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("birdc", "-s", c.Socket, "down").Run() })
	testenv.Eventually(t, 10*time.Second, "BIRD's socket", func() bool { _, err := os.Stat(c.Socket); return err == nil })
	return c
}

// stubnets are the stub networks in BIRD's own router LSA, as "PREFIX
// metric COST".
func stubnets(t *testing.T, c config.BIRDConf, proto string) []string {
	t.Helper()
	out, err := exec.Command("birdc", "-s", c.Socket, "show", "ospf", "state", "all", proto).CombinedOutput()
	if err != nil {
		t.Fatalf("birdc show ospf state: %v\n%s", err, out)
	}
	var nets []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == "stubnet" && f[2] == "metric" {
			nets = append(nets, strings.Join(f[1:4], " "))
		}
	}
	slices.Sort(nets)
	return slices.Compact(nets)
}

// TestBIRDStubnets drives a real BIRD: the prefixes set appear as stub
// networks of the node's router LSA (OSPFv2 for IPv4, OSPFv3 for IPv6), a
// backup route with the backup cost, removing one withdraws it, and Close
// withdraws the rest.
func TestBIRDStubnets(t *testing.T) {
	c := startBIRD(t)
	b := NewBIRD(c)
	v4, v4b, v6 := netip.MustParsePrefix("10.1.0.100/32"), netip.MustParsePrefix("10.1.0.101/32"), netip.MustParsePrefix("fd00:1::100/128")
	if err := b.Set(context.Background(), []Route{{Prefix: v4}, {Prefix: v4b, Backup: true}, {Prefix: v6}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the IPv4 stubnets", func() bool {
		return slices.Equal(stubnets(t, c, "gvs4"), []string{"10.1.0.100/32 metric 10", "10.1.0.101/32 metric 110"})
	})
	testenv.Eventually(t, 10*time.Second, "the IPv6 stubnet", func() bool {
		return slices.Contains(stubnets(t, c, "gvs6"), "fd00:1::100/128 metric 10")
	})
	if err := b.Set(context.Background(), []Route{{Prefix: v4}, {Prefix: v6}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "10.1.0.101/32 withdrawn", func() bool {
		return slices.Equal(stubnets(t, c, "gvs4"), []string{"10.1.0.100/32 metric 10"})
	})
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "everything withdrawn", func() bool {
		return len(stubnets(t, c, "gvs4")) == 0 && !slices.Contains(stubnets(t, c, "gvs6"), "fd00:1::100/128 metric 10")
	})
}

// TestBIRDErrors: BIRD not running is an error naming the socket and the
// files, and the change is retried (not remembered as applied).
func TestBIRDErrors(t *testing.T) {
	dir := t.TempDir()
	c := config.BIRDConf{Socket: filepath.Join(dir, "none.ctl"), Birdc: "birdc", File: filepath.Join(dir, "gvs4.conf"), Cost: 10}
	if _, err := exec.LookPath("birdc"); err != nil {
		c.Birdc = "/bin/false"
	}
	b := NewBIRD(c)
	p := []Route{{Prefix: netip.MustParsePrefix("10.1.0.100/32")}}
	err := b.Set(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), c.Socket) || !strings.Contains(err.Error(), c.File) {
		t.Fatalf("err %v, want one naming %s and %s", err, c.Socket, c.File)
	}
	got, _ := os.ReadFile(c.File)
	if !strings.Contains(string(got), "stubnet 10.1.0.100/32 { cost 10; };") {
		t.Errorf("file %q lacks the stubnet", got)
	}
	if err := b.Set(context.Background(), p); err == nil {
		t.Error("the second Set succeeded without BIRD: a failed reload was remembered as applied")
	}
	if err := b.Set(context.Background(), []Route{{Prefix: netip.MustParsePrefix("fd00::1/128")}}); err == nil || !strings.Contains(err.Error(), "announce.bird.file6") {
		t.Errorf("IPv6 without file6: err %v, want one naming announce.bird.file6", err)
	}
}

// TestBIRDRender: own routes get cost, backup routes backup_cost, each
// family in its file.
func TestBIRDRender(t *testing.T) {
	b := NewBIRD(config.BIRDConf{Cost: 10, BackupCost: 110})
	v4, v6 := b.Render([]Route{{Prefix: netip.MustParsePrefix("10.23.0.101/32")}, {Prefix: netip.MustParsePrefix("10.23.0.102/32"), Backup: true},
		{Prefix: netip.MustParsePrefix("fd00:23::102/128"), Backup: true}})
	head := "# written by gvs-controlplane: the prefixes this node announces (docs/cluster.md)\n"
	want4 := head + "stubnet 10.23.0.101/32 { cost 10; };\n" +
		"stubnet 10.23.0.102/32 { cost 110; }; # backup: a peer's local address\n"
	want6 := head + "stubnet fd00:23::102/128 { cost 110; }; # backup: a peer's local address\n"
	if string(v4) != want4 {
		t.Errorf("IPv4 file:\n%s\nwant:\n%s", v4, want4)
	}
	if string(v6) != want6 {
		t.Errorf("IPv6 file:\n%s\nwant:\n%s", v6, want6)
	}
}
