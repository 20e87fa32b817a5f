package pktgen

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/header"
)

// Mode is what pktgen generates.
type Mode string

// Modes.
const (
	ModeUDP Mode = "udp" // stamped UDP datagrams over a flow set
	ModeSYN Mode = "syn" // TCP SYNs from random sources
	ModeTCP Mode = "tcp" // whole TCP conversations, client and server side
)

// Config is a whole pktgen run.
type Config struct {
	Mode Mode
	// Client is the port the clients' traffic leaves from (and replies to
	// them arrive at); Server the port the traffic arrives at (the real
	// servers' side). Server may be left empty in udp and syn modes, to
	// generate without counting on this host.
	Client, Server PortSpec
	// ClientCPUs and ServerCPUs pin the workers of each port's queues,
	// round robin; empty leaves them unpinned.
	ClientCPUs, ServerCPUs []int
	// ClientTxQueues is how many of the client port's queues generate
	// (0: all). The others only receive: a kernel under test may send the
	// replies to a client on any queue, while a GVS with fewer workers
	// than queues listens only on the first ones.
	ClientTxQueues int
	// ServerRTPriority > 0 runs the server workers SCHED_FIFO, so a sink
	// sharing a CPU with the generator takes precedence over it and the
	// offered load adapts to what can be counted instead of being lost
	// uncounted.
	ServerRTPriority int

	// Addressing on the client side: ClientIP is the generator's own
	// address (ARP is answered for it and for Clients); the next hop's MAC
	// is GatewayMAC, or resolved by ARP for Gateway.
	ClientIP   netip.Addr
	Gateway    netip.Addr
	GatewayMAC *header.MAC
	// Clients is the prefix client source addresses are taken from;
	// ClientAddrs of them are used (all of the prefix if 0 or larger).
	Clients     netip.Prefix
	ClientAddrs int
	// PortMin..PortMax are the client source ports.
	PortMin, PortMax uint16
	// Dsts are the destinations (VIP:port), used round robin.
	Dsts []netip.AddrPort
	// ServerAddrs are the real-server addresses the server side answers
	// ARP and TCP for.
	ServerAddrs []netip.Prefix

	// Flows is the number of distinct flows of udp mode.
	Flows int
	// FrameSize is the on-wire frame size of udp mode (FCS included).
	FrameSize int
	// Rate is packets per second (udp, syn) or new connections per second
	// (tcp) over all client workers; 0 means as fast as possible.
	Rate float64
	// Duration of generation; Warmup at its start is excluded from rates;
	// Drain is how long receiving goes on after generation stops.
	Duration, Warmup, Drain time.Duration
	// settled, if set, is asked after Drain until it reports true (for at
	// most settleMax): whether nothing is in flight any more. The package's
	// tests set it for their in-memory wire, whose goroutine can lag the
	// generator by more than Drain on a loaded machine.
	settled func() bool
	// Burst is the number of packets per rx/tx burst.
	Burst int
	// IdleSleep is how long a worker with nothing to do naps before it
	// looks at its queue again (0: it sleeps in poll() until packets
	// arrive, which costs the sending CPU a wakeup per batch). Its ring
	// must hold what arrives meanwhile.
	IdleSleep time.Duration
	// Gen is what generates udp mode's frames: the client port's driver
	// (GenPort, the default) or XDP live frames (GenXDPLive), which offer
	// several times what a userspace forwarder takes. GenThreads live-frame
	// threads (default 1) are pinned to ClientCPUs round robin and must
	// divide Flows. If the kernel refuses live frames the run falls back
	// to the port driver and says so in its warnings.
	Gen        Generator
	GenThreads int
	// VerifyChecksums checks IP and L4 checksums of everything received.
	VerifyChecksums bool
	// PerFlow includes every flow's counts in the result.
	PerFlow bool

	// Search replaces the fixed-rate run of udp and syn modes by a
	// throughput search (see SearchResult): trials of SearchTrial, at most
	// SearchSteps bisections, passing when at most LossTolerance percent
	// is lost. Warmup is spent unpaced before the first trial.
	Search        bool
	SearchTrial   time.Duration
	SearchSteps   int
	LossTolerance float64

	// Stream is syn mode's established traffic: stamped UDP at a fixed
	// rate over a fixed flow set, sent by the same workers between the
	// SYNs, so a flood's effect on traffic that already has connections
	// is measured in the same run (see StreamResult).
	Stream StreamConfig

	TCP TCPConfig
}

