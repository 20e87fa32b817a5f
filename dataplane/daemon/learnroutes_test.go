package daemon

import (
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/config"
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
