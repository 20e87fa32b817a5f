package dataplane_test

// A million connections listed through the real API server and ipvsadm's
// listing code while two workers keep forwarding (issues 11 and 17).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"google.golang.org/grpc"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/gvs-lb/gvs/ctrlplane/ipvsadm"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/apiserver"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
)

var (
	lsMAC0    = net.HardwareAddr{2, 0, 0, 0, 0, 0x10}
	lsMAC1    = net.HardwareAddr{2, 0, 0, 0, 0, 0x11}
	lsMACSrc  = net.HardwareAddr{2, 0, 0, 0, 0, 0x20}
	lsMACDst  = net.HardwareAddr{2, 0, 0, 0, 0, 0x21}
	lsSrc     = netip.MustParseAddr("10.1.0.2")
	lsDst     = netip.MustParseAddr("10.2.0.2")
	lsVIP     = netip.MustParseAddrPort("10.1.0.100:53")
	lsLAddr   = netip.MustParseAddr("10.2.0.100")
	lsPerWork = 500_000
)

// connChecker consumes `ipvsadm -L -n -c` output line by line and marks
// each FillConns connection it sees.
type connChecker struct {
	t       *testing.T
	partial []byte
	lines   int
	seen    []uint8
	bad     int
	onLine  func(n int)
}

func (c *connChecker) Write(p []byte) (int, error) {
	data := append(c.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		c.line(string(data[:i]))
		data = data[i+1:]
	}
	c.partial = append(c.partial[:0], data...)
	return len(p), nil
}

func (c *connChecker) line(s string) {
	c.lines++
	if c.lines <= 2 { // title and column header
		return
	}
	f := strings.Fields(s)
	// pro expire state source virtual local destination
	if len(f) != 7 || f[0] != "UDP" || f[2] != "UDP" || f[4] != lsVIP.String() {
		if c.bad++; c.bad < 5 {
			c.t.Errorf("line %d: %q", c.lines, s)
		}
		return
	}
	ap, err := netip.ParseAddrPort(f[3])
	a := ap.Addr().As4()
	i := int(a[1]-64)<<16 | int(a[2])<<8 | int(a[3])
	if err != nil || a[0] != 100 || i >= len(c.seen) || dataplane.FillConnsClient(i) != ap {
		if c.bad++; c.bad < 5 {
			c.t.Errorf("line %d: client %q is not one of the test's", c.lines, f[3])
		}
		return
	}
	c.seen[i]++
	if c.onLine != nil {
		c.onLine(c.lines - 2)
	}
}

func lsFrame(t testing.TB) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: lsSrc.AsSlice(), DstIP: lsDst.AsSlice()}
	u := &layers.UDP{SrcPort: 4000, DstPort: 5000}
	u.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: lsMACSrc, DstMAC: lsMAC0, EthernetType: layers.EthernetTypeIPv4}, ip, u, gopacket.Payload("listing"))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkForwarded decodes a frame the dataplane sent and compares it with
