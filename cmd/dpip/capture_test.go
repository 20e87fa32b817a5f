package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/apiserver"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/internal/cbpf"
	"github.com/gvs-lb/gvs/internal/testenv"
)

var (
	capMAC0, capMAC1 = net.HardwareAddr{2, 0, 0, 0, 0, 0x10}, net.HardwareAddr{2, 0, 0, 0, 0, 0x11}
	capClient        = net.HardwareAddr{2, 0, 0, 0, 0, 0x20}
	capServer        = net.HardwareAddr{2, 0, 0, 0, 0, 0x21}
)

// startForwardingDP runs a dataplane that forwards 10.1.0.0/24 (dp0) to
// 10.2.0.0/24 (dp1), with its API on a temporary socket.
func startForwardingDP(t *testing.T) (string, *dataplane.Dataplane, *mem.Port) {
	p0 := mem.New(port.Config{Name: "dp0", Queues: 1}, capMAC0)
	p1 := mem.New(port.Config{Name: "dp1", Queues: 1}, capMAC1)
	d, err := dataplane.New(dataplane.Options{Workers: 1, Forward4: true}, []dataplane.PortSpec{{Port: p0}, {Port: p1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct{ p, dev string }{{"10.1.0.1/24", "dp0"}, {"10.2.0.1/24", "dp1"}} {
		if err := d.AddAddr(netip.MustParsePrefix(a.p), a.dev); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AddNeigh(netip.MustParseAddr("10.2.0.11"), header.MAC(capServer), "dp1"); err != nil {
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
	return sock, d, p0
}

func udpFrame(t *testing.T, src string, sport uint16) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(src).To4(), DstIP: net.IPv4(10, 2, 0, 11).To4()}
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 9999}
	u.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: capClient, DstMAC: capMAC0, EthernetType: layers.EthernetTypeIPv4}, ip, u, gopacket.Payload("gvs capture")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// runningCapture runs dpip capture ARGS in the background; started is
// closed once dpip reports the capture running, done carries its error,
// stderr all it printed once done.
type runningCapture struct {
	started chan struct{}
	done    chan error
	stderr  bytes.Buffer
	cancel  context.CancelFunc
}

func startDpipCapture(t *testing.T, sock string, args ...string) *runningCapture {
	return startDpipCaptureOut(t, sock, io.Discard, args...)
}

func startDpipCaptureOut(t *testing.T, sock string, stdout io.Writer, args ...string) *runningCapture {
	ca, _, err := parseCaptureArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := compileForTest(t, ca.req.FilterExpr)
	if err != nil {
		t.Fatal(err)
	}
	ca.req.Filter = raw
	ctx, cancel := context.WithCancel(context.Background())
	rc := &runningCapture{started: make(chan struct{}), done: make(chan error, 1), cancel: cancel}
	pr, pw := io.Pipe()
	scanned := make(chan struct{}) // the reader has seen all of stderr
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			rc.stderr.WriteString(sc.Text() + "\n")
			if !once && strings.HasPrefix(sc.Text(), "capturing on ") {
				once = true
				close(rc.started)
			}
		}
	}()
	a := &app{socket: sock, out: stdout}
	go func() {
		err := a.runCapture(ctx, ca, pw)
		pw.Close()
		<-scanned // stderr is complete before done is sent
		a.client.Close()
		rc.done <- err
	}()
	t.Cleanup(cancel)
	return rc
}

func (rc *runningCapture) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-rc.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("dpip capture did not end")
	}
	return nil
}

func (rc *runningCapture) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-rc.started:
	case err := <-rc.done:
		t.Fatalf("dpip capture ended before it started: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("dpip capture did not start")
	}
}

