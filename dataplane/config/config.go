// Package config reads and validates gvs-dataplane's YAML configuration.
// Unknown keys are refused (a misspelt option must not be silently
// ignored), and every error names the field and what to do about it.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/session"
	"github.com/gvs-lb/gvs/synproxy"

	"github.com/gvs-lb/gvs/internal/yamlconf"
)

// Config is the whole file.
type Config struct {
	API        API        `yaml:"api"`
	Log        Log        `yaml:"log"`
	Workers    Workers    `yaml:"workers"`
	Ports      []Port     `yaml:"ports"`
	VLANs      []VLAN     `yaml:"vlans"`
	Addresses  []Address  `yaml:"addresses"`
	Routes     []Route    `yaml:"routes"`
	Neighbours []Neigh    `yaml:"neighbours"`
	Forwarding Forwarding `yaml:"forwarding"`
	Neighbour  NeighOpts  `yaml:"neighbour"`
	IPVS       IPVS       `yaml:"ipvs"`
	Capture    Capture    `yaml:"capture"`
	// DPDK starts DPDK's EAL for driver: dpdk ports (dpdk.go).
	DPDK DPDK `yaml:"dpdk"`
}

// Capture bounds what dpip capture may cost a worker.
type Capture struct {
	// Rate is the packets per second each worker copies for a capture
	// (more are counted as rate-limited; a capture may ask for less); Ring
	// is the capture ring's slots per worker, each of snaplen bytes.
	Rate int `yaml:"rate"`
	Ring int `yaml:"ring"`
}

// IPVS sizes the load balancer's connection tables.
type IPVS struct {
	// ConnCapacity is each worker's connection table size (rounded up to a
	// power of two; about 128 bytes per connection).
	ConnCapacity int `yaml:"conn_capacity"`
	// ExpirePerLoop bounds the connections a worker expires per loop.
	ExpirePerLoop int `yaml:"expire_per_loop"`
	// SessionHighWater is the fill of a worker's connection table, in
	// percent of conn_capacity, at and above which it is under pressure:
	// embryonic and closing connections take short timeouts (SYN_RECV 5 s),
	// and a full table evicts one of them, the oldest, for each new
	// connection (ESTABLISHED ones are never evicted). 1-100, default 90.
	SessionHighWater int `yaml:"session_high_water"`
	// PortSelection: "portmask" (ports by owner bits; n-tuple rules or
	// software hand-over steer replies) or "rss" (also choose ports whose
	// replies the NIC's RSS hash puts on the owner's queue).
	PortSelection string `yaml:"port_selection"`
	// XDPOffload: "off" (default), "on" or "auto". With on or auto, afxdp
	// ports attach the XDP fast path (dataplane/port/afxdp/xdpfast, see
	// docs/xdp.md) instead of the plain AF_XDP program: on fails to open a
	// port that cannot load it, auto opens it with the plain program and
	// reports why.
	XDPOffload string `yaml:"xdp_offload"`
	// XDPOffloadEntries sizes each afxdp port's map of offloaded
	// connections, in directions (two per connection; default 65536).
	XDPOffloadEntries int `yaml:"xdp_offload_entries"`
	// Timeouts are the connections' idle timeouts by LVS state name
	// (established, syn_sent, syn_recv, fin_wait, time_wait, close,
	// close_wait, last_ack, listen, synack, udp, none); a state left out
	// keeps the Linux IPVS default. ipvsadm --set changes them at run time.
	Timeouts map[string]Duration `yaml:"timeouts"`
	// PersistCapacity is the number of persistence templates (ipvsadm -p)
	// the dataplane holds, shared by all workers (about 48 bytes each).
	PersistCapacity int `yaml:"persist_capacity"`
	// ExpireQuiescentTemplate: a persistence template whose real server
	// was quiesced (weight 0) is dropped at its client's next connection,
	// which is scheduled anew (LVS's expire_quiescent_template sysctl).
	// Off: quiesced real servers keep their persistent clients.
	ExpireQuiescentTemplate bool `yaml:"expire_quiescent_template"`
	// ExpireReset (default true, as DPVS): a FullNAT or NAT TCP connection
	// GVS ends itself is reset at its ends — an ESTABLISHED one at expiry
	// at the real server and the client, an embryonic one the real server
	// answered (expiry, eviction under pressure) at the real server — with
	// the sequence numbers the server showed last (8 bytes per connection).
	// false: connections end silently, as in LVS.
	ExpireReset *bool `yaml:"expire_reset"`
	// SynProxy is how SYN-proxy services (ipvsadm -j enable) answer.
	SynProxy SynProxy `yaml:"synproxy"`
	// UOAMaxTrail: the first this many datagrams of each FullNAT UDP
	// connection carry the client's address (DPVS's uoa_max_trail); 0: off.
	UOAMaxTrail int `yaml:"uoa_max_trail"`
	// UOAMode (DPVS's uoa_mode): "ipo" (default), an IPv4 option that
	// servers read with IP_RECVOPTS, IPv4 clients and servers only; "opp",
	// a header of IP protocol 248 for IPv4, IPv6 and NAT64 connections,
	// read by DPVS's UOA kernel module or a raw socket.
	UOAMode string `yaml:"uoa_mode"`
}

