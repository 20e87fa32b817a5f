package main

// dpip capture: tcpdump for the dataplane's ports. The FILTER expression is
// compiled here with tcpdump -ddd (internal/cbpf) and sent as classic BPF;
// the dataplane runs it in the workers. Packets are written as pcapng
// (-w FILE, or -w - for stdout) with one interface block per port and, in
// every packet's comment, the port, direction and worker ("dp0 rx worker
// 0"); the direction is also in the packet's epb_flags (inbound/outbound).
// Without -w a line per packet is printed. At the end (COUNT packets, or
// Ctrl-C) the counts go to stderr, per worker, like tcpdump's.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/spf13/cobra"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/gvs-lb/gvs/internal/cbpf"
)

const captureUsage = `dpip capture [dev PORT] [rx|tx|both] [worker N] [-c COUNT] [-s SNAPLEN] [-w FILE|-] [FILTER...]`

const captureHelp = `Capture the packets GVS's workers receive (before any rewrite) and transmit
(after it), like tcpdump on the dataplane's ports.

  dev PORT     only this port (default: every port)
  rx|tx|both   direction (default: both)
  worker N     only this worker (default: every worker)
  -c COUNT     stop after COUNT packets (default: until Ctrl-C)
  -s SNAPLEN   bytes kept per packet (default 2048, at most 9216; 0: 9216)
  -w FILE      write pcapng to FILE ("-": stdout) for tcpdump -r / tshark -r;
               without -w, print one line per packet
  --rate PPS   packets per second per worker (default: the dataplane's
               capture.rate, 100000)
  FILTER       a tcpdump expression (pcap-filter(7)), compiled with tcpdump -ddd

Each packet's pcapng comment names its port, direction and worker
("dp0 rx worker 0"); the direction is also in its flags. Only one capture
runs at a time. At the end the counts are printed to stderr: packets
captured, and per worker those dropped because the capture ring was full
or the capture's rate was exceeded.

Examples:
  dpip capture dev dp0 rx -c 10 host 10.0.0.1 and tcp port 80
  dpip capture -w /tmp/gvs.pcapng port 80
  dpip capture -w - udp | tshark -r -`

type captureArgs struct {
	req   *pb.CaptureRequest
	out   string // "": print lines
	count uint64
}

// parseCaptureArgs reads the command line; options may come anywhere, the
// keywords dev/worker/rx/tx/both only before the filter.
func parseCaptureArgs(args []string) (*captureArgs, string, error) {
	c := &captureArgs{req: &pb.CaptureRequest{}}
	p := newFilterArgs("capture", captureUsage, args)
	for p.next() {
		a := p.arg
		var err error
		var n uint64
		switch {
		case a == "-c":
			n, err = p.num("count", 32)
			c.count, c.req.Count = n, n
		case a == "-s":
			n, err = p.num("snaplen", 32)
			if n == 0 {
				n = 9216
			}
			c.req.Snaplen = uint32(n)
		case a == "--rate":
			n, err = p.num("rate", 32)
			c.req.Rate = uint32(n)
		case a == "-w":
			c.out, err = p.val()
		case !p.inFilter() && a == "dev":
			c.req.Port, err = p.val()
		case !p.inFilter() && a == "worker":
			n, err = p.num("worker", 32)
			w := int32(n)
			c.req.Worker = &w
		case !p.inFilter() && (a == "rx" || a == "tx" || a == "both"):
			c.req.Dir = a
		default:
			err = p.common()
		}
		if err != nil {
			return c, "", err
		}
	}
	c.req.FilterExpr = p.expr()
	return c, p.socket, nil
}

func captureCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:                strings.TrimPrefix(captureUsage, "dpip "),
		Short:              "capture packets on the dataplane's ports to pcapng (tcpdump syntax filter)",
		Long:               captureHelp,
		DisableFlagParsing: true, // -s and -c mean what they mean to tcpdump here
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, x := range args {
				if x == "-h" || x == "--help" {
					return cmd.Help()
				}
			}
			ca, socket, err := parseCaptureArgs(args)
			if err != nil {
				return err
			}
			if socket != "" {
				a.socket = socket
			}
			raw, err := cbpf.Compile(ca.req.FilterExpr)
			if err != nil {
				return err
			}
			ca.req.Filter = cbpf.ToQuads(raw)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.runCapture(ctx, ca, cmd.ErrOrStderr())
		},
	}
}

