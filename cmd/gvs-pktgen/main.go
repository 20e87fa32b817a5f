// Command gvs-pktgen generates traffic through a load balancer and counts
// what comes out: fixed-size UDP over many flows (udp), SYN floods (syn)
// and whole TCP conversations in which it plays both the clients and the
// real servers (tcp). It drives its ports with GVS's own AF_XDP driver (or
// AF_PACKET), one pinned worker per queue, and reports every second and at
// the end (text, and JSON with --json). udp --gen xdp-live generates with
// XDP live frames instead (BPF_PROG_RUN), several times faster, so a
// system under test can be overloaded.
//
//	gvs-pktgen udp --client-netns gvsb-gen --client-dev g0 --client-ip 10.11.0.2 --gw 10.11.0.1 \
//	    --clients 172.16.0.0/16 --dst 10.11.0.100:9000 --server-netns gvsb-rs --server-dev r0 \
//	    --server-addrs 10.12.0.0/24 --duration 5s --json out.json
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/pktgen"
)

// opts are the flags shared by every mode.
type opts struct {
	cfg         pktgen.Config
	clientCPUs  string
	serverCPUs  string
	clientIP    string
	gw          string
	gwMAC       string
	clients     string
	ports       string
	dsts        []string
	serverAddrs []string
	jsonFile    string
	quiet       bool
	streamDst   string
}