// StreamConfig is syn mode's established UDP stream. Its flows are the
// ones udp mode makes with Flows and Dst (same client addresses and
// ports), so a udp run at the same rate is its baseline without a flood.
type StreamConfig struct {
	// Rate in packets per second over all generating workers; 0: no stream.
	Rate float64
	// Dst is where the stream goes (VIP:port of a UDP service).
	Dst netip.AddrPort
	// Flows is the number of distinct flows (default 1024).
	Flows int
}

// streamFlows returns the stream's flows: udp mode's flows for the same
// flow count and destination.
func (c *Config) streamFlows() []flow {
	u := *c
	u.Flows, u.Dsts = c.Stream.Flows, []netip.AddrPort{c.Stream.Dst}
	return makeFlows(&u)
}

// TCPConfig are the tcp mode's settings.
type TCPConfig struct {
	// Concurrency bounds the connections in flight (0: no bound beyond
	// the client port space).
	Concurrency int
	// Conns stops opening connections after this many attempts (0: open
	// until the end of the run).
	Conns int
	// Requests per connection and the sizes of request and response
	// payloads (at least a stamp).
	Requests     int
	RequestSize  int
	ResponseSize int
	// Hold keeps connections open after their last response (concurrent
	// connection tests) instead of closing them.
	Hold bool
	// RTO is the first retransmission timeout; Retries how many times a
	// segment is sent again before the connection counts as timed out.
	RTO     time.Duration
	Retries int
	// MSS the server side advertises and sends.
	MSS int
}

// ApplyDefaults fills zero fields.
func (c *Config) ApplyDefaults() {
	if c.Burst <= 0 {
		c.Burst = 64
	}
	if c.Gen == "" {
		c.Gen = GenPort
	}
	if c.Flows <= 0 {
		c.Flows = 16384
	}
	if c.FrameSize <= 0 {
		c.FrameSize = 64
	}
	if c.PortMin == 0 {
		c.PortMin = 1024
	}
	if c.PortMax == 0 {
		c.PortMax = 65535
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 300 * time.Millisecond
	}
	if c.SearchTrial <= 0 {
		c.SearchTrial = time.Second
	}
	if c.SearchSteps <= 0 {
		c.SearchSteps = 6
	}
	if c.Stream.Flows <= 0 {
		c.Stream.Flows = 1024
	}
	t := &c.TCP
	if t.Requests <= 0 {
		t.Requests = 1
	}
	if t.RequestSize < StampLen {
		t.RequestSize = max(t.RequestSize, 64)
	}
	if t.ResponseSize < StampLen {
		t.ResponseSize = max(t.ResponseSize, 128)
	}
	if t.RTO <= 0 {
		t.RTO = 200 * time.Millisecond
	}
	if t.Retries <= 0 {
		t.Retries = 4
	}
	if t.MSS <= 0 {
		t.MSS = 1460
	}
}

