package main

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/apiserver"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
)

// xstatsPort is a mem port with extended counters, as the dpdk driver has.
type xstatsPort struct {
	*mem.Port
	xs []port.XStat
}

func (p xstatsPort) XStats() ([]port.XStat, error) { return p.xs, nil }

// TestLinkXStats: `dpip -s link show` prints a port's extended counters
// after the basic ones, which stay as they are; without -s nothing of
// them is printed; --json carries them.
func TestLinkXStats(t *testing.T) {
	p0 := xstatsPort{Port: mem.New(port.Config{Name: "dp0", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x10}), xs: []port.XStat{
		{Name: "rx_good_packets", Value: 7}, {Name: "tx_good_packets", Value: 5}, {Name: "rx_good_bytes", Value: 448},
		{Name: "tx_good_bytes", Value: 320}, {Name: "rx_q0_errors_and_a_long_name", Value: 1}, {Name: "gvs_rx_no_frames", Value: 0},
	}}
	p1 := mem.New(port.Config{Name: "dp1", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x11})
	d, err := dataplane.New(dataplane.Options{Workers: 1, Forward4: true}, []dataplane.PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "dp.sock")
	g, err := apiserver.New(d).Listen(sock, apiserver.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop(); d.Stop() })

	got := mustDpip(t, sock, "-s link show dp0")
	want := `1: dp0: driver mem mtu 1500 rx-queue 1 tx-queue 1
    UP
    addr 02:00:00:00:00:10
    ipackets            opackets            ibytes              obytes              
    0                   0                   0                   0                   
    ierrors             oerrors             imissed             odropped            
    0                   0                   0                   0                   
    xstats:
    rx_good_packets               tx_good_packets               rx_good_bytes                 tx_good_bytes                 
    7                             5                             448                           320                           
    rx_q0_errors_and_a_long_name  gvs_rx_no_frames              
    1                             0                             
`
	if got != want {
		t.Errorf("-s link show:\n%q\nwant:\n%q", got, want)
	}
	if got := mustDpip(t, sock, "link show dp0"); got != "1: dp0: driver mem mtu 1500 rx-queue 1 tx-queue 1\n    UP\n    addr 02:00:00:00:00:10\n" {
		t.Errorf("link show without -s:\n%q", got)
	}
	if got := mustDpip(t, sock, "-s link show dp1"); len(got) == 0 || strings.Contains(got, "xstats") {
		t.Errorf("a port without extended counters:\n%s", got)
	}
	var links []struct {
		Name  string
		Stats struct {
			Xstats []struct {
				Name  string
				Value json.Number
			}
		}
	}
	if err := json.Unmarshal([]byte(mustDpip(t, sock, "--json -s link show dp0")), &links); err != nil || len(links) != 1 {
		t.Fatalf("--json link show: %v %v", links, err)
	}
	xs := links[0].Stats.Xstats
	if len(xs) != 6 || xs[0].Name != "rx_good_packets" || xs[0].Value.String() != "7" || xs[5].Name != "gvs_rx_no_frames" {
		t.Errorf("--json xstats = %+v", xs)
	}
}

// mtuPort is a mem port whose device takes MTU and promiscuous settings.
type mtuPort struct {
	*mem.Port
	promisc []bool
}

func (p *mtuPort) SetMTU(mtu int) error     { return nil }
func (p *mtuPort) SetPromisc(on bool) error { p.promisc = append(p.promisc, on); return nil }

// TestLinkSet: dpip link set dev DEV mtu N / promisc on|off reaches the
// port's device; link show prints the new MTU; refusals name the fix.
func TestLinkSet(t *testing.T) {
	p0 := mem.New(port.Config{Name: "dp0", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x10})
	p1 := &mtuPort{Port: mem.New(port.Config{Name: "dp1", Queues: 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x11})}
	d, err := dataplane.New(dataplane.Options{Workers: 1, Forward4: true}, []dataplane.PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "dp.sock")
	g, err := apiserver.New(d).Listen(sock, apiserver.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop(); d.Stop() })

	mustDpip(t, sock, "link set dev dp1 mtu 1400 promisc off")
	if got := mustDpip(t, sock, "link show dp1"); !strings.HasPrefix(got, "2: dp1: driver mem mtu 1400 rx-queue 1 tx-queue 1\n") {
		t.Errorf("link show after set mtu 1400:\n%s", got)
	}
	mustDpip(t, sock, "link set dp1 promisc on")
	if len(p1.promisc) != 2 || p1.promisc[0] || !p1.promisc[1] {
		t.Errorf("promiscuous mode calls %v, want [false true]", p1.promisc)
	}
	for _, c := range []struct{ line, want string }{
		{"link set dev dp0 mtu 1400", "link dp0: the mem driver does not set the MTU: set it on the kernel device"},
		{"link set dev dp1 mtu 20", "link dp1: mtu 20 out of range"},
		{"link set dev dp1 mtu big", `link set dp1: mtu "big" is not a number`},
		{"link set dev dp1 promisc maybe", `link set dp1: promisc "maybe": use on or off`},
		{"link set dev dp1", "link set dp1: nothing to set"},
		{"link set dev dp7 mtu 1400", "link dp7: set mtu 1400: not found"},
	} {
		out, err := dpip(t, sock, c.line)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dpip %s: %v %s, want %q", c.line, err, out, c.want)
		}
	}
}
