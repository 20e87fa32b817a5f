package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/flowdir"
	"github.com/gvs-lb/gvs/ipvs"
)

// steerPort is a mem port with its own flow steering and RSS, as the dpdk
// driver offers them: it records the rules it is asked to install.
type steerPort struct {
	*mem.Port
	refuse    error // SteeringSupport's answer
	rss       *flowdir.RSSFilter
	rssErr    error
	rules     map[netip.Addr][]flowdir.Rule
	steers    int
	unsteered []netip.Addr
}

func (p *steerPort) SteeringSupport() error { return p.refuse }

func (p *steerPort) Steer(rules []flowdir.Rule) error {
	p.steers++
	for _, r := range rules {
		p.rules[r.LAddr] = append(p.rules[r.LAddr], r)
	}
	return nil
}

func (p *steerPort) Unsteer(a netip.Addr) error {
	p.unsteered = append(p.unsteered, a)
	delete(p.rules, a)
	return nil
}

func (p *steerPort) RSS() (*flowdir.RSSFilter, error) { return p.rss, p.rssErr }

// newSteerDP builds the two-port, two-worker test dataplane with dp1 (the
// local addresses' port) a steerPort, and a FullNAT TCP service with lip.
func newSteerDP(t *testing.T, sp *steerPort) (*Dataplane, ipvs.ServiceKey) {
	t.Helper()
	const workers = 2
	cfg := func(name string) port.Config { return port.Config{Name: name, Queues: workers} }
	sp.Port = mem.New(cfg("dp1"), macDP1)
	sp.rules = map[netip.Addr][]flowdir.Rule{}
	d, err := New(Options{Workers: workers, ConnCapacity: 1024, Forward4: true, Forward6: true, RSSPorts: true},
		[]PortSpec{{Port: mem.New(cfg("dp0"), macDP0)}, {Port: sp}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range lbAddrs {
		p, dev, _ := strings.Cut(a, " ")
		if err := d.AddAddr(netip.MustParsePrefix(p), dev); err != nil {
			t.Fatal(err)
		}
	}
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}
	if err := d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddDest(k, ipvs.DestSpec{Addr: netip.AddrPortFrom(rs1IP, 8080), Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddLAddr(k, ipvs.LAddr{Addr: lip}); err != nil {
		t.Fatal(err)
	}
	return d, k
}

// TestPortSteering: a port with its own steering gets the owner-bit rules
// of a local address (one per protocol and worker, to the worker's queue),
// dpip info says hardware rte_flow rules, the workers pick local ports
// whose replies the port's RSS puts on their own queue, and the rules go
// with the local address.
func TestPortSteering(t *testing.T) {
	key := flowdir.DefaultRSSKey
	key[0] ^= 0x5a // not the default: the filter must come from the port
	reta := make([]uint16, 128)
	for i := range reta {
		reta[i] = uint16((i / 3) % 2)
	}
	sp := &steerPort{rss: &flowdir.RSSFilter{Hash: flowdir.NewToeplitz(key[:]), Queues: 2, RETA: reta}}
	d, k := newSteerDP(t, sp)

	if got, want := d.Steering(), "hardware (rte_flow rules); RSS-aware ports on"; got != want {
		t.Errorf("Steering() = %q, want %q", got, want)
	}
	mask := flowdir.NewSteering(2).Mask()
	got := sp.rules[lip]
	var want []flowdir.Rule
	for _, proto := range []string{"tcp4", "udp4"} {
		for w := 0; w < 2; w++ {
			want = append(want, flowdir.Rule{Dev: "dp1", Proto: proto, LAddr: lip, Worker: w, Mask: mask, ID: -1})
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("rules installed:\n got %+v\nwant %+v", got, want)
	}

	// a second service with the same local address installs nothing more
	k2 := ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip, Port: 53}
	if err := d.AddService(ipvs.ServiceSpec{Key: k2, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddLAddr(k2, ipvs.LAddr{Addr: lip}); err != nil {
		t.Fatal(err)
	}
	if sp.steers != 1 {
		t.Errorf("Steer called %d times for one local address, want 1", sp.steers)
	}

	rs := netip.AddrPortFrom(rs1IP, 8080)
	for _, w := range d.workers {
		for i := 0; i < 32; i++ {
			p, err := w.pool.Get(lip, rs)
			if err != nil {
				t.Fatal(err)
			}
			if int(p&mask) != w.id {
				t.Errorf("worker %d got port %d of worker %d", w.id, p, p&mask)
			}
			h := sp.rss.Hash.Hash4Tuple(rs.Addr(), lip, rs.Port(), p, true)
			if q := sp.rss.Queue(h); q != w.id {
				t.Errorf("worker %d: reply to local port %d hashes to queue %d", w.id, p, q)
			}
		}
	}

	if err := d.DelLAddr(k, lip); err != nil {
		t.Fatal(err)
	}
	if len(sp.unsteered) != 0 {
		t.Errorf("rules removed while service %s still uses %s", k2, lip)
	}
	if err := d.DelLAddr(k2, lip); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sp.unsteered, []netip.Addr{lip}) || len(sp.rules) != 0 {
		t.Errorf("after the last DelLAddr: unsteered %v, rules left %v", sp.unsteered, sp.rules)
	}
}

// TestPortSteeringRefused: a device that refuses the rules (net_ring and
// net_null refuse rte_flow) leaves replies to the software redirect, and
// dpip info says so with the port's reason, as it does for n-tuple.
func TestPortSteeringRefused(t *testing.T) {
	refuse := fmt.Errorf("dpdk: port dp1: the net_ring device does not take rte_flow owner-bit rules (not supported): replies are handed between workers in software: %w",
		flowdir.ErrNoHardwareSteering)
	noRSS := fmt.Errorf("dpdk: port dp1: RSS is off: %w", flowdir.ErrNoRSS)
	sp := &steerPort{refuse: refuse, rssErr: noRSS}
	d, k := newSteerDP(t, sp)
	want := "software redirect (" + refuse.Error() + "); RSS-aware ports unavailable (" + noRSS.Error() + ")"
	if got := d.Steering(); got != want {
		t.Errorf("Steering() =\n %q\nwant\n %q", got, want)
	}
	if sp.steers != 0 || len(sp.rules) != 0 {
		t.Errorf("rules installed on a refusing device: %d calls, %v", sp.steers, sp.rules)
	}
	if !errors.Is(refuse, flowdir.ErrNoHardwareSteering) {
		t.Fatal("test error does not wrap ErrNoHardwareSteering")
	}
	if err := d.DelLAddr(k, lip); err != nil {
		t.Fatal(err)
	}
	if len(sp.unsteered) != 0 {
		t.Errorf("Unsteer called for a local address that had no rules: %v", sp.unsteered)
	}
}
