//go:build linux

package pktgen

// The live-frame generator in the kernel (root): the program's output
// under BPF_PROG_RUN is apply's, byte for byte; and live frames sent out
// of one veth end are counted, every one, on the peer, and the veth pairs
// that keep the programs in the XDP dispatcher are removed afterwards.

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// The kernel runs the program as apply describes it: frame after frame
// (the counter advancing), the output equals apply's for the send time
// the program wrote, and that time lies between the run clock's readings
// before and after the run. Every other frame starts from a page whose
// headers a system rewrote in place (MACs, addresses, ports, TTL,
// checksums, as a FullNAT fast path does): the program restores the
// template's, so the output is the same.
func TestLiveProgramOutput(t *testing.T) {
	testenv.RequireRoot(t) // loading BPF programs
	cfg := liveConfig(60)
	cfg.FrameSize = 128
	lt, err := newLiveTemplate(cfg, macA, macB, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	clock := NewClock()
	var slack int64
	if lt.clockOffset, slack, err = monotonicOffset(clock); err != nil {
		t.Fatal(err)
	}
	prog, counter, err := loadLive(lt)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	defer counter.Close()
	out := make([]byte, len(lt.frame))
	rewritten := append([]byte(nil), lt.frame...)
	for i := 0; i < liveRestore; i++ {
		rewritten[i] ^= byte(0x5a + i) // every header byte the program restores differs
	}
	for g := uint64(0); g < 200; g++ {
		in := lt.frame
		if g%2 == 1 {
			in = rewritten
		}
		before := clock.Now()
		ret, err := prog.Run(&ebpf.RunOptions{Data: in, DataOut: out})
		after := clock.Now()
		if err != nil {
			t.Fatal(err)
		}
		if ret != xdpTX {
			t.Fatalf("frame %d: verdict %d, want XDP_TX", g, ret)
		}
		sent := int64(binary.BigEndian.Uint64(out[liveOffSentNs:]))
		if sent < before-slack || sent > after+slack {
			t.Errorf("frame %d: send time %d outside the run [%d, %d] ± %d on the run clock", g, sent, before, after, slack)
		}
		want := append([]byte(nil), in...)
		lt.apply(want, g, sent)
		if g%2 == 1 && !bytes.Equal(want, func() []byte { w := append([]byte(nil), lt.frame...); lt.apply(w, g, sent); return w }()) {
			t.Fatalf("frame %d: apply does not restore the template's headers", g)
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("frame %d:\nkernel %x\napply  %x", g, out, want)
		}
		decodeVerified(t, out)
	}
	var n uint64
	if err := counter.Lookup(uint32(0), &n); err != nil || n != 200 {
		t.Errorf("counter %d (%v), want 200", n, err)
	}
}

// Live frames leave a0 and arrive on b0: at a rate the path carries,
// every frame the programs counted is received by the sink on b0, all
// flows with their sequence numbers in order, none lost, and the kernel's
// counters of both ends agree; under an unpaced flood pktgen's counts
// never exceed the kernel's.
func TestLiveFramesOnVeth(t *testing.T) {
	nsA, nsB := vethPair(t)
	srv := netip.MustParseAddr("10.0.0.2")
	base := func() Config {
		return Config{
			Mode: ModeUDP, Gen: GenXDPLive, GenThreads: 2,
			Client:   PortSpec{Netns: nsA, Dev: "a0"},
			Server:   PortSpec{Netns: nsB, Dev: "b0"},
			ClientIP: netip.MustParseAddr("10.0.0.1"), Gateway: srv,
			Clients: netip.MustParsePrefix("172.16.0.0/24"), Flows: 256,
			Dsts:        []netip.AddrPort{netip.AddrPortFrom(srv, 9000)},
			ServerAddrs: []netip.Prefix{netip.PrefixFrom(srv, 32)},
			Duration:    time.Second, Drain: 200 * time.Millisecond, VerifyChecksums: true,
		}
	}
	for _, tc := range []struct {
		name string
		rate float64
	}{{"paced", 40000}, {"flood", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			cfg.Rate = tc.rate
			a0, _ := ReadDevCounters(nsA, "a0")
			b0, _ := ReadDevCounters(nsB, "b0")
			res, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			a1, _ := ReadDevCounters(nsA, "a0")
			b1, _ := ReadDevCounters(nsB, "b0")
			kTx, kDrop, kRx := a1.TxPackets-a0.TxPackets, a1.TxDropped-a0.TxDropped, b1.RxPackets-b0.RxPackets
			c, s := res.Client, res.Server
			t.Logf("generator %q: programs ran %d frames, sent %d (device dropped %d); kernel a0 tx %d dropped %d, b0 rx %d; sink read %d (+%d lost in its ring), received %d; offered %.0f pps",
				res.Generator, c["tx_ring_accepted"], res.Sent, res.TxDeviceDropped, kTx, kDrop, kRx, s["rx_packets"], res.RxPortDropped, res.Received, res.OfferedPPS)
			if res.Generator != string(GenXDPLive) || len(res.Warnings) != 0 {
				t.Fatalf("generator %q, want %s; warnings: %v", res.Generator, GenXDPLive, res.Warnings)
			}
			// the veth pairs that kept the programs in the XDP dispatcher are gone
			if links := sh(t, "ip", "-n", nsA, "-o", "link"); strings.Contains(links, "pgk") {
				t.Errorf("dispatcher veth left behind in %s:\n%s", nsA, links)
			}
			if res.Sent == 0 || res.Sent > kTx {
				t.Errorf("pktgen says it sent %d, the kernel counted %d leaving a0", res.Sent, kTx)
			}
			// frames the kernel lost between the redirect and the device's
			// counters are reported, and few (a0 also sent the ARP request
			// of the next-hop resolution)
			if ran, lost := c["tx_ring_accepted"], c["tx_uncounted_loss"]; kTx+kDrop+lost < ran || kTx+kDrop+lost > ran+4 || lost > ran/100 {
				t.Errorf("the programs ran %d frames, a0 counted %d sent and %d dropped, %d reported lost uncounted", ran, kTx, kDrop, lost)
			}
			if s["rx_packets"] > kRx {
				t.Errorf("the sink read %d, the kernel counted %d arriving on b0", s["rx_packets"], kRx)
			}
			if res.Received+res.Lost != res.Sent {
				t.Errorf("sent %d = received %d + lost %d does not hold", res.Sent, res.Received, res.Lost)
			}
			if c["rx_bad_checksum"]+s["rx_bad_checksum"]+s["rx_foreign"] != 0 {
				t.Errorf("bad checksums or foreign frames: client %v server %v", c, s)
			}
			if tc.rate == 0 {
				return
			}
			if res.Lost != 0 || res.TxDeviceDropped != 0 || res.RxPortDropped != 0 {
				t.Errorf("at %v pps: lost %d, device dropped %d, sink ring dropped %d", tc.rate, res.Lost, res.TxDeviceDropped, res.RxPortDropped)
			}
			// b0 also received the one ARP request of the next-hop resolution
			if kRx < res.Sent || kRx > res.Sent+4 {
				t.Errorf("b0 received %d frames, the programs sent %d", kRx, res.Sent)
			}
			if f := res.FlowSt; f == nil || f.Seen != cfg.Flows || f.WithLoss != 0 || s["rx_reordered"] != 0 {
				t.Errorf("flows: %+v, reordered %d", res.FlowSt, s["rx_reordered"])
			}
		})
	}
}
