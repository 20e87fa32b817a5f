package daemon

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/kni"
	"github.com/gvs-lb/gvs/dataplane/route"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// inNetns runs body in a fresh network namespace on a locked thread.
func inNetns(t *testing.T, body func()) {
	testenv.RequireRoot(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // the thread dies with the namespace still set: never reused
		if _, err := netns.New(); err != nil {
			t.Error(err)
			return
		}
		body()
	}()
	<-done
}

func learnt(dp *dataplane.Dataplane, dst string) *dataplane.RouteInfo {
	for _, r := range dp.Routes() {
		if r.Learnt && r.Dst == netip.MustParsePrefix(dst) {
			return &r
		}
	}
	return nil
}

// kni.learn_routes: ip route add … nexthop … nexthop … on the KNI device
// gives the dataplane a learnt multipath route of the port; ip route del
// removes it; a static route of the same prefix hides it.
func TestLearnRoutesFromKNI(t *testing.T) {
	inNetns(t, func() {
		c := cfg(t, "")
		c.Ports[0].KNI.Enabled = nil // on
		c.Ports[0].KNI.LearnRoutes = true
		c.Ports[0].KNI.Name = "dp0.kni"
		d, err := Start(c, zap.NewNop())
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Close()
		ip := func(args string) {
			if out, err := exec.Command("ip", strings.Fields(args)...).CombinedOutput(); err != nil {
				t.Errorf("ip %s: %v: %s", args, err, out)
			}
		}
		ip("link set dp0.kni up")
		ip("addr add 10.1.0.3/24 dev dp0.kni")
		ip("route add 198.51.100.0/24 nexthop via 10.1.0.251 dev dp0.kni nexthop via 10.1.0.252 dev dp0.kni weight 2")
		ip("route add default via 10.1.0.254")
		testenv.Eventually(t, 5*time.Second, "learnt ECMP and default routes", func() bool {
			return learnt(d.DP, "198.51.100.0/24") != nil && learnt(d.DP, "0.0.0.0/0") != nil
		})
		r := learnt(d.DP, "198.51.100.0/24")
		if r == nil {
			return
		}
		want := []route.NextHop{{Gateway: netip.MustParseAddr("10.1.0.251"), Iface: r.Iface, Weight: 1},
			{Gateway: netip.MustParseAddr("10.1.0.252"), Iface: r.Iface, Weight: 2}}
		if !r.Multipath() || len(r.NextHops) != 2 || r.IfaceName != "dp0" || r.NextHopIfaces[1] != "dp0" ||
			r.NextHops[0].Gateway != want[0].Gateway || r.NextHops[1].Gateway != want[1].Gateway || r.NextHops[1].Weight != 2 {
			t.Errorf("learnt route %+v", r)
		}
		if def := learnt(d.DP, "0.0.0.0/0"); def.Gateway != netip.MustParseAddr("10.1.0.254") || def.Multipath() {
			t.Errorf("learnt default route %+v", def)
		}
		// the operator's static route wins; the learnt one returns when it goes
		if err := d.DP.AddRoute(dataplane.RouteSpec{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.1.0.9"), Metric: 1}); err != nil {
			t.Error(err)
		}
		if learnt(d.DP, "0.0.0.0/0") != nil {
			t.Error("a learnt route shadows a static one")
		}
		if err := d.DP.DelRoute(netip.MustParsePrefix("0.0.0.0/0"), netip.Addr{}); err != nil {
			t.Error(err)
		}
		if learnt(d.DP, "0.0.0.0/0") == nil {
			t.Error("the learnt default route did not come back")
		}
		// dpip route del does not touch learnt routes
		if err := d.DP.DelRoute(netip.MustParsePrefix("198.51.100.0/24"), netip.Addr{}); err == nil {
			t.Error("a learnt route was deleted as a static one")
		}
		ip("route del 198.51.100.0/24")
		testenv.Eventually(t, 5*time.Second, "learnt ECMP route removed", func() bool {
			return learnt(d.DP, "198.51.100.0/24") == nil
		})
		if learnt(d.DP, "0.0.0.0/0") == nil {
			t.Error("the default route went with the other")
		}
	})
}

// routes: [{dst, nexthops: [...]}] in the dataplane YAML is a multipath
// route; a bad next hop is refused naming its field.
func TestMultipathRouteFromConfig(t *testing.T) {
	c := cfg(t, "routes: [{dst: 0.0.0.0/0, nexthops: [{via: 10.1.0.254}, {via: 10.2.0.254, dev: dp1, weight: 3}]}]\n")
	d, err := Start(c, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var got *dataplane.RouteInfo
	for _, r := range d.DP.Routes() {
		if r.Dst == netip.MustParsePrefix("0.0.0.0/0") {
			got = &r
		}
	}
	if got == nil || !got.Multipath() || got.Learnt || len(got.NextHops) != 2 || got.NextHopIfaces[0] != "dp0" || got.NextHopIfaces[1] != "dp1" ||
		got.NextHops[1].Gateway != netip.MustParseAddr("10.2.0.254") || got.NextHops[1].Weight != 3 {
		t.Fatalf("route %+v", got)
	}
	for yaml, want := range map[string]string{
		"routes: [{dst: 0.0.0.0/0, via: 10.1.0.254, nexthops: [{via: 10.2.0.254}]}]\n": "give via/dev or nexthops, not both",
		"routes: [{dst: 0.0.0.0/0, nexthops: [{via: x}]}]\n":                           `routes[0].nexthops[0].via: "x" is not an address`,
		"routes: [{dst: 0.0.0.0/0, nexthops: [{weight: 2}]}]\n":                        "routes[0].nexthops[0]: give via (a gateway) or dev",
	} {
		sock := t.TempDir() + "/dp.sock"
		_, err := config.Parse([]byte("api: {socket: " + sock + "}\nports: [{name: dp0, driver: mem, kni: {enabled: false}}]\n" +
			"addresses: [{addr: 10.1.0.1/24, dev: dp0}]\n" + yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", yaml, err, want)
		}
	}
}

// A real routing daemon: BIRD 2 installs a static ECMP route (two next
// hops, weights 1 and 2) and a single-path one in the kernel through the
// KNI device; the dataplane learns both, and loses them when BIRD
// withdraws them (birdc disable).
func TestLearnRoutesFromBIRD(t *testing.T) {
	if _, err := exec.LookPath("bird"); err != nil {
		t.Fatal("bird (Debian bird2) is missing: scripts/deps.sh installs it")
	}
	inNetns(t, func() {
		c := cfg(t, "")
		c.Ports[0].KNI.Enabled = nil
		c.Ports[0].KNI.LearnRoutes = true
		c.Ports[0].KNI.Name = "dp0.kni"
		d, err := Start(c, zap.NewNop())
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Close()
		for _, args := range []string{"link set lo up", "link set dp0.kni up", "addr add 10.1.0.3/24 dev dp0.kni"} {
			if out, err := exec.Command("ip", strings.Fields(args)...).CombinedOutput(); err != nil {
				t.Errorf("ip %s: %v: %s", args, err, out)
				return
			}
		}
		dir := t.TempDir()
		conf, sock := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl")
		err = os.WriteFile(conf, []byte(`router id 10.1.0.3;
protocol device { scan time 1; }
protocol direct { ipv4; interface "dp0.kni"; }
protocol static s4 {
	ipv4;
	route 198.51.100.0/24 via 10.1.0.251 weight 1 via 10.1.0.252 weight 2;
	route 203.0.113.0/24 via 10.1.0.254;
}
protocol kernel k4 { ipv4 { export all; }; }
`), 0o644)
		if err != nil {
			t.Error(err)
			return
		}
		bird := exec.Command("bird", "-f", "-c", conf, "-s", sock)
		var out bytes.Buffer
		bird.Stdout, bird.Stderr = &out, &out
		if err := bird.Start(); err != nil {
			t.Error(err)
			return
		}
		defer func() {
			bird.Process.Kill()
			bird.Wait()
			if t.Failed() {
				t.Logf("bird output: %s", out.String())
			}
		}()
		testenv.Eventually(t, 10*time.Second, "routes from BIRD learnt", func() bool {
			r := learnt(d.DP, "198.51.100.0/24")
			return r != nil && len(r.NextHops) == 2 && learnt(d.DP, "203.0.113.0/24") != nil
		})
		if r := learnt(d.DP, "198.51.100.0/24"); r != nil {
			if r.NextHops[0].Gateway != netip.MustParseAddr("10.1.0.251") || r.NextHops[0].Weight != 1 ||
				r.NextHops[1].Gateway != netip.MustParseAddr("10.1.0.252") || r.NextHops[1].Weight != 2 || r.NextHopIfaces[0] != "dp0" {
				t.Errorf("ECMP route from BIRD %+v via %v", r.Route, r.NextHopIfaces)
			}
		}
		if r := learnt(d.DP, "203.0.113.0/24"); r != nil && (r.Gateway != netip.MustParseAddr("10.1.0.254") || r.IfaceName != "dp0") {
			t.Errorf("route from BIRD %+v", r.Route)
		}
		if o, err := exec.Command("birdc", "-s", sock, "disable", "s4").CombinedOutput(); err != nil {
			t.Errorf("birdc disable: %v: %s", err, o)
		}
		testenv.Eventually(t, 10*time.Second, "routes withdrawn by BIRD forgotten", func() bool {
			return learnt(d.DP, "198.51.100.0/24") == nil && learnt(d.DP, "203.0.113.0/24") == nil
		})
	})
}

// A learnt route whose gateway the dataplane cannot reach yet is skipped,
// and installed by the retry once an address puts the gateway on a
// connected subnet (the control plane may add addresses after start-up).
func TestLearntRouteRetriedAfterAddress(t *testing.T) {
	d, err := Start(cfg(t, ""), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l := &routeLearner{dp: d.DP, ports: map[int]string{7: "dp0"}, log: zap.NewNop()}
	l.set([]kni.Route{{Dst: netip.MustParsePrefix("198.51.100.0/24"),
		NextHops: []kni.NextHop{{Gateway: netip.MustParseAddr("10.5.0.1"), Ifindex: 7, Weight: 1}, {Gateway: netip.MustParseAddr("10.1.0.252"), Ifindex: 7, Weight: 1}}}})
	if learnt(d.DP, "198.51.100.0/24") != nil || !l.pending {
		t.Fatalf("a route with an unreachable next hop was learnt (pending %v)", l.pending)
	}
	l.retry() // nothing changed: still skipped
	if learnt(d.DP, "198.51.100.0/24") != nil {
		t.Fatal("learnt without a new address")
	}
	if err := d.DP.AddAddr(netip.MustParsePrefix("10.5.0.9/24"), "dp0"); err != nil {
		t.Fatal(err)
	}
	l.retry()
	if r := learnt(d.DP, "198.51.100.0/24"); r == nil || len(r.NextHops) != 2 || l.pending {
		t.Fatalf("after the address: %+v (pending %v)", r, l.pending)
	}
}