func main() {
	if err := newRoot().Execute(); err != nil {
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	o := &opts{}
	root := &cobra.Command{
		Use:   "gvs-pktgen",
		Short: "Traffic generator and sink for benchmarking load balancers (AF_XDP / AF_PACKET)",
		Long: `gvs-pktgen sends traffic out of a client port and counts what arrives on a server
port (and back on the client port): per flow, per destination address, with loss
and one-way latency from timestamps in the payload. In tcp mode it also plays the
real servers, so connection rates are not limited by a kernel TCP stack.`,
		SilenceUsage: true,
	}
	f := root.PersistentFlags()
	c := &o.cfg
	f.StringVar(&c.Client.Netns, "client-netns", "", "network namespace of the client port")
	f.StringVar(&c.Client.Dev, "client-dev", "", "client port device (traffic leaves here)")
	f.StringVar(&c.Server.Netns, "server-netns", "", "network namespace of the server port")
	f.StringVar(&c.Server.Dev, "server-dev", "", "server port device (traffic arrives here; the real servers' side)")
	f.StringVar(&c.Client.Driver, "driver", "afxdp", "port driver: afxdp or afpacket")
	f.IntVar(&c.Client.Queues, "queues", 1, "queues (workers) of the client port")
	f.IntVar(&c.ClientTxQueues, "tx-queues", 0, "how many client queues generate traffic (0: all); the others only receive")
	f.IntVar(&c.Server.Queues, "server-queues", 1, "queues (workers) of the server port")
	f.IntVar(&c.Client.Frames, "frames", 0, "buffers per queue (0: driver default)")
	f.IntVar(&c.Client.Ring, "ring", 0, "ring size per queue (0: driver default)")
	f.StringVar(&c.Client.XDPMode, "xdp-mode", "", "afxdp attach mode: native, generic or empty (native, else generic)")
	f.StringVar(&o.clientCPUs, "client-cpus", "", "CPUs to pin client workers to, e.g. 0 or 0,1 (empty: unpinned)")
	f.StringVar(&o.serverCPUs, "server-cpus", "", "CPUs to pin server workers to")
	f.IntVar(&c.ServerRTPriority, "server-rt-priority", 0, "SCHED_FIFO priority of the server workers (0: normal); lets a sink sharing a CPU with the generator take precedence")
	f.StringVar(&o.clientIP, "client-ip", "", "the generator's IPv4 address on the client link (answers ARP)")
	f.StringVar(&o.gw, "gw", "", "next hop (the system under test) to resolve by ARP")
	f.StringVar(&o.gwMAC, "gw-mac", "", "next-hop MAC (skips ARP)")
	f.StringVar(&o.clients, "clients", "172.16.0.0/16", "prefix of client source addresses")
	f.IntVar(&c.ClientAddrs, "client-addrs", 256, "how many client addresses of the prefix to use (0: all)")
	f.StringVar(&o.ports, "ports", "1024-65535", "client source port range")
	f.StringArrayVar(&o.dsts, "dst", nil, "destination IPv4:port (repeatable; round robin)")
	f.StringArrayVar(&o.serverAddrs, "server-addrs", nil, "real-server addresses/prefixes the server port answers for (repeatable)")
	f.Float64Var(&c.Rate, "rate", 0, "packets/s (udp, syn) or connections/s (tcp) in total; 0: as fast as possible")
	f.DurationVar(&c.Duration, "duration", 10*time.Second, "how long to generate")
	f.DurationVar(&c.Warmup, "warmup", time.Second, "start of the run excluded from the rates")
	f.DurationVar(&c.Drain, "drain", 300*time.Millisecond, "how long to keep receiving after generation stops")
	f.IntVar(&c.Burst, "burst", 64, "packets per burst")
	f.DurationVar(&c.IdleSleep, "idle-sleep", 0, "nap of an idle worker before it polls its queue again (0: sleep in poll() until packets arrive, at the cost of a wakeup from the sending CPU per batch)")
	f.BoolVar(&c.VerifyChecksums, "verify-checksums", true, "verify IP and L4 checksums of received packets (bad ones are counted, not counted as received)")
	f.StringVar(&o.jsonFile, "json", "", "write the result as JSON to this file (- for stdout)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress lines")

	udp := &cobra.Command{
		Use:   "udp",
		Short: "fixed-size UDP from many flows at a rate or as fast as possible",
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd, pktgen.ModeUDP) },
	}
	udp.Flags().IntVar(&c.Flows, "flows", 16384, "number of flows (client address × source port)")
	udp.Flags().IntVar(&c.FrameSize, "size", 64, "frame size on the wire in bytes, FCS included (64-1518)")
	udp.Flags().BoolVar(&c.PerFlow, "per-flow", false, "include every flow's tx/rx counts in the JSON")
	udp.Flags().StringVar((*string)(&c.Gen), "gen", string(pktgen.GenPort), "generator: port (the client port's driver) or xdp-live (BPF_PROG_RUN live frames, XDP_TX out of the client device; Linux >= 5.18, falls back to port if refused)")
	udp.Flags().IntVar(&c.GenThreads, "gen-threads", 1, "xdp-live: generator threads, pinned to --client-cpus round robin (must divide --flows)")

	syn := &cobra.Command{
		Use:   "syn",
		Short: "TCP SYN flood from random client addresses and ports",
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd, pktgen.ModeSYN) },
	}
	sy := syn.Flags()
	sy.Float64Var(&c.Stream.Rate, "stream-rate", 0, "also send an established UDP stream at this many packets/s (stamped, counted at the server port) between the SYNs (0: none)")
	sy.StringVar(&o.streamDst, "stream-dst", "", "the stream's destination IPv4:port (a UDP service)")
	sy.IntVar(&c.Stream.Flows, "stream-flows", 1024, "the stream's flows: those of udp mode with --flows N and --dst STREAM-DST, so such a udp run is its baseline")

	tcp := &cobra.Command{
		Use:   "tcp",
		Short: "stateful TCP conversations: clients on the client port, real servers on the server port",
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd, pktgen.ModeTCP) },
	}
	t := &c.TCP
	tf := tcp.Flags()
	tf.IntVar(&t.Concurrency, "concurrency", 0, "connections in flight at most (0: unbounded)")
	tf.IntVar(&t.Conns, "conns", 0, "stop opening connections after this many attempts (0: until the end)")
	tf.IntVar(&t.Requests, "requests", 1, "requests per connection")
	tf.IntVar(&t.RequestSize, "request-size", 64, "request payload bytes (at least 18)")
	tf.IntVar(&t.ResponseSize, "response-size", 128, "response payload bytes (at least 18)")
	tf.BoolVar(&t.Hold, "hold", false, "keep connections open after the last response (concurrent-connection tests)")
	tf.DurationVar(&t.RTO, "rto", 200*time.Millisecond, "first retransmission timeout")
	tf.IntVar(&t.Retries, "retries", 4, "retransmissions before a connection counts as timed out")
	tf.IntVar(&t.MSS, "mss", 1460, "MSS of the server side")

	for _, cmd := range []*cobra.Command{udp, syn} {
		sf := cmd.Flags()
		sf.BoolVar(&c.Search, "search", false, "search the highest rate forwarded within --loss-tolerance (RFC 2544 style) instead of one run at --rate")
		sf.DurationVar(&c.SearchTrial, "trial", time.Second, "duration of one search trial")
		sf.IntVar(&c.SearchSteps, "steps", 6, "bisection steps of the search")
		sf.Float64Var(&c.LossTolerance, "loss-tolerance", 0.1, "loss in percent a passing search trial may have")
	}
	root.AddCommand(udp, syn, tcp)
	return root
}

