package dataplane

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/header"
)

// The one test dataplane: two mem ports, dp0 towards the clients (MAC
// macDP0) and dp1 towards the real servers (macDP1), with workers queues
// each, built but not started (tests drive the loops with step/stepAll) and
// configured with the addresses and neighbours the test asks for. Every
// pipeline, load-balancing, KNI, fuzz and benchmark test builds it here.
type fixture struct {
	Options              // Workers defaults to 1; Forward4/6 are set
	frames      int      // buffers per queue (0: the driver's default)
	addrs       []string // "prefix dev" pairs; nil: baseAddrs
	lbNeighbors bool     // static neighbours of the client and the real servers
	kni         KNIDevice
	kniRate     int
	kniCtlRate  int
}

// baseAddrs are the interfaces' addresses; lbAddrs add the VIPs and LIPs.
var (
	baseAddrs = []string{"10.1.0.1/24 dp0", "fd00:1::1/64 dp0", "10.2.0.1/24 dp1", "fd00:2::1/64 dp1"}
	lbAddrs   = append(append([]string(nil), baseAddrs...),
		"10.1.0.100/32 dp0", "fd00:1::100/128 dp0", "10.2.0.100/32 dp1", "fd00:2::100/128 dp1")
)

func (f fixture) build(t testing.TB) *testDP {
	t.Helper()
	o := f.Options
	if o.Workers == 0 {
		o.Workers = 1
	}
	if o.ConnCapacity == 0 {
		o.ConnCapacity = 4096
	}
	o.Forward4, o.Forward6 = true, true
	cfg := func(name string) port.Config {
		return port.Config{Name: name, Queues: o.Workers, FrameCount: f.frames, RxRing: f.frames}
	}
	p0, p1 := mem.New(cfg("dp0"), macDP0), mem.New(cfg("dp1"), macDP1)
	d, err := New(o, []PortSpec{{Port: p0, KNI: f.kni, KNIRate: f.kniRate, KNIControlRate: f.kniCtlRate}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	addrs := f.addrs
	if addrs == nil {
		addrs = baseAddrs
	}
	for _, a := range addrs {
		p, dev, _ := strings.Cut(a, " ")
		if err := d.AddAddr(netip.MustParsePrefix(p), dev); err != nil {
			t.Fatal(err)
		}
	}
	if f.lbNeighbors {
		for _, n := range []struct {
			a   netip.Addr
			mac net.HardwareAddr
			dev string
		}{{clientIP, macClient, "dp0"}, {clientIP6, macClient, "dp0"}, {rs1IP, macRS1, "dp1"}, {rs1IP6, macRS1, "dp1"}, {rs2IP, macRS1, "dp1"}} {
			if err := d.AddNeigh(n.a, header.MAC(n.mac), n.dev); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &testDP{t: t, d: d, ports: []*mem.Port{p0, p1}, w: d.workers[0]}
}
