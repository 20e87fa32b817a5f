package dataplane

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"unsafe"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/ipvs"
)

func newChangeDP(t *testing.T, workers int) (*Dataplane, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	td := fixture{Options: Options{Workers: workers, Logger: zap.New(core)}, addrs: []string{}}.build(t)
	return td.d, logs
}

func TestNewRefusesTooManyWorkers(t *testing.T) {
	if got := int(unsafe.Sizeof(Worker{}.redirWake)) * 8; got != MaxWorkers {
		t.Fatalf("MaxWorkers %d, but the wake mask holds %d workers", MaxWorkers, got)
	}
	p := mem.New(port.Config{Name: "dp0", Queues: MaxWorkers + 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x10})
	_, err := New(Options{Workers: MaxWorkers + 1}, []PortSpec{{Port: p}})
	if err == nil || !strings.Contains(err.Error(), "65 workers: at most 64") || !strings.Contains(err.Error(), "lower workers.count") {
		t.Errorf("New with 65 workers: %v", err)
	}
}

// The sequence at the method level: the refused address leaves
// the model and the published snapshot as they were (the same pointer),
// so later changes build and publish.
func TestRefusedChangeKeepsModelAndSnapshot(t *testing.T) {
	d, logs := newChangeDP(t, 1)
	if err := d.AddRoute(RouteSpec{Dst: netip.MustParsePrefix("10.9.0.0/24"), Iface: "dp0"}); err != nil {
		t.Fatal(err)
	}
	snap, m := d.snap.Load(), d.currentModel()
	logs.TakeAll()
	err := d.AddAddr(netip.MustParsePrefix("10.9.0.1/24"), "dp0")
	if err == nil || !strings.Contains(err.Error(), "would duplicate the static route 10.9.0.0/24") {
		t.Fatalf("AddAddr: %v", err)
	}
	if d.snap.Load() != snap {
		t.Error("a refused change published a snapshot")
	}
	if now := d.currentModel(); len(now.ifaces[1].Addrs) != 0 || len(now.routes) != len(m.routes) {
		t.Errorf("a refused change altered the model: %+v", now.ifaces[1])
	}
	if n := logs.Len(); n != 0 {
		t.Errorf("a refused change logged %d entries", n)
	}
	// the snapshot build itself refusing (a route equal to a connected
	// route reached past the checks) changes nothing either
	d.ctl.Lock()
	err = d.change(func(m *model) error {
		m.setAddrs(m.ifaces[1], []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")})
		return nil
	})
	d.ctl.Unlock()
	if err == nil || d.snap.Load() != snap || len(d.currentModel().ifaces[1].Addrs) != 0 {
		t.Errorf("failed snapshot build: err %v, model or snapshot changed", err)
	}
	if err := d.AddAddr(netip.MustParsePrefix("10.8.0.1/24"), "dp0"); err != nil {
		t.Fatal(err)
	}
	if err := d.AddVLAN("dp0.7", "dp0", 7); err != nil {
		t.Fatal(err)
	}
	entries := logs.TakeAll()
	if len(entries) != 2 || entries[0].Message != "control: address added" || entries[0].ContextMap()["addr"] != "10.8.0.1/24" ||
		entries[1].Message != "control: vlan added" || entries[1].ContextMap()["vlan"] != "dp0.7" {
		t.Errorf("applied changes not logged once each: %+v", entries)
	}
}

// IPVS changes go through the dataplane, are logged once, and a refused
// one publishes no table.
func TestServiceChangesLoggedOnce(t *testing.T) {
	d, logs := newChangeDP(t, 2)
	if err := d.AddAddr(netip.MustParsePrefix("10.2.0.100/32"), "dp1"); err != nil {
		t.Fatal(err)
	}
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr("10.1.0.100"), Port: 80}
	logs.TakeAll()
	if err := d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddDest(k, ipvs.DestSpec{Addr: netip.MustParseAddrPort("10.2.0.11:80"), Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddLAddr(k, ipvs.LAddr{Addr: netip.MustParseAddr("10.2.0.100")}); err != nil {
		t.Fatal(err)
	}
	tbl := d.IPVS().Table()
	if err := d.AddLAddr(k, ipvs.LAddr{Addr: netip.MustParseAddr("10.2.0.200")}); err == nil {
		t.Fatal("local address not on the dataplane accepted")
	}
	if err := d.EditService(ipvs.ServiceSpec{Key: k, Sched: "fancy"}); err == nil {
		t.Fatal("unknown scheduler accepted")
	}
	if d.IPVS().Table() != tbl {
		t.Error("a refused service change published a table")
	}
	var msgs []string
	for _, e := range logs.TakeAll() {
		msgs = append(msgs, e.Message+" "+e.ContextMap()["service"].(string))
	}
	want := []string{"control: service added TCP 10.1.0.100:80", "control: destination added TCP 10.1.0.100:80",
		"control: local address added TCP 10.1.0.100:80"}
	if strings.Join(msgs, "|") != strings.Join(want, "|") {
		t.Errorf("logged %q, want %q", msgs, want)
	}
}

func TestParseIfaceAddr(t *testing.T) {
	cases := []struct{ in, dev, want, err string }{
		{"10.1.0.1/24", "dp0", "10.1.0.1/24", ""},
		{"10.1.0.1", "dp0", "10.1.0.1/32", ""},
		{"fd00::1", "dp0", "fd00::1/128", ""},
		{"fe80::1%dp0/64", "dp0", "fe80::1/64", ""},
		{"fe80::1%dp0", "dp0", "fe80::1/128", ""},
		{"fe80::1%dp1/64", "dp0", "", `zone %dp1 differs from dev "dp0"`},
		{"fd00::1%dp0/64", "dp0", "", "not link-local"},
		{"fe80::1%dp0/129", "dp0", "", `prefix length "129"`},
		{"10.1.0.1/", "dp0", "", `prefix length ""`},
		{"10.1.0.1/24/1", "dp0", "", "prefix length"},
		{"x", "dp0", "", "not an address"},
	}
	for _, c := range cases {
		p, err := ParseIfaceAddr(c.in, c.dev)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseIfaceAddr(%q, %q) = %v, %v; want error %q", c.in, c.dev, p, err, c.err)
		case c.err == "" && (err != nil || p.String() != c.want):
			t.Errorf("ParseIfaceAddr(%q, %q) = %v, %v; want %s", c.in, c.dev, p, err, c.want)
		}
	}
}

// FuzzParseIfaceAddr: never panics; what it accepts is a valid prefix
// without a zone whose address and length are the ones written.
func FuzzParseIfaceAddr(f *testing.F) {
	for _, s := range []string{"10.1.0.1/24", "fe80::1%dp0/64", "fe80::1%dp0", "::ffff:1.2.3.4/120", "1.2.3.4/", "%/", "fe80::%dp0/0"} {
		f.Add(s, "dp0")
	}
	f.Fuzz(func(t *testing.T, s, dev string) {
		p, err := ParseIfaceAddr(s, dev)
		if err != nil {
			return
		}
		if !p.IsValid() || p.Addr().Zone() != "" {
			t.Fatalf("%q: accepted %v", s, p)
		}
		addr, bits, has := strings.Cut(s, "/")
		a, _, _ := strings.Cut(addr, "%")
		if want, err := netip.ParseAddr(a); err != nil || want != p.Addr() {
			t.Fatalf("%q: address %v, written %q", s, p.Addr(), a)
		}
		if has {
			if q, err := netip.ParsePrefix(a + "/" + bits); err != nil || q.Bits() != p.Bits() {
				t.Fatalf("%q: length %d, written %q", s, p.Bits(), bits)
			}
		} else if p.Bits() != p.Addr().BitLen() {
			t.Fatalf("%q: bare address became /%d", s, p.Bits())
		}
	})
}