// runCapture streams the capture into the sink until it is done, the
// context ends (Ctrl-C) or the stream fails; it prints the counts last.
func (a *app) runCapture(ctx context.Context, ca *captureArgs, stderr io.Writer) error {
	if err := a.dial(); err != nil {
		return err
	}
	var sink captureSink
	switch ca.out {
	case "":
		sink = &lineSink{w: a.out}
	case "-":
		sink = &pcapngSink{w: a.out, filter: ca.req.FilterExpr}
	default:
		f, err := os.Create(ca.out)
		if err != nil {
			return fmt.Errorf("capture: %v: give a writable -w FILE", err)
		}
		defer f.Close()
		sink = &pcapngSink{w: f, filter: ca.req.FilterExpr}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.client.Capture(sctx, ca.req)
	if err != nil {
		return dpclient.Message(err)
	}
	var got uint64
	var last []*pb.CaptureWorkerStats
	var runErr error
	for {
		m, err := stream.Recv()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, io.EOF) {
				runErr = dpclient.Message(err)
			}
			break
		}
		if m.Started {
			fmt.Fprintf(stderr, "capturing on %s, link-type EN10MB (Ethernet), snapshot length %d bytes\n", captureWhat(ca.req), m.Snaplen)
			if err := sink.start(m.Snaplen); err != nil {
				return err
			}
		}
		for _, p := range m.Packets {
			if err := sink.write(p); err != nil {
				runErr = fmt.Errorf("capture: write %s: %v", ca.out, err)
				break
			}
			got++
		}
		if runErr == nil && len(m.Packets) > 0 {
			if err := sink.sync(); err != nil {
				runErr = fmt.Errorf("capture: write %s: %v", ca.out, err)
			}
		}
		if len(m.Stats) > 0 {
			last = m.Stats
		}
		if m.Done || runErr != nil {
			break
		}
	}
	cancel()
	if err := sink.flush(); err != nil && runErr == nil {
		runErr = fmt.Errorf("capture: write %s: %v", ca.out, err)
	}
	printCaptureStats(stderr, got, last)
	return runErr
}

func captureWhat(r *pb.CaptureRequest) string {
	s := "every port"
	if r.Port != "" {
		s = r.Port
	}
	dir := r.Dir
	if dir == "" {
		dir = "both"
	}
	s += " (" + dir
	if r.Worker != nil {
		s += fmt.Sprintf(", worker %d", *r.Worker)
	}
	if r.FilterExpr != "" {
		s += fmt.Sprintf(", filter %q", r.FilterExpr)
	}
	return s + ")"
}

// printCaptureStats: tcpdump's end-of-capture lines, with the workers'
// own counts.
func printCaptureStats(w io.Writer, got uint64, st []*pb.CaptureWorkerStats) {
	var ring, rate uint64
	for _, s := range st {
		ring += s.RingDrops
		rate += s.RateLimited
	}
	fmt.Fprintf(w, "%d packets captured\n%d packets dropped by the capture ring\n%d packets rate-limited\n", got, ring, rate)
	for _, s := range st {
		fmt.Fprintf(w, "worker %d: %d captured, %d dropped by the capture ring, %d rate-limited\n", s.Worker, s.Captured, s.RingDrops, s.RateLimited)
	}
}

type captureSink interface {
	start(snaplen uint32) error
	write(p *pb.CapturePacket) error
	sync() error // after each batch, so a reader (tshark -r -) sees packets as they come
	flush() error
}

// pcapngSink writes one interface block per port, added as ports appear.
type pcapngSink struct {
	w       io.Writer
	filter  string
	snaplen uint32
	ng      *pcapgo.NgWriter
	ifaces  map[string]int
}

func (s *pcapngSink) start(snaplen uint32) error {
	s.snaplen, s.ifaces = snaplen, map[string]int{}
	return nil
}

