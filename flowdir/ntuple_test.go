package flowdir

import (
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/testenv"
)

func TestRuleArgs(t *testing.T) {
	rs := RulesFor("eth1", netip.MustParseAddr("10.2.0.100"), NewSteering(2))
	if len(rs) != 4 {
		t.Fatalf("%d rules, want tcp4+udp4 for 2 workers", len(rs))
	}
	got := strings.Join(rs[1].Args(), " ")
	want := "-N eth1 flow-type tcp4 dst-ip 10.2.0.100 dst-port 1 m 0xfffe action 1"
	if got != want {
		t.Errorf("args = %q, want %q", got, want)
	}
	if rs6 := RulesFor("eth1", netip.MustParseAddr("fd00::100"), NewSteering(4)); rs6[0].Proto != "tcp6" || rs6[4].Proto != "udp6" || rs6[3].Mask != 3 {
		t.Errorf("ipv6 rules = %+v", rs6)
	}
}

// On veth (no n-tuple filters) installation must fail with the sentinel,
// not half-install.
func TestInstallDetectsMissingSupport(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Fatal("ethtool missing: make deps installs it")
	}
	name := "gvsfd" + strings.Repeat("0", 1)
	if out, err := exec.Command("ip", "link", "add", name, "type", "veth", "peer", "name", name+"p").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	defer exec.Command("ip", "link", "del", name).Run()
	_, err := Install(RulesFor(name, netip.MustParseAddr("10.2.0.100"), NewSteering(2)))
	if !errors.Is(err, ErrNoHardwareSteering) {
		t.Fatalf("err = %v, want ErrNoHardwareSteering", err)
	}
}
