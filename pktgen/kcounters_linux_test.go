//go:build linux

package pktgen

// pktgen's own counters against the kernel's: a throw-away pair of
// namespaces (gvsb-t-<pid>-a, gvsb-t-<pid>-b) joined by one veth, the
// client port on one end and the server port on the other, both AF_XDP
// as in the benchmark. What pktgen says it sent may never exceed what the
// kernel counted leaving the client device, and what it says it received
// may never exceed what the kernel counted arriving on the server device —
// at a rate the path carries and when the sink is overrun. Needs root;
// skipped otherwise.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/testenv"
)

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// vethPair creates the namespaces and the veth and returns their names.
func vethPair(t *testing.T) (nsA, nsB string) {
	testenv.RequireRoot(t) // network namespaces and AF_XDP
	nsA = fmt.Sprintf("gvsb-t-%d-a", os.Getpid())
	nsB = fmt.Sprintf("gvsb-t-%d-b", os.Getpid())
	for _, ns := range []string{nsA, nsB} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	sh(t, "ip", "link", "add", "a0", "netns", nsA, "type", "veth", "peer", "name", "b0", "netns", nsB)
	sh(t, "ip", "-n", nsA, "link", "set", "a0", "up")
	sh(t, "ip", "-n", nsB, "link", "set", "b0", "up")
	return nsA, nsB
}

func TestCountersMatchKernel(t *testing.T) {
	nsA, nsB := vethPair(t)
	srvAddr := netip.MustParseAddr("10.0.0.2")
	base := func(mode Mode) Config {
		return Config{
			Mode:        mode,
			Client:      PortSpec{Netns: nsA, Dev: "a0"},
			Server:      PortSpec{Netns: nsB, Dev: "b0"},
			ClientIP:    netip.MustParseAddr("10.0.0.1"),
			Gateway:     srvAddr, // resolved by ARP: the server side answers for its address
			Clients:     netip.MustParsePrefix("172.16.0.0/24"),
			Dsts:        []netip.AddrPort{netip.AddrPortFrom(srvAddr, 9000)},
			ServerAddrs: []netip.Prefix{netip.PrefixFrom(srvAddr, 32)},
			Flows:       64,
			Duration:    time.Second,
			Drain:       200 * time.Millisecond,

			VerifyChecksums: true,
		}
	}
	for _, tc := range []struct {
		name string
		cfg  func() Config
	}{
		{"udp paced", func() Config { c := base(ModeUDP); c.Rate = 50000; return c }},
		{"udp flood", func() Config {
			// a small sink ring: the flood overruns it
			c := base(ModeUDP)
			c.Server.Ring, c.Server.Frames = 512, 1024
			return c
		}},
		{"syn flood", func() Config { return base(ModeSYN) }},
		{"tcp", func() Config {
			c := base(ModeTCP)
			c.Dsts = []netip.AddrPort{netip.AddrPortFrom(srvAddr, 8080)}
			c.TCP = TCPConfig{Conns: 2000, Concurrency: 100}
			c.Duration = 10 * time.Second
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg()
			a0, err := ReadDevCounters(nsA, "a0")
			if err != nil {
				t.Fatal(err)
			}
			b0, err := ReadDevCounters(nsB, "b0")
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			a1, _ := ReadDevCounters(nsA, "a0")
			b1, _ := ReadDevCounters(nsB, "b0")
			kTxA, kRxB := a1.TxPackets-a0.TxPackets, b1.RxPackets-b0.RxPackets
			kTxB, kRxA := b1.TxPackets-b0.TxPackets, a1.RxPackets-a0.RxPackets
			c, s := res.Client, res.Server
			t.Logf("client: pktgen tx %d (ring %d, device dropped %d), kernel tx %d; pktgen rx %d, kernel rx %d",
				c["tx_packets"], c["tx_ring_accepted"], res.TxDeviceDropped, kTxA, c["rx_packets"], kRxA)
			t.Logf("server: pktgen rx %d (+%d lost in its ring), kernel rx %d; pktgen tx %d, kernel tx %d",
				s["rx_packets"], res.RxPortDropped, kRxB, s["tx_packets"], kTxB)
			if c["tx_packets"] > kTxA {
				t.Errorf("client: pktgen says it sent %d, the kernel counted %d", c["tx_packets"], kTxA)
			}
			if s["tx_packets"] > kTxB {
				t.Errorf("server: pktgen says it sent %d, the kernel counted %d", s["tx_packets"], kTxB)
			}
			if s["rx_packets"] > kRxB {
				t.Errorf("server: pktgen says it received %d, the kernel counted %d", s["rx_packets"], kRxB)
			}
			if c["rx_packets"] > kRxA {
				t.Errorf("client: pktgen says it received %d, the kernel counted %d", c["rx_packets"], kRxA)
			}
			if res.Received > s["rx_packets"]+c["rx_packets"] {
				t.Errorf("received %d exceeds the packets read %d", res.Received, s["rx_packets"]+c["rx_packets"])
			}
			// and it does not understate either: what the kernel delivered
			// is what pktgen read plus what its own rings dropped
			if got := s["rx_packets"] + res.RxPortDropped; got+got/100 < kRxB {
				t.Errorf("server: pktgen read %d and lost %d in its ring, the kernel delivered %d", s["rx_packets"], res.RxPortDropped, kRxB)
			}
			if c["tx_packets"]+c["tx_packets"]/100 < kTxA {
				t.Errorf("client: pktgen counted %d sent, the kernel %d", c["tx_packets"], kTxA)
			}
			switch cfg.Mode {
			case ModeUDP, ModeSYN:
				if res.Sent == 0 || res.Received+res.Lost != res.Sent {
					t.Errorf("sent %d = received %d + lost %d does not hold", res.Sent, res.Received, res.Lost)
				}
				// paced, every loss is accounted for: dropped in the sink's
				// ring (counted by pktgen) or between the veth's ends (the
				// kernel's counters); a loaded machine may drop some, an
				// unexplained loss is a counting error
				if cfg.Rate > 0 {
					explained := res.RxPortDropped
					if kTxA > kRxB {
						explained += kTxA - kRxB
					}
					if res.Lost > explained {
						t.Errorf("lost %d at %v pps, only %d explained (ring drops %d, kernel tx %d rx %d)",
							res.Lost, cfg.Rate, explained, res.RxPortDropped, kTxA, kRxB)
					}
				}
			case ModeTCP:
				if c["conn_completed"] != 2000 {
					t.Errorf("completed %d connections of 2000: %v", c["conn_completed"], c)
				}
			}
		})
	}
}