// ResetsOnExpire reports whether connections GVS ends are reset at their
// ends (ExpireReset; true when left out).
func (i *IPVS) ResetsOnExpire() bool { return i.ExpireReset == nil || *i.ExpireReset }

// SynProxy is the ipvs.synproxy section; a field left out keeps the
// default (synproxy.DefaultConfig).
type SynProxy struct {
	// MSS offered in the SYN-ACK (lowered to fit the interface with the TOA).
	MSS *int `yaml:"mss"`
	// TTL (hop limit) and window of the SYN-ACK.
	TTL    *int `yaml:"ttl"`
	Window *int `yaml:"window"`
	// WScale is the window scale offered to clients that offer one, -1 none.
	WScale *int `yaml:"wscale"`
	// SACK and Timestamps are offered to clients that offer them.
	SACK       *bool `yaml:"sack"`
	Timestamps *bool `yaml:"timestamps"`
	// DeferRSSyn: the real server's handshake waits for the client's
	// first data segment.
	DeferRSSyn bool `yaml:"defer_rs_syn"`
	// MaxRetries: SYNs re-sent to a silent real server.
	MaxRetries *int `yaml:"max_retries"`
	// AckStormThreshold: client segments while the real server is silent
	// before the client is reset.
	AckStormThreshold *int `yaml:"ack_storm_threshold"`
	// HeldSegments: client first-data segments each worker holds.
	HeldSegments *int `yaml:"held_segments"`
	// SecretPeriod: how long a cookie secret is used.
	SecretPeriod Duration `yaml:"secret_period"`
}

// Config returns the section as the dataplane takes it, or an error
// naming the setting and its range.
func (p SynProxy) Config() (synproxy.Config, error) {
	c := synproxy.DefaultConfig()
	num := func(name string, v *int, lo, hi int, set func(int)) error {
		if v == nil {
			return nil
		}
		if *v < lo || *v > hi {
			return fmt.Errorf("%s %d: use %d-%d", name, *v, lo, hi)
		}
		set(*v)
		return nil
	}
	for _, err := range []error{
		num("mss", p.MSS, 536, 65535, func(v int) { c.MSS = uint16(v) }),
		num("ttl", p.TTL, 1, 255, func(v int) { c.TTL = uint8(v) }),
		num("window", p.Window, 1, 65535, func(v int) { c.Window = uint16(v) }),
		num("wscale", p.WScale, -1, 14, func(v int) { c.WScale = int8(v) }),
		num("max_retries", p.MaxRetries, 0, 7, func(v int) { c.MaxRetries = v }),
		num("ack_storm_threshold", p.AckStormThreshold, 1, 15, func(v int) { c.AckStorm = v }),
		num("held_segments", p.HeldSegments, 0, 65536, func(v int) { c.Held = v }),
	} {
		if err != nil {
			return c, err
		}
	}
	if p.SACK != nil {
		c.SACK = *p.SACK
	}
	if p.Timestamps != nil {
		c.Timestamps = *p.Timestamps
	}
	c.DeferServerSYN = p.DeferRSSyn
	if p.SecretPeriod != 0 {
		c.SecretPeriod = time.Duration(p.SecretPeriod)
	}
	return c, c.Validate()
}