func (o *opts) run(cmd *cobra.Command, mode pktgen.Mode) error {
	c := &o.cfg
	c.Mode = mode
	c.Server.Driver, c.Server.Frames, c.Server.Ring, c.Server.XDPMode = c.Client.Driver, c.Client.Frames, c.Client.Ring, c.Client.XDPMode
	var err error
	if c.ClientCPUs, err = parseCPUs(o.clientCPUs); err != nil {
		return err
	}
	if c.ServerCPUs, err = parseCPUs(o.serverCPUs); err != nil {
		return err
	}
	if o.clientIP != "" {
		if c.ClientIP, err = netip.ParseAddr(o.clientIP); err != nil {
			return fmt.Errorf("--client-ip: %w", err)
		}
	}
	if o.gw != "" {
		if c.Gateway, err = netip.ParseAddr(o.gw); err != nil {
			return fmt.Errorf("--gw: %w", err)
		}
	}
	if o.gwMAC != "" {
		m, err := pktgen.ParseMAC(o.gwMAC)
		if err != nil {
			return fmt.Errorf("--gw-mac: %w", err)
		}
		c.GatewayMAC = (*header.MAC)(&m)
	}
	if c.Clients, err = parsePrefix(o.clients); err != nil {
		return fmt.Errorf("--clients: %w", err)
	}
	lo, hi, ok := strings.Cut(o.ports, "-")
	pmin, err1 := strconv.ParseUint(lo, 10, 16)
	pmax, err2 := strconv.ParseUint(hi, 10, 16)
	if !ok || err1 != nil || err2 != nil || pmin == 0 {
		return fmt.Errorf("--ports %q: want LOW-HIGH, e.g. 1024-65535", o.ports)
	}
	c.PortMin, c.PortMax = uint16(pmin), uint16(pmax)
	for _, d := range o.dsts {
		ap, err := netip.ParseAddrPort(d)
		if err != nil {
			return fmt.Errorf("--dst %q: want IPv4:port", d)
		}
		c.Dsts = append(c.Dsts, ap)
	}
	if o.streamDst != "" {
		if c.Stream.Dst, err = netip.ParseAddrPort(o.streamDst); err != nil {
			return fmt.Errorf("--stream-dst %q: want IPv4:port", o.streamDst)
		}
	}
	for _, s := range o.serverAddrs {
		p, err := parsePrefix(s)
		if err != nil {
			return fmt.Errorf("--server-addrs: %w", err)
		}
		c.ServerAddrs = append(c.ServerAddrs, p)
	}
	if mode == pktgen.ModeUDP && len(c.ServerAddrs) == 0 {
		// the sink answers ARP for the destinations it receives for
		for _, d := range c.Dsts {
			c.ServerAddrs = append(c.ServerAddrs, netip.PrefixFrom(d.Addr(), 32))
		}
	}
	if c.Stream.Rate > 0 && len(c.ServerAddrs) == 0 && c.Stream.Dst.IsValid() {
		c.ServerAddrs = append(c.ServerAddrs, netip.PrefixFrom(c.Stream.Dst.Addr(), 32))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	progress := out
	if o.quiet {
		progress = nil
	}
	res, err := pktgen.Run(ctx, *c, progress)
	if err != nil {
		return err
	}
	res.WriteText(out)
	if o.jsonFile != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if o.jsonFile == "-" {
			_, err = out.Write(b)
		} else {
			err = os.WriteFile(o.jsonFile, b, 0o644)
		}
		if err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	return nil
}

func parseCPUs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var cpus []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("CPU list %q: want numbers separated by commas", s)
		}
		cpus = append(cpus, n)
	}
	return cpus, nil
}

// parsePrefix accepts a prefix or a single address (as a /32).
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.ParsePrefix(s)
}
