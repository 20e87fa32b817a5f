package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/header"
)

// linkPort is a mem port whose device takes MTU and promiscuous-mode
// settings, as the dpdk driver's does; it refuses MTUs above 9000.
type linkSetPort struct {
	*mem.Port
	mtus    []int
	promisc []bool
}

func (p *linkSetPort) SetMTU(mtu int) error {
	if mtu > 9000 {
		return errors.New("the device's largest MTU is 9000")
	}
	p.mtus = append(p.mtus, mtu)
	return nil
}

func (p *linkSetPort) SetPromisc(on bool) error { p.promisc = append(p.promisc, on); return nil }

func newLinkSetDP(t *testing.T) (*testDP, *linkSetPort) {
	t.Helper()
	cfg := func(name string) port.Config { return port.Config{Name: name, Queues: 1} }
	p0 := mem.New(cfg("dp0"), macDP0)
	p1 := &linkSetPort{Port: mem.New(cfg("dp1"), macDP1)}
	d, err := New(Options{Workers: 1, ConnCapacity: 1024, Forward4: true, Forward6: true}, []PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range baseAddrs {
		p, dev, _ := strings.Cut(a, " ")
		if err := d.AddAddr(netip.MustParsePrefix(p), dev); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []struct {
		a   netip.Addr
		mac net.HardwareAddr
		dev string
	}{{clientIP, macClient, "dp0"}, {rs1IP, macRS1, "dp1"}} {
		if err := d.AddNeigh(n.a, header.MAC(n.mac), n.dev); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AddVLAN("dp1.100", "dp1", 100); err != nil {
		t.Fatal(err)
	}
	return &testDP{t: t, d: d, ports: []*mem.Port{p0, p1.Port}, w: d.workers[0]}, p1
}

func linkMTUs(d *Dataplane) map[string]int {
	m := map[string]int{}
	for _, l := range d.Links() {
		m[l.Name] = l.MTU
	}
	return m
}

// TestSetLinkMTU: dpip link set dev dp1 mtu 1400 sets the device's MTU and
// the one the workers forward by: a 1428-byte packet with DF towards dp1
// is answered with fragmentation needed, MTU 1400. The port's VLAN comes
// down with it, and stays when the port goes up again.
func TestSetLinkMTU(t *testing.T) {
	td, p1 := newLinkSetDP(t)
	d := td.d
	if err := d.SetLinkMTU("dp1", 1400); err != nil {
		t.Fatal(err)
	}
	if got := linkMTUs(d); got["dp1"] != 1400 || got["dp1.100"] != 1400 || got["dp0"] != 1500 {
		t.Errorf("MTUs after set mtu 1400: %v", got)
	}
	if len(p1.mtus) != 1 || p1.mtus[0] != 1400 {
		t.Errorf("device MTU calls %v, want [1400]", p1.mtus)
	}
	in := udp4(t, macClient, macDP0, clientIP, rs1IP, 64, make([]byte, 1400)) // 1428 bytes of IP
	td.inject(0, in)
	td.stepAll()
	if n := len(td.outAll(1)); n != 0 {
		t.Fatalf("%d frames forwarded over the 1400-byte MTU", n)
	}
	back := td.outAll(0)
	if len(back) != 1 || td.sum(CtrDropMTUExceeded) != 1 {
		t.Fatalf("%d frames back, drop_mtu_exceeded %d", len(back), td.sum(CtrDropMTUExceeded))
	}
	p := decode(t, back[0])
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	m, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip == nil || m == nil || !ip.DstIP.Equal(ipOf(clientIP)) || m.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || m.Seq != 1400 {
		t.Fatalf("answer %v", p)
	}
	// 1400 bytes of IP pass
	td.inject(0, udp4(t, macClient, macDP0, clientIP, rs1IP, 64, make([]byte, 1372)))
	td.stepAll()
	if n := len(td.outAll(1)); n != 1 {
		t.Errorf("a 1400-byte packet: %d frames forwarded, want 1", n)
	}

	if err := d.SetLinkMTU("dp1", 9000); err != nil {
		t.Fatal(err)
	}
	if got := linkMTUs(d); got["dp1"] != 9000 || got["dp1.100"] != 1400 {
		t.Errorf("MTUs after set mtu 9000: %v", got)
	}
}

// TestSetLinkRefused: what cannot be set is refused naming the link and
// the fix, and nothing changes.
func TestSetLinkRefused(t *testing.T) {
	td, p1 := newLinkSetDP(t)
	d := td.d
	for _, c := range []struct {
		name string
		mtu  int
		want string
	}{
		{"dp0", 1400, "link dp0: the mem driver does not set the MTU: set it on the kernel device"},
		{"dp1.100", 1400, "a VLAN interface takes its port's settings: set them on dp1"},
		{"dp9", 1400, "link dp9: set mtu 1400: not found"},
		{"dp1", 67, "link dp1: mtu 67 out of range: use 68-65535"},
		{"dp1", 9001, "link dp1: set mtu 9001: the device's largest MTU is 9000"},
	} {
		err := d.SetLinkMTU(c.name, c.mtu)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetLinkMTU(%s, %d) = %v, want %q", c.name, c.mtu, err, c.want)
		}
	}
	if got := linkMTUs(d); got["dp0"] != 1500 || got["dp1"] != 1500 || got["dp1.100"] != 1500 || len(p1.mtus) != 0 {
		t.Errorf("refused settings changed something: %v, device calls %v", got, p1.mtus)
	}
	if err := d.SetLinkPromisc("dp1", false); err != nil || len(p1.promisc) != 1 || p1.promisc[0] {
		t.Errorf("promisc off on dp1: %v, device calls %v", err, p1.promisc)
	}
	if err := d.SetLinkPromisc("dp0", false); err == nil || !strings.Contains(err.Error(), "link dp0: the mem driver does not switch promiscuous mode") {
		t.Errorf("promisc off on dp0: %v", err)
	}
}