// SessionTimeouts returns the configured timeouts (zero: the default).
func (v IPVS) SessionTimeouts() session.Timeouts {
	var t session.Timeouts
	for name, d := range v.Timeouts {
		if f := t.Field(name); f != nil {
			*f = time.Duration(d)
		}
	}
	return t
}

// API is the control socket.
type API struct {
	Socket string `yaml:"socket"`
	// Group, when set, owns the socket (mode 0660) and its members may use
	// the API; root and the dataplane's own user always may.
	Group string `yaml:"group"`
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	File   string `yaml:"file"`   // empty: stderr
	Format string `yaml:"format"` // json, console
}

// DefaultBurst is the packets a worker takes from a queue at once: 64, as
// the tuned zero-work forwarder (bench/xskfwd) takes them; on veth in copy
// mode it forwards 1.05 × what bursts of 32 do (docs/benchmarks.md).
const DefaultBurst = 64

// Workers configures the poll-mode workers.
type Workers struct {
	Count         int      `yaml:"count"`
	Cores         []int    `yaml:"cores"`
	Idle          string   `yaml:"idle"` // busy, adaptive
	Burst         int      `yaml:"burst"`
	DrainInterval Duration `yaml:"drain_interval"`
	// RTPriority is the workers' SCHED_FIFO priority (1-99), 0 for normal
	// scheduling. Unset: DefaultRTPriority with the adaptive idle mode
	// (measured: on a CPU shared with the kernel's receive processing it
	// forwards 1.6-1.9 × what normal scheduling does, without collapsing
	// under overload, because an idle worker sleeps in poll()), normal
	// scheduling with busy polling (a busy SCHED_FIFO loop on a shared CPU
	// starves the kernel and forwards almost nothing; give it isolated
	// cores and an explicit priority).
	RTPriority *int `yaml:"rt_priority"`
	// MasterCores pins the master and API goroutines' threads (the
	// process's housekeeping cores); empty leaves them unpinned.
	MasterCores []int `yaml:"master_cores"`
	// UMEM is how afxdp ports hold their packet buffers: "shared"
	// (default) gives the ports with the same queue count one UMEM per
	// queue (XDP_SHARED_UMEM), so a packet a worker receives on one port
	// and sends on another is rewritten in place, not copied; its frames
	// are the sum of the ports' frames. "per-port" gives each port its own
	// (frames are then copied between ports); a port whose device cannot
	// share (a zero-copy driver beside a copy-mode one) falls back to its
	// own, with a warning.
	UMEM string `yaml:"umem"`
}

// DefaultRTPriority is the workers' SCHED_FIFO priority with the adaptive
// idle mode when the file gives none.
const DefaultRTPriority = 50

// Priority returns the workers' SCHED_FIFO priority (0: normal).
func (w Workers) Priority() int {
	if w.RTPriority == nil {
		return 0
	}
	return *w.RTPriority
}

// Port is one NIC.
type Port struct {
	Name     string `yaml:"name"`
	Driver   string `yaml:"driver"` // afxdp, afpacket, mem
	Device   string `yaml:"device"`
	Queues   int    `yaml:"queues"`
	RxRing   int    `yaml:"rx_ring"`
	TxRing   int    `yaml:"tx_ring"`
	Frames   int    `yaml:"frames"`
	XDPMode  string `yaml:"xdp_mode"`  // native, generic, "" (auto)
	ZeroCopy string `yaml:"zero_copy"` // auto, on, off
	KNI      KNI    `yaml:"kni"`
}