// Validate reports every problem with c.
func (c *Config) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	switch c.Mode {
	case ModeUDP, ModeSYN, ModeTCP:
	default:
		bad("mode %q: use udp, syn or tcp", c.Mode)
	}
	if !c.ClientIP.Is4() {
		bad("client address %v: give the generator's IPv4 address on the client link (--client-ip)", c.ClientIP)
	}
	if c.GatewayMAC == nil && !c.Gateway.Is4() {
		bad("next hop unknown: give --gw-mac or --gw (IPv4, resolved by ARP)")
	}
	if !c.Clients.IsValid() || !c.Clients.Addr().Is4() {
		bad("client prefix %v: give an IPv4 prefix for client addresses (--clients)", c.Clients)
	}
	if len(c.Dsts) == 0 {
		bad("no destination: give --dst VIP:PORT")
	}
	for _, d := range c.Dsts {
		if !d.Addr().Is4() || d.Port() == 0 {
			bad("destination %v: want IPv4:port", d)
		}
	}
	for _, p := range c.ServerAddrs {
		if !p.Addr().Is4() {
			bad("server prefix %v: want IPv4", p)
		}
	}
	if c.Mode == ModeTCP && len(c.ServerAddrs) == 0 {
		bad("tcp mode: give the real servers' addresses (--server-addrs) so the server side answers for them")
	}
	if c.PortMin > c.PortMax {
		bad("client ports %d-%d: empty range", c.PortMin, c.PortMax)
	} else if c.Mode == ModeUDP && c.Clients.IsValid() {
		if n := c.clientAddrCount() * (int(c.PortMax) - int(c.PortMin) + 1); c.Flows > n {
			bad("%d flows but only %d client address × port pairs: widen --clients/--client-addrs or --ports", c.Flows, n)
		}
	}
	if c.FrameSize < 64 || c.FrameSize > 1518 {
		bad("frame size %d: use 64-1518 (on-wire bytes including FCS)", c.FrameSize)
	}
	if c.Burst > maxBurst {
		bad("burst %d: at most %d", c.Burst, maxBurst)
	}
	switch c.Gen {
	case GenPort:
	case GenXDPLive:
		if c.Mode != ModeUDP {
			bad("--gen %s generates udp mode only (syn and tcp use the port driver)", GenXDPLive)
		}
		if len(c.Dsts) > 1 {
			bad("--gen %s sends to one destination: give one --dst", GenXDPLive)
		}
		if n := c.liveThreads(); n > 16 || c.Flows%n != 0 {
			bad("--gen-threads %d: use 1-16 threads dividing --flows %d (each flow is one thread's)", n, c.Flows)
		}
	default:
		bad("generator %q: use %s or %s", c.Gen, GenPort, GenXDPLive)
	}
	if c.Search && c.Mode == ModeTCP {
		bad("--search is for udp and syn modes (tcp is closed-loop: bound it with --concurrency)")
	}
	if c.LossTolerance < 0 || c.LossTolerance >= 100 {
		bad("loss tolerance %v%%: use 0 up to below 100", c.LossTolerance)
	}
	if c.Warmup >= c.Duration && !c.Search {
		bad("warmup %v must be shorter than the duration %v", c.Warmup, c.Duration)
	}
	if c.Rate < 0 {
		bad("rate %v: must not be negative (0 is as fast as possible)", c.Rate)
	}
	if st := &c.Stream; st.Rate != 0 {
		switch {
		case c.Mode != ModeSYN:
			bad("--stream-rate is for syn mode (an established UDP stream during the flood)")
		case st.Rate < 0:
			bad("stream rate %v: must be positive", st.Rate)
		case !st.Dst.Addr().Is4() || st.Dst.Port() == 0:
			bad("stream destination %v: give --stream-dst IPv4:port (a UDP service)", st.Dst)
		case c.Search:
			bad("--stream-rate and --search: the search measures the flood alone")
		}
		if c.Clients.IsValid() && c.PortMin <= c.PortMax {
			if n := c.clientAddrCount() * (int(c.PortMax) - int(c.PortMin) + 1); st.Flows > n {
				bad("%d stream flows but only %d client address × port pairs: widen --clients/--client-addrs or --ports", st.Flows, n)
			}
		}
	}
	if c.Mode == ModeTCP && c.TCP.ResponseSize > 64*c.TCP.MSS {
		bad("response size %d: at most 64 segments of MSS %d", c.TCP.ResponseSize, c.TCP.MSS)
	}
	return errors.Join(errs...)
}

// clientAddrCount is how many client addresses are used.
func (c *Config) clientAddrCount() int {
	n := 1<<min(32-c.Clients.Bits(), 30) - 2*c.clientOffset()
	if c.ClientAddrs > 0 && c.ClientAddrs < n {
		return c.ClientAddrs
	}
	return n
}

// clientOffset skips the network and broadcast addresses of prefixes
// shorter than /31.
func (c *Config) clientOffset() int {
	if c.Clients.Bits() >= 31 {
		return 0
	}
	return 1
}

// clientAddr returns client address i (0-based) of the prefix.
func (c *Config) clientAddr(i int) [4]byte {
	b := c.Clients.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i + c.clientOffset())
	return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// clientIndex is the inverse of clientAddr; ok is false outside the used
// addresses.
func (c *Config) clientIndex(a [4]byte) (int, bool) {
	b := c.Clients.Masked().Addr().As4()
	base := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	i := int(v-base) - c.clientOffset()
	if v < base || i < 0 || i >= c.clientAddrCount() {
		return 0, false
	}
	return i, true
}
