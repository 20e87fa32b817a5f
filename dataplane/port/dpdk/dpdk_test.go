//go:build dpdk

package dpdk

// Tests on DPDK's virtual devices, without hugepages: net_ring0 is a
// loopback (what a queue transmits it receives, as do net_ring1-5),
// net_null0 receives endless 64-byte frames and swallows what it
// transmits. One EAL serves the whole test binary.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/flowdir"
)

var testEAL = config.DPDK{
	NoHuge: true, NoShconf: true, NoPCI: true, MemoryMB: 256, LogLevel: "err",
	VDevs: []string{"net_ring0", "net_ring1", "net_ring2",
		"net_null0", "net_ring3", "net_ring4", "net_ring5"},
}

func TestMain(m *testing.M) {
	if os.Getenv("GVS_DPDK_EAL_CHILD") != "" {
		// TestEALInitFailure's child: an EAL that wants hugepages
		err := Init([]string{"gvs-dataplane", "-l", "0", "--no-pci", "--in-memory", "--log-level=crit", "-m", "64"})
		fmt.Printf("init error: %v\n", err)
		os.Exit(0)
	}
	if err := Init(testEAL.EALArgs()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func open(t testing.TB, dev string, queues, frames, ring int) *Port {
	t.Helper()
	p, err := Open(port.Config{Name: "dp0", Device: dev, Queues: queues, FrameCount: frames, RxRing: ring, TxRing: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

// udpFrame builds Ethernet/IPv4/UDP from 10.0.0.1:sport to 10.0.0.2:80
// with payload "gvs-<seq>".
func udpFrame(t testing.TB, sport uint16, seq int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2)}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 80}
	udp.SetNetworkLayerForChecksum(ip)
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(fmt.Sprintf("gvs-%d", seq))); err != nil {
		t.Fatal(err)
	}
	return sb.Bytes()
}

// checkUDP decodes b and compares it field by field with udpFrame(sport, seq).
func checkUDP(t testing.TB, b []byte, sport uint16, seq int) {
	t.Helper()
	pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || ip == nil || udp == nil {
		t.Fatalf("packet %d does not decode as Ethernet/IPv4/UDP: %v", seq, pkt)
	}
	if !bytes.Equal(eth.SrcMAC, macA) || !bytes.Equal(eth.DstMAC, macB) {
		t.Errorf("packet %d: MACs %s → %s", seq, eth.SrcMAC, eth.DstMAC)
	}
	if !ip.SrcIP.Equal(net.IPv4(10, 0, 0, 1)) || !ip.DstIP.Equal(net.IPv4(10, 0, 0, 2)) || ip.TTL != 64 {
		t.Errorf("packet %d: IP %s → %s ttl %d", seq, ip.SrcIP, ip.DstIP, ip.TTL)
	}
	if udp.SrcPort != layers.UDPPort(sport) || udp.DstPort != 80 || string(udp.Payload) != fmt.Sprintf("gvs-%d", seq) {
		t.Errorf("packet %d: UDP %d → %d payload %q", seq, udp.SrcPort, udp.DstPort, udp.Payload)
	}
	if err := udp.SetNetworkLayerForChecksum(ip); err == nil {
		if err, v := udp.VerifyChecksum(); err != nil || !v.Valid {
			t.Errorf("packet %d: UDP checksum invalid (%v %v)", seq, v, err)
		}
	}
}

func fill(t testing.TB, q *Queue, bufs []*pktbuf.Buf, seq0 int) {
	t.Helper()
	for i := range bufs {
		b := q.Alloc()
		if b == nil {
			t.Fatalf("Alloc %d: pool exhausted", i)
		}
		if !b.CopyFrom(udpFrame(t, uint16(1000+seq0+i), seq0+i)) {
			t.Fatal("frame does not fit")
		}
		bufs[i] = b
	}
}

// TestRingBurstsBothWays sends a burst on the net_ring loopback and reads
// it back: the same frames (no copy), the same packets, field by field.
func TestRingBurstsBothWays(t *testing.T) {
	p := open(t, "net_ring0", 1, 1024, 256)
	q := p.DPDKQueue(0)
	if p.Driver() != "dpdk" || p.PMD() != "net_ring" || !p.LinkUp() {
		t.Errorf("driver %s pmd %s link %v", p.Driver(), p.PMD(), p.LinkUp())
	}
	var tx, rx [32]*pktbuf.Buf
	fill(t, q, tx[:], 0)
	sentAddr := map[uint64]bool{}
	for _, b := range tx {
		sentAddr[b.Addr] = true
	}
	if n := q.TxBurst(tx[:]); n != 32 {
		t.Fatalf("TxBurst = %d, want 32", n)
	}
	n := q.RxBurst(rx[:])
	if n != 32 {
		t.Fatalf("RxBurst = %d, want 32", n)
	}
	for i, b := range rx[:n] {
		if !sentAddr[b.Addr] || b.Pool() != q.Pool() {
			t.Errorf("packet %d arrived in frame %d, not one of the frames sent (a copy?)", i, b.Addr)
		}
		checkUDP(t, b.Bytes(), uint16(1000+i), i)
		b.Free()
	}
	if s := p.Stats(); s.TxPackets != 32 || s.RxPackets != 32 || s.RxBytes != s.TxBytes || s.TxDropped != 0 {
		t.Errorf("stats %+v", s)
	}
	if q.Pool().Free()+q.Lent() != q.Pool().Size() {
		t.Errorf("frames lost: %d free + %d lent != %d", q.Pool().Free(), q.Lent(), q.Pool().Size())
	}
}

// TestMbufReuse cycles ten times the queue's frames through the device
// with packets of changing length and offset (prepended headers): no frame
// is lost, every packet comes back intact.
func TestMbufReuse(t *testing.T) {
	p := open(t, "net_ring3", 1, 512, 128)
	q := p.DPDKQueue(0)
	var tx, rx [32]*pktbuf.Buf
	total := 0
	for round := 0; total < 10*512; round++ {
		fill(t, q, tx[:], total)
		for i, b := range tx {
			if i%2 == 1 { // move the packet: a prepended, then removed, header
				b.Prepend(14)
				b.Adj(14)
				b.Adj(0)
			}
		}
		if n := q.TxBurst(tx[:]); n != 32 {
			t.Fatalf("round %d: TxBurst = %d", round, n)
		}
		n := q.RxBurst(rx[:])
		if n != 32 {
			t.Fatalf("round %d: RxBurst = %d", round, n)
		}
		for i, b := range rx[:n] {
			checkUDP(t, b.Bytes(), uint16(1000+total+i), total+i)
			b.Free()
		}
		total += n
		if q.Pool().Free()+q.Lent() != q.Pool().Size() {
			t.Fatalf("round %d: %d free + %d lent != %d frames", round, q.Pool().Free(), q.Lent(), q.Pool().Size())
		}
	}
}

// TestForeignBufsCopied: buffers of another port's pool (a packet
// forwarded from net_ring1 to net_ring2) are copied into the transmitting
// queue's frames and the originals go back to their own pool.
func TestForeignBufsCopied(t *testing.T) {
	a := open(t, "net_ring1", 1, 512, 128)
	b := open(t, "net_ring2", 1, 512, 128)
	qa, qb := a.DPDKQueue(0), b.DPDKQueue(0)
	var tx, rx [16]*pktbuf.Buf
	for round := 0; round < 100; round++ {
		fill(t, qa, tx[:], round*16)
		if n := qb.TxBurst(tx[:]); n != 16 {
			t.Fatalf("TxBurst = %d", n)
		}
		n := qb.RxBurst(rx[:])
		if n != 16 {
			t.Fatalf("round %d: RxBurst = %d, want 16", round, n)
		}
		for i, buf := range rx[:n] {
			if buf.Pool() != qb.Pool() {
				t.Fatal("packet not in the transmitting queue's pool")
			}
			checkUDP(t, buf.Bytes(), uint16(1000+round*16+i), round*16+i)
			buf.Free()
		}
		if qa.Pool().Free()+qa.Lent() != qa.Pool().Size() {
			t.Fatalf("round %d: the originals did not return: %d free + %d lent != %d", round, qa.Pool().Free(), qa.Lent(), qa.Pool().Size())
		}
	}
	if s := b.Stats(); s.TxPackets != 1600 || s.RxPackets != 1600 || s.TxDropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

func xstat(xs []XStat, name string) uint64 {
	for _, x := range xs {
		if x.Name == name {
			return x.Value
		}
	}
	return ^uint64(0)
}

// TestZeroAllocsPerBurst: a transmit and a receive burst of 32 packets and
// freeing them allocate nothing in Go.
func TestZeroAllocsPerBurst(t *testing.T) {
	p := open(t, "net_ring4", 1, 1024, 256)
	q := p.DPDKQueue(0)
	var tx, rx [32]*pktbuf.Buf
	frame := udpFrame(t, 1000, 0)
	allocs := testing.AllocsPerRun(200, func() {
		for i := range tx {
			tx[i] = q.Alloc()
			tx[i].CopyFrom(frame)
		}
		q.TxBurst(tx[:])
		n := q.RxBurst(rx[:])
		for _, b := range rx[:n] {
			b.Free()
		}
		q.Flush()
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per burst pair, want 0", allocs)
	}
	if s := p.Stats(); s.RxPackets != s.TxPackets || s.TxPackets < 200*32 {
		t.Errorf("stats %+v", s)
	}
}

// TestMempoolExhaustion: a worker that keeps every received packet starves
// reception; that is counted, nothing crashes, and reception resumes once
// it frees them.
func TestMempoolExhaustion(t *testing.T) {
	p := open(t, "net_null0", 1, 512, 64)
	q := p.DPDKQueue(0)
	var held []*pktbuf.Buf
	var rx [32]*pktbuf.Buf
	empty := 0
	for i := 0; i < 1000 && empty < 3; i++ {
		n := q.RxBurst(rx[:])
		if n == 0 {
			empty++
		}
		held = append(held, rx[:n]...)
	}
	if empty < 3 {
		t.Fatalf("reception never stopped with %d packets held", len(held))
	}
	if len(held) > q.Pool().Size() {
		t.Fatalf("%d packets held out of %d frames", len(held), q.Pool().Size())
	}
	xs, err := p.XStats()
	if err != nil {
		t.Fatal(err)
	}
	if v := xstat(xs, "gvs_rx_no_frames"); v == 0 || v == ^uint64(0) {
		t.Errorf("gvs_rx_no_frames = %d, want > 0", v)
	}
	if b := q.Alloc(); b != nil {
		t.Errorf("Alloc gave a frame with every frame held")
	}
	for _, b := range held {
		if b.Len() != 64 {
			t.Errorf("null frame of %d bytes", b.Len())
		}
		b.Free()
	}
	if n := q.RxBurst(rx[:]); n == 0 {
		t.Error("reception did not resume after the frames were freed")
	} else {
		for _, b := range rx[:n] {
			b.Free()
		}
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(port.Config{Name: "dp0", Device: "0000:99:00.0"})
	if err == nil || !strings.Contains(err.Error(), "no such DPDK device") || !strings.Contains(err.Error(), "the EAL found: ") {
		t.Errorf("unknown device: %v", err)
	}
	_, err = Open(port.Config{Name: "dp0", Device: "net_ring5", Queues: 64})
	if err == nil || !strings.Contains(err.Error(), "64 queues requested") {
		t.Errorf("too many queues: %v", err)
	}
	_, err = Open(port.Config{Name: "dp0", Device: "net_ring5", FrameCount: 300, RxRing: 256})
	if err == nil || !strings.Contains(err.Error(), "set frames to at least 512") {
		t.Errorf("too few frames: %v", err)
	}
	if err := Init([]string{"gvs-dataplane", "-l", "1"}); err == nil || !strings.Contains(err.Error(), "already initialised") {
		t.Errorf("second Init with other arguments: %v", err)
	}
}

// TestSteeringAndRSSReported: the virtual devices have neither rte_flow
// nor an RSS table; both are reported as such, naming the device.
func TestSteeringAndRSSReported(t *testing.T) {
	p := open(t, "net_ring5", 2, 512, 64)
	err := p.SteeringSupport()
	if err == nil || !strings.Contains(err.Error(), "net_ring device does not take rte_flow") {
		t.Errorf("SteeringSupport: %v", err)
	}
	if _, err := p.RSS(); err == nil || !strings.Contains(err.Error(), "net_ring") {
		t.Errorf("RSS: %v", err)
	}
	// Steer is all or nothing: refused with the device named, nothing
	// left for Unsteer or Close to remove
	a := netip.MustParseAddr("10.2.0.100")
	err = p.Steer(flowdir.RulesFor("dp0", a, flowdir.NewSteering(2)))
	if !errors.Is(err, flowdir.ErrNoHardwareSteering) || !strings.Contains(err.Error(), "refused by the net_ring device") {
		t.Errorf("Steer: %v", err)
	}
	if err := p.Unsteer(a); err != nil {
		t.Errorf("Unsteer after a refused Steer: %v", err)
	}
}

// TestEALInitFailure: without hugepages (and without no_huge) the EAL
// fails; Init returns an error saying so, the process does not crash.
func TestEALInitFailure(t *testing.T) {
	if hugepagesAvailable() {
		t.Skip("this host has hugepages: the EAL would start")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GVS_DPDK_EAL_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child crashed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "init error: dpdk: EAL initialisation") || !strings.Contains(string(out), "hugepages") {
		t.Errorf("child output:\n%s", out)
	}
}

func hugepagesAvailable() bool {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "HugePages_Free:" {
			return f[1] != "0"
		}
	}
	return false
}