// TestCaptureCommandPcapng: dpip capture -c 4 -w FILE udp writes the rx
// and tx sides of two forwarded packets as pcapng that gopacket, tshark and
// tcpdump read, with the port, direction and worker of each packet.
func TestCaptureCommandPcapng(t *testing.T) {
	sock, _, p0 := startForwardingDP(t)
	file := filepath.Join(t.TempDir(), "cap.pcapng")
	rc := startDpipCapture(t, sock, "-c", "4", "-w", file, "udp", "and", "src", "host", "10.1.0.2")
	rc.waitStarted(t)
	p0.MemQueue(0).Inject(udpFrame(t, "10.1.0.3", 1000)) // filtered out
	p0.MemQueue(0).Inject(udpFrame(t, "10.1.0.2", 1001))
	p0.MemQueue(0).Inject(udpFrame(t, "10.1.0.2", 1002))
	if err := rc.wait(t); err != nil {
		t.Fatalf("%v\n%s", err, rc.stderr.String())
	}
	if !strings.Contains(rc.stderr.String(), "4 packets captured\n0 packets dropped by the capture ring\n0 packets rate-limited\nworker 0: 4 captured") {
		t.Errorf("stderr:\n%s", rc.stderr.String())
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		iface, comment string
		dir            pcapgo.NgEpbFlag
		sport          layers.UDPPort
		ttl            uint8
		src, dst       net.HardwareAddr
	}
	wants := []want{
		{"dp0", "dp0 rx worker 0", pcapgo.NgEpbFlagDirectionInbound, 1001, 64, capClient, capMAC0},
		{"dp1", "dp1 tx worker 0", pcapgo.NgEpbFlagDirectionOutbound, 1001, 63, capMAC1, capServer},
		{"dp0", "dp0 rx worker 0", pcapgo.NgEpbFlagDirectionInbound, 1002, 64, capClient, capMAC0},
		{"dp1", "dp1 tx worker 0", pcapgo.NgEpbFlagDirectionOutbound, 1002, 63, capMAC1, capServer},
	}
	// the worker may see both packets in one burst: order by (rx, tx) within
	// each packet, by packet across them
	seen := map[string]bool{}
	for i := range wants {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		intf, _ := r.Interface(ci.InterfaceIndex)
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		u, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if eth == nil || ip == nil || u == nil || pkt.ErrorLayer() != nil {
			t.Fatalf("packet %d does not decode: %v", i, pkt)
		}
		var dir pcapgo.NgEpbFlag
		if opts.Flags != nil {
			dir = opts.Flags.Direction
		}
		k := (int(u.SrcPort) - 1001) * 2 // rx row of this packet; its tx row follows
		if k < 0 || k > 2 {
			t.Fatalf("packet %d: source port %d", i, u.SrcPort)
		}
		if ip.TTL != 64 {
			k++
		}
		w := wants[k]
		if seen[w.comment+w.sport.String()] {
			t.Errorf("packet %d: %s port %d twice", i, w.comment, w.sport)
		}
		seen[w.comment+w.sport.String()] = true
		if intf.Name != w.iface || len(opts.Comments) != 1 || opts.Comments[0] != w.comment || dir != w.dir || ci.Length != len(data) ||
			u.SrcPort != w.sport || ip.TTL != w.ttl || ip.SrcIP.String() != "10.1.0.2" || ip.DstIP.String() != "10.2.0.11" ||
			eth.SrcMAC.String() != w.src.String() || eth.DstMAC.String() != w.dst.String() || string(u.Payload) != "gvs capture" {
			t.Errorf("packet %d: interface %q comments %q dir %v, %v > %v %s > %s ttl %d sport %d payload %q; want %+v", i, intf.Name, opts.Comments, dir,
				eth.SrcMAC, eth.DstMAC, ip.SrcIP, ip.DstIP, ip.TTL, u.SrcPort, u.Payload, w)
		}
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Errorf("after 4 packets: %v, want EOF", err)
	}
	out, err := exec.Command("tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.comment", "-e", "udp.srcport").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(lines)
	if got, want := strings.Join(lines, "\n"), "dp0\tdp0 rx worker 0\t1001\ndp0\tdp0 rx worker 0\t1002\ndp1\tdp1 tx worker 0\t1001\ndp1\tdp1 tx worker 0\t1002"; got != want {
		t.Errorf("tshark -r:\n%s\nwant\n%s", got, want)
	}
	out, err = exec.Command("tcpdump", "-n", "-r", file).CombinedOutput()
	if err != nil || strings.Count(string(out), "10.1.0.2.100") != 4 {
		t.Errorf("tcpdump -r: %v\n%s", err, out)
	}
}