func (s *pcapngSink) iface(port string) (int, error) {
	if i, ok := s.ifaces[port]; ok {
		return i, nil
	}
	intf := pcapgo.NgInterface{Name: port, Description: "GVS dataplane port " + port, Filter: s.filter,
		OS: "gvs-dataplane", LinkType: layers.LinkTypeEthernet, SnapLength: s.snaplen}
	var i int
	var err error
	if s.ng == nil {
		s.ng, err = pcapgo.NewNgWriterInterface(s.w, intf, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "dpip capture (GVS)"}})
	} else {
		i, err = s.ng.AddInterface(intf)
	}
	if err != nil {
		return 0, err
	}
	s.ifaces[port] = i
	return i, nil
}

func (s *pcapngSink) write(p *pb.CapturePacket) error {
	i, err := s.iface(p.Port)
	if err != nil {
		return err
	}
	flags := &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionInbound}
	if p.Dir == "tx" {
		flags.Direction = pcapgo.NgEpbFlagDirectionOutbound
	}
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, p.UnixNano), CaptureLength: len(p.Data), Length: int(p.OrigLen), InterfaceIndex: i}
	return s.ng.WritePacketWithOptions(ci, p.Data, pcapgo.NgPacketOptions{Comments: []string{packetComment(p)}, Flags: flags})
}

func packetComment(p *pb.CapturePacket) string {
	return fmt.Sprintf("%s %s worker %d", p.Port, p.Dir, p.Worker)
}

func (s *pcapngSink) sync() error {
	if s.ng == nil {
		return nil
	}
	return s.ng.Flush()
}

func (s *pcapngSink) flush() error {
	if s.ng == nil { // nothing captured: still a valid file with one interface
		if s.ifaces == nil {
			s.ifaces = map[string]int{}
		}
		if _, err := s.iface("gvs"); err != nil {
			return err
		}
	}
	return s.ng.Flush()
}

// lineSink prints a tcpdump-like line per packet.
type lineSink struct{ w io.Writer }

func (l *lineSink) start(uint32) error { return nil }
func (l *lineSink) flush() error       { return nil }
func (l *lineSink) sync() error        { return nil }

func (l *lineSink) write(p *pb.CapturePacket) error {
	ts := time.Unix(0, p.UnixNano).Format("15:04:05.000000")
	_, err := fmt.Fprintf(l.w, "%s %s %s worker %d: %s\n", ts, p.Port, p.Dir, p.Worker, summary(p.Data, int(p.OrigLen)))
	return err
}

// summary describes a frame in one line: addresses, ports, TCP flags, length.
func summary(data []byte, orig int) string {
	pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	var b strings.Builder
	var src, dst string
	if ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		src, dst = ip.SrcIP.String(), ip.DstIP.String()
	} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		src, dst = ip6.SrcIP.String(), ip6.DstIP.String()
	} else if arp, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		fmt.Fprintf(&b, "ARP op %d %v > %v", arp.Operation, netIP(arp.SourceProtAddress), netIP(arp.DstProtAddress))
	} else if eth, ok := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); ok {
		fmt.Fprintf(&b, "%v > %v ethertype %v", eth.SrcMAC, eth.DstMAC, eth.EthernetType)
	}
	switch {
	case pkt.Layer(layers.LayerTypeTCP) != nil:
		t := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		fmt.Fprintf(&b, "IP %s.%d > %s.%d: TCP [%s] seq %d ack %d", src, t.SrcPort, dst, t.DstPort, tcpFlags(t), t.Seq, t.Ack)
	case pkt.Layer(layers.LayerTypeUDP) != nil:
		u := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		fmt.Fprintf(&b, "IP %s.%d > %s.%d: UDP", src, u.SrcPort, dst, u.DstPort)
	case src != "":
		fmt.Fprintf(&b, "IP %s > %s", src, dst)
	}
	fmt.Fprintf(&b, ", length %d", orig)
	return b.String()
}

func netIP(b []byte) string {
	if len(b) == 4 {
		return fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3])
	}
	return fmt.Sprintf("%x", b)
}

func tcpFlags(t *layers.TCP) string {
	var f []byte
	for _, x := range []struct {
		on bool
		c  byte
	}{{t.FIN, 'F'}, {t.SYN, 'S'}, {t.RST, 'R'}, {t.PSH, 'P'}, {t.ACK, '.'}} {
		if x.on {
			f = append(f, x.c)
		}
	}
	return string(f)
}