// the injected one, field by field; "" if it is right.
func checkForwarded(f []byte) string {
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || ip == nil || u == nil || p.ErrorLayer() != nil {
		return "forwarded frame does not decode: " + p.String()
	}
	if !bytes.Equal(eth.SrcMAC, lsMAC1) || !bytes.Equal(eth.DstMAC, lsMACDst) || ip.TTL != 63 ||
		!ip.SrcIP.Equal(lsSrc.AsSlice()) || !ip.DstIP.Equal(lsDst.AsSlice()) || u.SrcPort != 4000 || u.DstPort != 5000 ||
		string(u.Payload) != "listing" {
		return fmt.Sprintf("forwarded frame: eth %s>%s ttl %d %s>%s udp %d>%d %q", eth.SrcMAC, eth.DstMAC, ip.TTL, ip.SrcIP,
			ip.DstIP, u.SrcPort, u.DstPort, u.Payload)
	}
	// the IPv4 header checksum after the TTL rewrite: the header sums to 0xffff
	sum := uint32(0)
	for i := 0; i < len(ip.Contents); i += 2 {
		sum += uint32(ip.Contents[i])<<8 | uint32(ip.Contents[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff {
		return fmt.Sprintf("forwarded frame: IPv4 header checksum %#04x is wrong", ip.Checksum)
	}
	return ""
}

// TestListMillionConnsWhileForwarding: 1,000,000 connections in two
// workers' tables, listed through the API server and ipvsadm's listing
// code (gRPC over a unix socket) while both workers forward traffic. Every
// connection is listed exactly once; no worker loop copied more than
// ListChunkSize connections; the workers forwarded packets while the
// listing was held up half way. The longest loop is logged, not asserted.
func TestListMillionConnsWhileForwarding(t *testing.T) {
	p0 := mem.New(port.Config{Name: "dp0", Queues: 2}, lsMAC0)
	p1 := mem.New(port.Config{Name: "dp1", Queues: 2}, lsMAC1)
	d, err := dataplane.New(dataplane.Options{Workers: 2, Forward4: true, ConnCapacity: lsPerWork, Idle: dataplane.IdleAdaptive},
		[]dataplane.PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct{ p, dev string }{{"10.1.0.1/24", "dp0"}, {"10.2.0.1/24", "dp1"}} {
		if err := d.AddAddr(netip.MustParsePrefix(a.p), a.dev); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AddNeigh(lsDst, header.MAC(lsMACDst), "dp1"); err != nil {
		t.Fatal(err)
	}
	if err := dataplane.FillConns(d, lsVIP, lsLAddr, lsPerWork); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()

	sock := filepath.Join(t.TempDir(), "dp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterDataplaneServer(g, apiserver.New(d))
	go g.Serve(ln)
	defer g.Stop()
	cl, err := dpclient.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// traffic: one frame at a time on each queue of dp0, forwarded out of
	// the same queue of dp1 by the queue's worker
	frame := lsFrame(t)
	var forwarded atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		checked := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			for q := 0; q < 2; q++ {
				p0.MemQueue(q).Inject(frame)
				out := p1.MemQueue(q).Drain()
				if checked < 8 && len(out) > 0 {
					if msg := checkForwarded(out[0]); msg != "" {
						t.Error(msg)
					}
					checked++
				}
				forwarded.Add(uint64(len(out)))
			}
			runtime.Gosched()
		}
	}()
	stopTraffic := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopTraffic()

	// wait for traffic before listing (a hang here is the test's timeout),
	// then note the longest loop over 200,000 packets without a listing:
	// on a shared machine it includes the time a worker thread is
	// descheduled, which no listing causes
	for forwarded.Load() < 100 {
		runtime.Gosched()
	}
	dataplane.ResetLoopStats(d)
	for f0 := forwarded.Load(); forwarded.Load() < f0+200_000; {
		runtime.Gosched()
	}
	var baseline []time.Duration
	for _, wi := range d.Workers() {
		baseline = append(baseline, time.Duration(wi.Loop.LongestLoopNs))
	}
	dataplane.ResetLoopStats(d)
	var heldFwd uint64
	chk := &connChecker{t: t, seen: make([]uint8, 2*lsPerWork)}
	chk.onLine = func(n int) {
		if n != lsPerWork/2 {
			return
		}
		// hold the listing up (the stream backs up into the workers'
		// chunks) and see both workers keep forwarding
		f0 := forwarded.Load()
		for forwarded.Load() < f0+1000 {
			runtime.Gosched()
		}
		heldFwd = forwarded.Load() - f0
	}
	fwdBefore := forwarded.Load()
	start := time.Now()
	cw := ipvsadm.Lister{Format: ipvsadm.FmtNumeric}.NewConnWriter(chk)
	if err := dpclient.EachConnPage(context.Background(), cl, &pb.ListConnsRequest{}, 30*time.Second, cw.Page); err != nil {
		t.Fatalf("listing after %d lines: %v", chk.lines, err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	fwdDuring := forwarded.Load() - fwdBefore

	missing, dup := 0, 0
	for _, n := range chk.seen {
		switch {
		case n == 0:
			missing++
		case n > 1:
			dup++
		}
	}
	if missing != 0 || dup != 0 || chk.bad != 0 || chk.lines != 2*lsPerWork+2 {
		t.Errorf("%d lines: %d conns missing, %d listed more than once, %d bad lines", chk.lines, missing, dup, chk.bad)
	}
	maxPerLoop, chunks, maxStep, meanStep := dataplane.ListingStats(d)
	for w := range maxPerLoop {
		if maxPerLoop[w] == 0 || maxPerLoop[w] > dataplane.ListChunkSize {
			t.Errorf("worker %d: a loop copied %d conns for the listing, want 1..%d", w, maxPerLoop[w], dataplane.ListChunkSize)
		}
		if want := uint64(lsPerWork / dataplane.ListChunkSize); chunks[w] < want {
			t.Errorf("worker %d: %d chunks, want at least %d", w, chunks[w], want)
		}
	}
	if heldFwd < 1000 {
		t.Errorf("workers forwarded %d packets while the listing was held up", heldFwd)
	}
	var longest []time.Duration
	for _, wi := range d.Workers() {
		longest = append(longest, time.Duration(wi.Loop.LongestLoopNs))
	}
	t.Logf("listed %d conns in %v; %d packets forwarded meanwhile; chunks per worker %v, most conns copied in one loop %v",
		2*lsPerWork, took.Round(time.Millisecond), fwdDuring, chunks, maxPerLoop)
	t.Logf("listing step per worker: mean %v, longest %v; longest worker loop during the listing %v, without a listing %v",
		meanStep, maxStep, longest, baseline)
	stopTraffic()
	d.Stop()
	for w := 0; w < 2; w++ {
		dur, n := dataplane.WholeTableCopy(d, w)
		t.Logf("worker %d: copying its %d conns in one go (the unchunked listing) takes %v", w, n, dur.Round(time.Microsecond))
	}
}

// TestListConnsConcurrentFilteredCancelled: two listings at once on
// running workers, one of them of a single service, and one abandoned
// after its first page; each gets exactly its conns, with their fields.
func TestListConnsConcurrentFilteredCancelled(t *testing.T) {
	const perA, perB = 20_000, 7_000
	vipB, laddrB := netip.MustParseAddrPort("10.1.0.101:53"), netip.MustParseAddr("10.2.0.101")
	p0 := mem.New(port.Config{Name: "dp0", Queues: 2}, lsMAC0)
	p1 := mem.New(port.Config{Name: "dp1", Queues: 2}, lsMAC1)
	d, err := dataplane.New(dataplane.Options{Workers: 2, Forward4: true, ConnCapacity: 1 << 15, Idle: dataplane.IdleAdaptive},
		[]dataplane.PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := dataplane.FillConns(d, lsVIP, lsLAddr, perA); err != nil {
		t.Fatal(err)
	}
	if err := dataplane.FillConns(d, vipB, laddrB, perB); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()

	errStop := errors.New("enough")
	if err := d.ListConns(context.Background(), nil, func([]dataplane.ConnInfo) error { return errStop }); err != errStop {
		t.Fatalf("abandoned listing returned %v, want the callback's error", err)
	}
	var all, onlyB []dataplane.ConnInfo
	var errAll, errB error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); all, errAll = d.Conns(nil) }()
	go func() {
		defer wg.Done()
		onlyB, errB = d.Conns(&ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vipB.Addr(), Port: vipB.Port()})
	}()
	wg.Wait()
	if errAll != nil || errB != nil {
		t.Fatalf("listings: %v, %v", errAll, errB)
	}
	check := func(name string, got []dataplane.ConnInfo, want map[netip.AddrPort]int) {
		t.Helper()
		seen := map[[2]netip.AddrPort]bool{}
		for _, c := range got {
			k := [2]netip.AddrPort{c.Virtual, c.Client}
			if seen[k] {
				t.Fatalf("%s: %s -> %s listed twice", name, c.Client, c.Virtual)
			}
			seen[k] = true
			n, ok := want[c.Virtual]
			if !ok {
				t.Fatalf("%s: conn of %s listed", name, c.Virtual)
			}
			// worker w's conn j: client FillConnsClient(w*n+j), dest 172.16.0.0+j
			laddr := lsLAddr
			if c.Virtual == vipB {
				laddr = laddrB
			}
			a := c.Client.Addr().As4()
			idx := int(a[1]-64)<<16 | int(a[2])<<8 | int(a[3])
			i := idx - c.Worker*n
			if i < 0 || i >= n || dataplane.FillConnsClient(idx) != c.Client {
				t.Fatalf("%s: client %s is not worker %d's", name, c.Client, c.Worker)
			}
			dest := netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)}), 53)
			if c.Proto != header.ProtoUDP || c.State.String() != "UDP" || c.Dest != dest ||
				c.Local != netip.AddrPortFrom(laddr, uint16(1025+i%50000)) || c.Expires <= 0 || c.Expires > 300*time.Second {
				t.Fatalf("%s: conn %+v (index %d)", name, c, i)
			}
		}
		total := 0
		for _, n := range want {
			total += 2 * n
		}
		if len(seen) != total {
			t.Fatalf("%s: %d conns, want %d", name, len(seen), total)
		}
	}
	check("all", all, map[netip.AddrPort]int{lsVIP: perA, vipB: perB})
	check("service B", onlyB, map[netip.AddrPort]int{vipB: perB})
}