// TestCaptureCommandOneAtATimeAndCancel: a second capture is refused with
// the reason; interrupting the first still prints its counts and leaves a
// file, and tears the capture down so the next one starts.
func TestCaptureCommandOneAtATimeAndCancel(t *testing.T) {
	sock, d, _ := startForwardingDP(t)
	file := filepath.Join(t.TempDir(), "cap.pcapng")
	first := startDpipCapture(t, sock, "dev", "dp0", "-w", file)
	first.waitStarted(t)
	second := startDpipCapture(t, sock, "-c", "1")
	if err := second.wait(t); err == nil || !strings.Contains(err.Error(), "a capture is already running") {
		t.Errorf("second capture: %v, want it refused as already running", err)
	}
	first.cancel()
	if err := first.wait(t); err != nil {
		t.Errorf("interrupted capture: %v", err)
	}
	if !strings.Contains(first.stderr.String(), "0 packets captured\n") {
		t.Errorf("interrupted capture printed:\n%s", first.stderr.String())
	}
	if f, err := os.Open(file); err != nil {
		t.Error(err)
	} else if _, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions); err != nil {
		t.Errorf("interrupted capture's file: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "the capture torn down after its client left", func() bool {
		c, err := d.StartCapture(dataplane.CaptureSpec{Worker: -1})
		if err == nil {
			c.Stop()
		}
		return err == nil
	})
}

func TestParseCaptureArgs(t *testing.T) {
	ca, sock, err := parseCaptureArgs([]string{"-S", "/x.sock", "dev", "dp1", "tx", "worker", "2", "-c", "5", "-s", "0", "-w", "-", "--rate", "10",
		"host", "10.0.0.1", "and", "port", "80"})
	if err != nil {
		t.Fatal(err)
	}
	r := ca.req
	if sock != "/x.sock" || r.Port != "dp1" || r.Dir != "tx" || r.Worker == nil || *r.Worker != 2 || r.Count != 5 || r.Snaplen != 9216 ||
		ca.out != "-" || r.Rate != 10 || r.FilterExpr != "host 10.0.0.1 and port 80" {
		t.Errorf("parsed %+v sock %q", r, sock)
	}
	// keywords after the filter started belong to the filter
	ca, _, err = parseCaptureArgs([]string{"tcp", "and", "not", "port", "22", "--", "-x"})
	if err != nil || ca.req.FilterExpr != "tcp and not port 22 -x" || ca.req.Worker != nil {
		t.Errorf("parsed %+v, %v", ca.req, err)
	}
	for _, bad := range [][]string{{"-c"}, {"-c", "x"}, {"-q"}, {"worker", "-1"}} {
		if _, _, err := parseCaptureArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// compileForTest compiles the filter as dpip capture does.
func compileForTest(t *testing.T, expr string) ([]uint32, error) {
	t.Helper()
	raw, err := cbpf.Compile(expr)
	if err != nil {
		return nil, err
	}
	return cbpf.ToQuads(raw), nil
}

// TestCaptureCommandLines: without -w, one line per packet names its port,
// direction, worker, addresses, ports and length.
func TestCaptureCommandLines(t *testing.T) {
	sock, _, p0 := startForwardingDP(t)
	var out bytes.Buffer
	rc := startDpipCaptureOut(t, sock, &out, "-c", "2", "udp")
	rc.waitStarted(t)
	p0.MemQueue(0).Inject(udpFrame(t, "10.1.0.2", 1001))
	if err := rc.wait(t); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// gopacket pads the frame to 60 bytes; the dataplane forwards the 53 the IP header covers
	want := []string{" dp0 rx worker 0: IP 10.1.0.2.1001 > 10.2.0.11.9999: UDP, length 60", " dp1 tx worker 0: IP 10.1.0.2.1001 > 10.2.0.11.9999: UDP, length 53"}
	if len(lines) != 2 || !strings.HasSuffix(lines[0], want[0]) || !strings.HasSuffix(lines[1], want[1]) {
		t.Errorf("lines:\n%s\nwant suffixes %q\nstderr:\n%s", out.String(), want, rc.stderr.String())
	}
}