// KNI configures a port's TAP device.
type KNI struct {
	Enabled *bool  `yaml:"enabled"` // default true
	Name    string `yaml:"name"`    // default <port>.kni
	// RatePPS bounds the frames punted to the kernel per second (default
	// 100000); ControlRatePPS is the separate budget of ARP, ND, traffic
	// for the kernel's own addresses and link-local multicast (default
	// 20000), which a flood of other frames cannot use up.
	RatePPS        int `yaml:"rate_pps"`
	ControlRatePPS int `yaml:"control_rate_pps"`
	// LearnRoutes mirrors the kernel's routes through this KNI device
	// (what BIRD/FRR or ip route install there: default route, real-server
	// subnets, ECMP next hops) into the dataplane's table, as routes of
	// the port, marked learnt; static and connected routes win.
	LearnRoutes bool `yaml:"learn_routes"`
}

// On reports whether KNI is enabled (the default).
func (k KNI) On() bool { return k.Enabled == nil || *k.Enabled }

// VLAN is an 802.1Q sub-interface.
type VLAN struct {
	Name string `yaml:"name"`
	Port string `yaml:"port"`
	ID   uint16 `yaml:"id"`
}

// Address is an address on an interface.
type Address struct {
	Addr string `yaml:"addr"` // a.b.c.d/len
	Dev  string `yaml:"dev"`
}

// Route is a static route.
type Route struct {
	Dst    string `yaml:"dst"`
	Via    string `yaml:"via"`
	Dev    string `yaml:"dev"`
	Src    string `yaml:"src"`
	Metric uint32 `yaml:"metric"`
	// NextHops makes a multipath route (instead of via/dev): flows are
	// spread over them by a hash of their 5-tuple.
	NextHops []NextHop `yaml:"nexthops"`
}

// NextHop is one path of a multipath route.
type NextHop struct {
	Via    string `yaml:"via"`
	Dev    string `yaml:"dev"`
	Weight uint16 `yaml:"weight"` // 1-256, default 1
}

// Neigh is a permanent neighbour entry.
type Neigh struct {
	Addr   string `yaml:"addr"`
	LLAddr string `yaml:"lladdr"`
	Dev    string `yaml:"dev"`
}

// Forwarding enables transit routing per family.
type Forwarding struct {
	IPv4 bool `yaml:"ipv4"`
	IPv6 bool `yaml:"ipv6"`
}

// NeighOpts tune neighbour resolution.
type NeighOpts struct {
	// Reachable is how long an entry is used before it is re-probed.
	Reachable Duration `yaml:"reachable"`
	// MaxPending bounds the packets each worker holds while resolving.
	MaxPending int `yaml:"max_pending"`
	// MaxEntries bounds the dynamic (learnt) entries per interface, so an
	// ARP/ND flood from spoofed sources cannot grow the table; static
	// entries do not count. At the bound, ARP requests and NS from unknown
	// senders no longer create entries (drop_neigh_learn_full), and answers
	// to the dataplane's own requests replace the oldest such entry
	// (neigh_evicted). Default 4096.
	MaxEntries int `yaml:"max_entries"`
}

// Duration is written as "100us", "60s" (or in seconds: 60): the type
// both daemons' files share.
type Duration = yamlconf.Duration

// Load reads and validates a file.
func Load(path string) (*Config, error) { return yamlconf.Load(path, Parse) }

