package sync

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/gvs-lb/gvs/ctrlplane/internal/dptest"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
)

var (
	macDP0    = net.HardwareAddr{2, 0, 0, 0, 0, 0x10} // dptest's ports
	macDP1    = net.HardwareAddr{2, 0, 0, 0, 0, 0x11}
	macClient = net.HardwareAddr{2, 0, 0, 0, 0, 0x01}
	macRS     = net.HardwareAddr{2, 0, 0, 0, 0, 0x02}
	clientAP  = netip.MustParseAddrPort("10.1.0.5:40000")
	vipAP     = netip.MustParseAddrPort("10.1.0.100:80")
	rsAP      = netip.MustParseAddrPort("10.2.0.11:8080")
	lipAddr   = netip.MustParseAddr("10.2.0.100")
)

// startDP runs an in-process dataplane with its workers polling, the
// FullNAT service vip → rs through lip, and static neighbours.
func startDP(t testing.TB, socket string) *dptest.DP {
	t.Helper()
	dp := dptest.Start(t, socket, 1)
	d := dp.DP
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vipAP.Addr(), Port: vipAP.Port()}
	if err := d.AddService(ipvs.ServiceSpec{Key: k, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddDest(k, ipvs.DestSpec{Addr: rsAP, Weight: 1, Fwd: ipvs.FwdFullNAT}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddLAddr(k, ipvs.LAddr{Addr: lipAddr}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		a   netip.Addr
		mac net.HardwareAddr
		dev string
	}{{clientAP.Addr(), macClient, "dp0"}, {rsAP.Addr(), macRS, "dp1"}} {
		if err := d.AddNeigh(n.a, header.MAC(n.mac), n.dev); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return dp
}

type seg struct {
	src, dst      netip.AddrPort
	smac, dmac    net.HardwareAddr
	syn, ack, psh bool
	seq, ackn     uint32
	payload       string
}

func frame(t *testing.T, s seg) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s.src.Addr().AsSlice(), DstIP: s.dst.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.src.Port()), DstPort: layers.TCPPort(s.dst.Port()), SYN: s.syn, ACK: s.ack, PSH: s.psh,
		Seq: s.seq, Ack: s.ackn, Window: 65535}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: s.smac, DstMAC: s.dmac, EthernetType: layers.EthernetTypeIPv4}, ip, tcp, gopacket.Payload(s.payload))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type decoded struct {
	src, dst netip.AddrPort
	tcp      *layers.TCP
}

// pass injects f on port in of dp and returns the one frame the running
// workers send on port out, decoded (checksums verified by gopacket).
func pass(t *testing.T, dp *dptest.DP, in int, f []byte, out int) decoded {
	t.Helper()
	if !dp.Ports[in].MemQueue(0).Inject(f) {
		t.Fatal("inject: ring full")
	}
	var got [][]byte
	waitFor(t, "a frame on the other port", func() bool {
		got = append(got, dp.Ports[out].MemQueue(0).Drain()...)
		return len(got) > 0
	})
	if len(got) != 1 {
		t.Fatalf("%d frames out", len(got))
	}
	p := gopacket.NewPacket(got[0], layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil {
		t.Fatalf("not TCP/IPv4: %v", p)
	}
	tcp.SetNetworkLayerForChecksum(ip)
	// summed over the segment with its checksum field, a valid one folds to 0
	if c, err := tcp.ComputeChecksum(); err != nil || c != 0 {
		t.Fatalf("TCP checksum %#04x does not verify (%#04x, %v)", tcp.Checksum, c, err)
	}
	s, _ := netip.AddrFromSlice(ip.SrcIP)
	d, _ := netip.AddrFromSlice(ip.DstIP)
	return decoded{netip.AddrPortFrom(s, uint16(tcp.SrcPort)), netip.AddrPortFrom(d, uint16(tcp.DstPort)), tcp}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// vethPair makes two network namespaces joined by a veth pair (syA in the
// first, syB in the second, with link-local addresses) and runs open in
// each (i: 0 for the first, 1 for the second); it skips the test when
// namespaces cannot be made (not root).
func vethPair(t *testing.T, open func(i int, ifname string) error) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Skipf("network namespaces: %v", err)
	}
	restore := func() {
		if err := netns.Set(orig); err != nil {
			t.Fatalf("back to the test's namespace: %v", err) // the thread stays locked and dies
		}
		runtime.UnlockOSThread()
	}
	nsA, err := netns.New()
	if err != nil {
		restore()
		t.Skipf("network namespaces: %v (run as root)", err)
	}
	nsB, err := netns.New()
	if err != nil {
		restore()
		t.Skipf("network namespaces: %v", err)
	}
	t.Cleanup(func() { nsA.Close(); nsB.Close() })
	defer restore()
	step := func(what string, err error) {
		if err != nil {
			restore()
			t.Fatalf("%s: %v", what, err)
		}
	}
	step("enter A", netns.Set(nsA))
	step("veth", netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "syA"}, PeerName: "syB"}))
	peer, err := netlink.LinkByName("syB")
	step("peer", err)
	step("move peer", netlink.LinkSetNsFd(peer, int(nsB)))
	for i, ns := range []netns.NsHandle{nsA, nsB} {
		name := []string{"syA", "syB"}[i]
		step("enter", netns.Set(ns))
		l, err := netlink.LinkByName(name)
		step(name, err)
		addr, _ := netlink.ParseAddr([]string{"169.254.77.1/24", "169.254.77.2/24"}[i])
		step("address", netlink.AddrAdd(l, addr))
		step("up", netlink.LinkSetUp(l))
		lo, err := netlink.LinkByName("lo")
		step("lo", err)
		step("lo up", netlink.LinkSetUp(lo))
		step("open "+name, open(i, name))
	}
}
