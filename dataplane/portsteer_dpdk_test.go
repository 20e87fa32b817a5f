//go:build dpdk

package dataplane

// Steering and RSS through the dpdk driver on DPDK's virtual devices
// (make dpdk-test, or go test -tags dpdk -run TestDPDKPort ./dataplane/):
// net_ring and net_null refuse rte_flow rules, and dpip info must say so,
// naming the device; net_null reports an RSS key and redirection table,
// which the workers' port choice must then follow. Links carries the
// driver's extended counters to dpip -s link show.

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/dpdk"
	"github.com/gvs-lb/gvs/flowdir"
	"github.com/gvs-lb/gvs/ipvs"
)

var (
	_ portSteerer = (*dpdk.Port)(nil)
	_ portRSS     = (*dpdk.Port)(nil)
)

// dpdkEAL is the EAL of this test binary (one per process): started by the
// first test that needs it. A closed vdev is gone: each test opens its own.
var dpdkEAL = config.DPDK{NoHuge: true, NoShconf: true, NoPCI: true, MemoryMB: 256, LogLevel: "err",
	VDevs: []string{"net_ring0", "net_ring1", "net_null0", "net_null1", "net_ring2", "net_ring3", "net_null2", "net_null3"}}

// newDPDKSteerDP builds a two-worker dataplane on the DPDK devices dev0
// (dp0) and dev1 (dp1, where the local address lives), with RSS-aware
// port selection, and adds a FullNAT service with lip.
func newDPDKSteerDP(t *testing.T, dev0, dev1 string) (*Dataplane, *dpdk.Port) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the DPDK EAL needs root")
	}
	if err := dpdk.Init(dpdkEAL.EALArgs()); err != nil {
		t.Fatal(err)
	}
	var ps []*dpdk.Port
	for i, dev := range []string{dev0, dev1} {
		p, err := dpdk.Open(port.Config{Name: fmt.Sprintf("dp%d", i), Device: dev, Queues: 2, FrameCount: 512, RxRing: 256, TxRing: 256})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		})
		ps = append(ps, p)
	}
	d, err := New(Options{Workers: 2, ConnCapacity: 1024, Forward4: true, Forward6: true, RSSPorts: true},
		[]PortSpec{{Port: ps[0]}, {Port: ps[1]}})
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
	return d, ps[1]
}

// TestDPDKPortSteeringRing: net_ring has neither rte_flow nor RSS.
func TestDPDKPortSteeringRing(t *testing.T) {
	d, _ := newDPDKSteerDP(t, "net_ring0", "net_ring1")
	got := d.Steering()
	for _, want := range []string{
		"software redirect (dpdk: port dp1: the net_ring device does not take rte_flow owner-bit rules",
		"; RSS-aware ports unavailable (dpdk: port dp1: RSS is off",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Steering() = %q, want it to contain %q", got, want)
		}
	}
}

// TestDPDKPortSteeringNullRSS: net_null refuses rte_flow too, but reports
// an RSS key and redirection table (spread over the two queues by the
// driver): the workers pick local ports whose replies it hashes onto their
// own queue.
func TestDPDKPortSteeringNullRSS(t *testing.T) {
	d, p := newDPDKSteerDP(t, "net_null0", "net_null1")
	got := d.Steering()
	want := "software redirect (dpdk: port dp1: the net_null device does not take rte_flow owner-bit rules (Function not implemented): " +
		"replies are handed between workers in software: " + flowdir.ErrNoHardwareSteering.Error() + "); RSS-aware ports on"
	if got != want {
		t.Errorf("Steering() =\n %q\nwant\n %q", got, want)
	}
	f, err := p.RSS()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.RETA) == 0 || f.Queues != 2 {
		t.Fatalf("RSS of net_null: %d RETA entries, %d queues", len(f.RETA), f.Queues)
	}
	for i, q := range f.RETA {
		if int(q) != i%2 {
			t.Fatalf("RETA[%d] = %d, want %d (spread over the queues at open)", i, q, i%2)
		}
	}
	rs := netip.AddrPortFrom(rs1IP, 8080)
	mask := flowdir.NewSteering(2).Mask()
	for _, w := range d.workers {
		for i := 0; i < 32; i++ {
			lport, err := w.pool.Get(lip, rs)
			if err != nil {
				t.Fatal(err)
			}
			if int(lport&mask) != w.id {
				t.Errorf("worker %d got port %d of worker %d", w.id, lport, lport&mask)
			}
			if q := f.Queue(f.Hash.Hash4Tuple(rs.Addr(), lip, rs.Port(), lport, true)); q != w.id {
				t.Errorf("worker %d: net_null hashes the reply to local port %d onto queue %d", w.id, lport, q)
			}
		}
	}
}

// TestDPDKLinkXStats: Links (what dpip -s link show prints) carries a dpdk
// port's extended counters: the PMD's and the driver's own; a port of
// another driver has none.
func TestDPDKLinkXStats(t *testing.T) {
	d, _ := newDPDKSteerDP(t, "net_ring2", "net_ring3")
	for _, l := range d.Links() {
		names := map[string]bool{}
		for _, x := range l.XStats {
			names[x.Name] = true
		}
		for _, want := range []string{"rx_good_packets", "tx_good_bytes", "rx_q1_packets", "gvs_rx_no_frames", "gvs_rx_foreign_copies"} {
			if !names[want] {
				t.Errorf("%s: xstats lack %s: %v", l.Name, want, l.XStats)
			}
		}
	}
}

// TestDPDKLinkSet: dpip link set dev dp1 mtu N reaches the device through
// the driver (net_null keeps the MTU it is given), MTUs whose frames
// would not fit one of the driver's mbufs are refused before the device,
// and a device without a promiscuous switch says so, naming the device.
func TestDPDKLinkSet(t *testing.T) {
	d, p := newDPDKSteerDP(t, "net_null2", "net_null3")
	if p.MaxMTU() != 1898 {
		t.Errorf("MaxMTU = %d, want 1898 (2048-byte frames less 128 headroom, 14 Ethernet, 4 VLAN, 4 CRC)", p.MaxMTU())
	}
	if err := d.SetLinkMTU("dp1", 1400); err != nil {
		t.Fatal(err)
	}
	if p.MTU() != 1400 || linkMTUs(d)["dp1"] != 1400 {
		t.Errorf("after set mtu 1400: device %d, link %d", p.MTU(), linkMTUs(d)["dp1"])
	}
	err := d.SetLinkMTU("dp1", 1899)
	if err == nil || !strings.Contains(err.Error(), "mtu 1899 out of range: the net_null device and the driver's 2048-byte frames take 46-1898") {
		t.Errorf("set mtu 1899: %v", err)
	}
	if p.MTU() != 1400 || linkMTUs(d)["dp1"] != 1400 {
		t.Errorf("a refused MTU changed something: device %d, link %d", p.MTU(), linkMTUs(d)["dp1"])
	}
	err = d.SetLinkPromisc("dp1", false)
	if err == nil || !strings.Contains(err.Error(), "set promiscuous mode on the net_null device: not supported") {
		t.Errorf("promisc off: %v", err)
	}
	if err := d.SetLinkPromisc("dp1", true); err != nil {
		t.Errorf("promisc on (as it is): %v", err)
	}
}