// Parse decodes and validates YAML, applying defaults.
func Parse(b []byte) (*Config, error) {
	var c Config
	if err := yamlconf.Decode(b, &c); err != nil {
		if errors.Is(err, yamlconf.ErrEmpty) {
			return nil, errors.New("empty configuration: at least one port is needed")
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) defaults() {
	if c.API.Socket == "" {
		c.API.Socket = "/run/gvs/dataplane.sock"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Workers.Count == 0 {
		c.Workers.Count = 1
	}
	if c.Workers.Idle == "" {
		c.Workers.Idle = "adaptive"
	}
	if c.Workers.RTPriority == nil {
		p := 0
		if c.Workers.Idle == "adaptive" {
			p = DefaultRTPriority
		}
		c.Workers.RTPriority = &p
	}
	if c.Workers.Burst == 0 {
		c.Workers.Burst = DefaultBurst
	}
	if c.Workers.UMEM == "" {
		c.Workers.UMEM = "shared"
	}
	if c.Workers.DrainInterval == 0 {
		c.Workers.DrainInterval = Duration(100 * time.Microsecond)
	}
	for i := range c.Ports {
		p := &c.Ports[i]
		if p.Device == "" {
			p.Device = p.Name
		}
		if p.Queues == 0 {
			p.Queues = c.Workers.Count
		}
		if p.KNI.Name == "" {
			p.KNI.Name = p.Name + ".kni"
		}
		if p.KNI.RatePPS == 0 {
			p.KNI.RatePPS = 100000
		}
		if p.KNI.ControlRatePPS == 0 {
			p.KNI.ControlRatePPS = 20000
		}
		if p.ZeroCopy == "" {
			p.ZeroCopy = "auto"
		}
	}
	if c.Neighbour.Reachable == 0 {
		c.Neighbour.Reachable = Duration(60 * time.Second)
	}
	if c.Neighbour.MaxPending == 0 {
		c.Neighbour.MaxPending = 256
	}
	if c.Neighbour.MaxEntries == 0 {
		c.Neighbour.MaxEntries = 4096
	}
	if c.IPVS.ConnCapacity == 0 {
		c.IPVS.ConnCapacity = 1 << 18
	}
	if c.Capture.Rate == 0 {
		c.Capture.Rate = 100000
	}
	if c.Capture.Ring == 0 {
		c.Capture.Ring = 1024
	}
	if c.IPVS.ExpirePerLoop == 0 {
		c.IPVS.ExpirePerLoop = 256
	}
	if c.IPVS.SessionHighWater == 0 {
		c.IPVS.SessionHighWater = session.DefaultHighWater
	}
	if c.IPVS.ExpireReset == nil { // left out and true are the same (a reload compares them)
		on := true
		c.IPVS.ExpireReset = &on
	}
	if c.IPVS.PersistCapacity == 0 {
		c.IPVS.PersistCapacity = 1 << 16
	}
	if c.IPVS.PortSelection == "" {
		c.IPVS.PortSelection = "portmask"
	}
	if c.IPVS.XDPOffload == "" {
		c.IPVS.XDPOffload = "off"
	}
	if c.IPVS.XDPOffloadEntries == 0 {
		c.IPVS.XDPOffloadEntries = 1 << 16
	}
	if c.IPVS.UOAMode == "" {
		c.IPVS.UOAMode = "ipo"
	}
}

// Validate checks the whole configuration and reports every problem found.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	w := c.Workers
	if w.Count < 1 || w.Count > 64 {
		bad("workers.count", "%d is out of range: use 1-64", w.Count)
	}
	if len(w.Cores) != 0 && len(w.Cores) != w.Count {
		bad("workers.cores", "%d cores for %d workers: list one core per worker or none", len(w.Cores), w.Count)
	}
	for i, core := range w.Cores {
		if core < 0 {
			bad(fmt.Sprintf("workers.cores[%d]", i), "%d is not a CPU number", core)
		}
	}
	if w.Idle != "busy" && w.Idle != "adaptive" {
		bad("workers.idle", "%q is not an idle mode: use busy (isolated cores) or adaptive (shared cores)", w.Idle)
	}
	if w.UMEM != "shared" && w.UMEM != "per-port" {
		bad("workers.umem", "%q: use shared (one UMEM per queue for the afxdp ports) or per-port", w.UMEM)
	}
	if w.Burst < 1 || w.Burst > 256 {
		bad("workers.burst", "%d is out of range: use 1-256 (the default is %d)", w.Burst, DefaultBurst)
	}
	if p := w.Priority(); p < 0 || p > 99 {
		bad("workers.rt_priority", "%d is out of range: use 0 (normal) or 1-99 (SCHED_FIFO)", p)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not a level: use debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		bad("log.format", "%q: use json or console", c.Log.Format)
	}
	if len(c.Ports) == 0 {
		bad("ports", "no port configured: add at least one (name, driver, device)")
	}
	ifaces := map[string]bool{}
	kniNames := map[string]bool{}
	devices := map[string]bool{}
	for i, p := range c.Ports {
		f := fmt.Sprintf("ports[%d]", i)
		if p.Name == "" {
			bad(f+".name", "missing: give the port a name such as dp0")
			continue
		}
		f = fmt.Sprintf("ports[%d] (%s)", i, p.Name)
		if ifaces[p.Name] {
			bad(f+".name", "duplicate port name")
		}
		ifaces[p.Name] = true
		switch p.Driver {
		case "afxdp", "afpacket", "mem":
		case "dpdk":
			if !DPDKBuilt {
				bad(f+".driver", "dpdk needs a build with the dpdk driver: make dpdk (needs libdpdk-dev), or use afxdp or afpacket")
			}
		default:
			bad(f+".driver", "%q is not a driver: use afxdp, afpacket or mem", p.Driver)
		}
		if p.Driver != "mem" {
			if devices[p.Device] {
				bad(f+".device", "%s is already used by another port", p.Device)
			}
			devices[p.Device] = true
		}
		if p.Queues != w.Count {
			bad(f+".queues", "%d queues for %d workers: every worker owns one queue of every port", p.Queues, w.Count)
		}
		for _, r := range []struct {
			name string
			v    int
		}{{"rx_ring", p.RxRing}, {"tx_ring", p.TxRing}} {
			if r.v != 0 && (r.v < 64 || r.v > 32768 || r.v&(r.v-1) != 0) {
				bad(f+"."+r.name, "%d: use a power of two between 64 and 32768", r.v)
			}
		}
		if p.Frames != 0 && (p.Frames < 256 || p.Frames > 1<<20) {
			bad(f+".frames", "%d: use 256-1048576", p.Frames)
		}
		switch p.XDPMode {
		case "", "native", "generic":
		default:
			bad(f+".xdp_mode", "%q: use native, generic or leave it empty", p.XDPMode)
		}
		switch p.ZeroCopy {
		case "auto", "on", "off":
		default:
			bad(f+".zero_copy", "%q: use auto, on or off", p.ZeroCopy)
		}
		if p.Driver != "afxdp" && (p.XDPMode != "" || p.ZeroCopy != "auto") {
			bad(f, "xdp_mode and zero_copy apply to the afxdp driver only: remove them")
		}
		if !p.KNI.On() && p.KNI.LearnRoutes {
			bad(f+".kni.learn_routes", "needs the KNI device: enable kni or drop learn_routes")
		}
		if p.KNI.On() {
			if len(p.KNI.Name) > 15 {
				bad(f+".kni.name", "%q is longer than 15 bytes: set a shorter kni.name", p.KNI.Name)
			}
			if kniNames[p.KNI.Name] {
				bad(f+".kni.name", "%q is used twice", p.KNI.Name)
			}
			kniNames[p.KNI.Name] = true
			if p.KNI.ControlRatePPS < 0 {
				bad(f+".kni.control_rate_pps", "%d is negative: give a rate in packets per second", p.KNI.ControlRatePPS)
			}
			if p.KNI.RatePPS < 0 {
				bad(f+".kni.rate_pps", "%d is negative", p.KNI.RatePPS)
			}
		}
	}
	c.DPDK.validate(bad)
	for i, v := range c.VLANs {
		f := fmt.Sprintf("vlans[%d] (%s)", i, v.Name)
		if v.Name == "" || ifaces[v.Name] {
			bad(f+".name", "missing or duplicate interface name")
		}
		ifaces[v.Name] = true
		if !portNamed(c.Ports, v.Port) {
			bad(f+".port", "%q is not a configured port", v.Port)
		}
		if v.ID < 1 || v.ID > 4094 {
			bad(f+".id", "%d: use 1-4094", v.ID)
		}
	}
	for i, a := range c.Addresses {
		f := fmt.Sprintf("addresses[%d]", i)
		if _, err := netip.ParsePrefix(a.Addr); err != nil {
			bad(f+".addr", "%q is not address/prefix-length (e.g. 10.0.0.1/24)", a.Addr)
		}
		if !ifaces[a.Dev] {
			bad(f+".dev", "%q is not a configured port or vlan", a.Dev)
		}
	}
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if _, err := netip.ParsePrefix(r.Dst); err != nil {
			bad(f+".dst", "%q is not a prefix (e.g. 10.3.0.0/16 or 0.0.0.0/0)", r.Dst)
		}
		if r.Via != "" {
			if _, err := netip.ParseAddr(r.Via); err != nil {
				bad(f+".via", "%q is not an address", r.Via)
			}
		}
		if r.Src != "" {
			if _, err := netip.ParseAddr(r.Src); err != nil {
				bad(f+".src", "%q is not an address", r.Src)
			}
		}
		if r.Dev != "" && !ifaces[r.Dev] {
			bad(f+".dev", "%q is not a configured port or vlan", r.Dev)
		}
		if len(r.NextHops) > 0 && (r.Via != "" || r.Dev != "") {
			bad(f, "give via/dev or nexthops, not both")
		}
		for j, nh := range r.NextHops {
			g := fmt.Sprintf("%s.nexthops[%d]", f, j)
			if nh.Via != "" {
				if _, err := netip.ParseAddr(nh.Via); err != nil {
					bad(g+".via", "%q is not an address", nh.Via)
				}
			}
			if nh.Dev != "" && !ifaces[nh.Dev] {
				bad(g+".dev", "%q is not a configured port or vlan", nh.Dev)
			}
			if nh.Via == "" && nh.Dev == "" {
				bad(g, "give via (a gateway) or dev (an interface)")
			}
			if nh.Weight > 256 {
				bad(g+".weight", "%d: use 1-256", nh.Weight)
			}
		}
		if r.Via == "" && r.Dev == "" && len(r.NextHops) == 0 {
			bad(f, "give via (a gateway), dev (an interface) or nexthops")
		}
	}
	for i, n := range c.Neighbours {
		f := fmt.Sprintf("neighbours[%d]", i)
		if _, err := netip.ParseAddr(n.Addr); err != nil {
			bad(f+".addr", "%q is not an address", n.Addr)
		}
		if _, err := ParseMAC(n.LLAddr); err != nil {
			bad(f+".lladdr", "%q is not a MAC address (aa:bb:cc:dd:ee:ff)", n.LLAddr)
		}
		if !ifaces[n.Dev] {
			bad(f+".dev", "%q is not a configured port or vlan", n.Dev)
		}
	}
	if c.Neighbour.MaxPending < 1 || c.Neighbour.MaxPending > 65536 {
		bad("neighbour.max_pending", "%d: use 1-65536", c.Neighbour.MaxPending)
	}
	if c.Neighbour.MaxEntries < 16 || c.Neighbour.MaxEntries > 1<<20 {
		bad("neighbour.max_entries", "%d: use 16-1048576 dynamic entries per interface", c.Neighbour.MaxEntries)
	}
	if time.Duration(c.Neighbour.Reachable) < time.Second {
		bad("neighbour.reachable", "%s is too short: use at least 1s", time.Duration(c.Neighbour.Reachable))
	}
	if c.API.Socket == "" {
		bad("api.socket", "missing")
	}
	if c.Capture.Rate < 1 || c.Capture.Rate > 10000000 {
		bad("capture.rate", "%d: use 1-10000000 packets per second per worker", c.Capture.Rate)
	}
	if c.Capture.Ring < 1 || c.Capture.Ring > 65536 {
		bad("capture.ring", "%d: use 1-65536 slots per worker", c.Capture.Ring)
	}
	if c.IPVS.ConnCapacity < 16 || c.IPVS.ConnCapacity > 1<<26 {
		bad("ipvs.conn_capacity", "%d: use 16-67108864 connections per worker", c.IPVS.ConnCapacity)
	}
	if c.IPVS.PersistCapacity < 8 || c.IPVS.PersistCapacity > 1<<24 {
		bad("ipvs.persist_capacity", "%d: use 8-16777216 templates", c.IPVS.PersistCapacity)
	}
	if c.IPVS.PortSelection != "portmask" && c.IPVS.PortSelection != "rss" {
		bad("ipvs.port_selection", "%q: use portmask or rss", c.IPVS.PortSelection)
	}
	switch c.IPVS.XDPOffload {
	case "off", "auto":
	case "on":
		for _, p := range c.Ports {
			if p.Driver != "afxdp" {
				bad("ipvs.xdp_offload", "on: port %s has driver %s, and the XDP fast path needs afxdp ports: use driver afxdp, or xdp_offload auto (offload where possible) or off", p.Name, p.Driver)
			}
		}
	default:
		bad("ipvs.xdp_offload", "%q: use off, on or auto", c.IPVS.XDPOffload)
	}
	if c.IPVS.XDPOffloadEntries < 2 || c.IPVS.XDPOffloadEntries > 1<<24 {
		bad("ipvs.xdp_offload_entries", "%d: use 2-16777216 entries per port (two per connection)", c.IPVS.XDPOffloadEntries)
	}
	if c.IPVS.UOAMaxTrail < 0 || c.IPVS.UOAMaxTrail > 255 {
		bad("ipvs.uoa_max_trail", "%d: use 0 (off) to 255 datagrams", c.IPVS.UOAMaxTrail)
	}
	if c.IPVS.UOAMode != "ipo" && c.IPVS.UOAMode != "opp" {
		bad("ipvs.uoa_mode", "%q: use ipo (an IPv4 option, IPv4 clients and servers only) or opp (IP protocol 248: IPv4, IPv6 and NAT64)", c.IPVS.UOAMode)
	}
	if _, err := c.IPVS.SynProxy.Config(); err != nil {
		bad("ipvs.synproxy", "%v", err)
	}
	if c.IPVS.ExpirePerLoop < 1 {
		bad("ipvs.expire_per_loop", "%d: use at least 1", c.IPVS.ExpirePerLoop)
	}
	if c.IPVS.SessionHighWater < 1 || c.IPVS.SessionHighWater > 100 {
		bad("ipvs.session_high_water", "%d: use a percentage of conn_capacity, 1-100 (default 90)", c.IPVS.SessionHighWater)
	}
	for _, name := range slices.Sorted(maps.Keys(c.IPVS.Timeouts)) {
		d := time.Duration(c.IPVS.Timeouts[name])
		var one session.Timeouts
		f := one.Field(name)
		switch {
		case f == nil:
			bad("ipvs.timeouts."+name, "not a connection state: use %s", strings.Join(session.TimeoutNames(), ", "))
		case d <= 0:
			bad("ipvs.timeouts."+name, "%s: use a positive duration such as 90s, or leave it out for the default", d)
		default:
			if *f = d; one.Validate() != nil {
				bad("ipvs.timeouts."+name, "%s is too long: use at most %s", d, session.MaxTimeout(session.DefaultTick))
			}
		}
	}
	return errors.Join(errs...)
}

func portNamed(ps []Port, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

// ParseMAC parses aa:bb:cc:dd:ee:ff.
func ParseMAC(s string) ([6]byte, error) {
	var m [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return m, fmt.Errorf("%q is not a MAC address", s)
	}
	for i, p := range parts {
		var v byte
		if len(p) != 2 {
			return m, fmt.Errorf("%q is not a MAC address", s)
		}
		for _, c := range []byte(p) {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= c - '0'
			case c >= 'a' && c <= 'f':
				v |= c - 'a' + 10
			case c >= 'A' && c <= 'F':
				v |= c - 'A' + 10
			default:
				return m, fmt.Errorf("%q is not a MAC address", s)
			}
		}
		m[i] = v
	}
	return m, nil
}
