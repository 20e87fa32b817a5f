// Package config reads and validates gvs-controlplane's YAML configuration:
// virtual services, their real servers with keepalived-style health checks,
// FullNAT local addresses, sorry servers and the global timeouts, plus the
// process's own settings (dataplane socket, HTTP listener, CPUs, logs).
//
// The file uses keepalived's vocabulary where it fits (virtual_server,
// real_server, lb_algo, lb_kind, delay_loop, inhibit_on_failure, TCP_CHECK,
// HTTP_GET …). Unknown keys are refused, and every error names the service,
// the field and the fix. Parse returns the raw file plus a resolved model
// (Services) with every default applied: the reconciler and the health
// checker read only the resolved model.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/internal/yamlconf"
)

// Config is the whole file. Services and Timeouts are resolved by Parse.
type Config struct {
	Dataplane      Dataplane       `yaml:"dataplane"`
	Log            Log             `yaml:"log"`
	CPUs           []int           `yaml:"cpus"`
	HTTP           HTTP            `yaml:"http"`
	Control        Control         `yaml:"control"`
	Global         Global          `yaml:"global_defs"`
	VirtualServers []VirtualServer `yaml:"virtual_servers"`
	Announce       Announce        `yaml:"announce"`
	Sync           Sync            `yaml:"sync"`

	// Services is the validated model of VirtualServers, defaults applied.
	Services []Service `yaml:"-"`
}

// Dataplane is how the control plane reaches gvs-dataplane.
type Dataplane struct {
	Socket string `yaml:"socket"`
	// PollInterval is how often GetInfo is called to notice a dataplane
	// restart (uptime reset) or a lost connection.
	PollInterval Duration `yaml:"poll_interval"`
	// ResyncInterval re-reads the dataplane's services and repairs any
	// drift from the desired state (default 30s); 0 disables.
	ResyncInterval *Duration `yaml:"resync_interval"`
	// CallTimeout bounds each API call.
	CallTimeout Duration `yaml:"call_timeout"`
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	File   string `yaml:"file"`   // empty: stderr
	Format string `yaml:"format"` // json, console
}

// HTTP is the listener serving /metrics and /healthz for Prometheus. It
// serves nothing that changes or reveals the configuration: those are on
// the control socket.
type HTTP struct {
	Listen string `yaml:"listen"` // host:port; "off" disables
}

// Control is the unix socket serving /reload, /state and /healthz to
// `gvs-controlplane reload|state` (root, or members of Group).
type Control struct {
	Socket string `yaml:"socket"`
	Group  string `yaml:"group"`
}

// Global holds settings for all services (keepalived's global_defs).
type Global struct {
	Timeouts TimeoutsConf `yaml:"timeouts"`
	// Bindto is the default source address of health checks.
	Bindto string `yaml:"bindto"`
	// RemoveUnmanaged deletes dataplane services that are not in this file
	// (created with ipvsadm, say). Off by default: the control plane then
	// only touches the services it configured.
	RemoveUnmanaged bool `yaml:"remove_unmanaged"`
}

// TimeoutsConf are the connections' idle timeouts per LVS state: tcp
// (ESTABLISHED), tcpfin (FIN_WAIT) and udp as ipvsadm --set names them, the
// other states by their LVS names. Zero keeps the dataplane's value.
type TimeoutsConf struct {
	TCP       Duration `yaml:"tcp"`
	TCPFin    Duration `yaml:"tcpfin"`
	UDP       Duration `yaml:"udp"`
	None      Duration `yaml:"none"`
	SynSent   Duration `yaml:"syn_sent"`
	SynRecv   Duration `yaml:"syn_recv"`
	TimeWait  Duration `yaml:"time_wait"`
	Close     Duration `yaml:"close"`
	CloseWait Duration `yaml:"close_wait"`
	LastAck   Duration `yaml:"last_ack"`
	Listen    Duration `yaml:"listen"`
	SynAck    Duration `yaml:"synack"`
}

// named lists the timeouts with their names in the file.
func (t *TimeoutsConf) named() []struct {
	name string
	v    Duration
} {
	return []struct {
		name string
		v    Duration
	}{{"tcp", t.TCP}, {"tcpfin", t.TCPFin}, {"udp", t.UDP}, {"none", t.None}, {"syn_sent", t.SynSent},
		{"syn_recv", t.SynRecv}, {"time_wait", t.TimeWait}, {"close", t.Close}, {"close_wait", t.CloseWait},
		{"last_ack", t.LastAck}, {"listen", t.Listen}, {"synack", t.SynAck}}
}

// VirtualServer is one service (keepalived's virtual_server block).
type VirtualServer struct {
	Name     string `yaml:"name"`
	Protocol string `yaml:"protocol"` // TCP (default), UDP
	VIP      string `yaml:"vip"`
	// Port is required; an explicit 0 is keepalived's all-ports service
	// (needs persistence_timeout).
	Port   *int   `yaml:"port"`
	LBAlgo string `yaml:"lb_algo"` // rr wrr lc wlc (default) sh mh
	// LBKind is the forwarding method of the service's real servers:
	// FULLNAT (default; FNAT accepted) or DR (direct routing, ipvsadm -g:
	// no local addresses, the real servers' port is the service's) or TUN
	// (tunnel, ipvsadm -i: as DR, to real servers on any routed subnet).
	LBKind string `yaml:"lb_kind"`
	// TunType, TunPort and TunCsum (lb_kind TUN, ipvsadm -i --tun-type,
	// --tun-port, --tun-nocsum|--tun-csum|--tun-remcsum): ipip (default),
	// gue (needs tun_port) or gre; tun_csum nocsum (default), csum or
	// remcsum (gue only).
	TunType string `yaml:"tun_type"`
	TunPort int    `yaml:"tun_port"`
	TunCsum string `yaml:"tun_csum"`
	// SchedFlags: sh-fallback, sh-port (sh), mh-fallback, mh-port (mh).
	SchedFlags []string `yaml:"sched_flags"`
	// MidFlow (lb_algo mh only): a TCP segment without SYN and without a
	// connection on this node is scheduled instead of dropped (a flow the
	// routers moved here before its sync arrived; docs/cluster.md).
	MidFlow bool `yaml:"mid_flow"`
	// DelayLoop is the default check interval of its real servers.
	DelayLoop        Duration `yaml:"delay_loop"`
	InhibitOnFailure *bool    `yaml:"inhibit_on_failure"`
	// PersistenceTimeout (keepalived's persistence_timeout, ipvsadm -p):
	// a client's connections go to the real server of its first one until
	// this long after its last; whole seconds, 0/absent: no persistence.
	PersistenceTimeout Duration `yaml:"persistence_timeout"`
	// PersistenceGranularity (-M) is the client network one template
	// covers: a contiguous netmask (255.255.255.0) or a prefix length
	// (24; IPv6: 64). Default: one client address.
	PersistenceGranularity string `yaml:"persistence_granularity"`
	// OPS is keepalived's one-packet scheduling (-o, UDP only): every
	// datagram is scheduled on its own and leaves no connection.
	OPS bool `yaml:"ops"`
	// DenyList and AllowList are the service's client lists (DPVS's
	// blklst and whtlst): addresses or prefixes of the vip's family. A
	// denied client's packets are dropped; with an allow list, only its
	// clients get through (admission.go).
	DenyList  []string `yaml:"deny_list"`
	AllowList []string `yaml:"allow_list"`
	// ConnRateLimit is the most new connections per second the service
	// accepts, PerSourceLimit the most one client address may open per
	// second (0/absent: no limit; ipvsadm --conn-rate-limit and
	// --per-source-limit).
	ConnRateLimit  int64 `yaml:"conn_rate_limit"`
	PerSourceLimit int64 `yaml:"per_source_limit"`
	// SynProxy (TCP only) answers SYNs with SYN cookies and opens the
	// connection to the real server only for a client that completes its
	// handshake (ipvsadm -j).
	SynProxy       bool           `yaml:"synproxy"`
	LocalAddresses []LocalAddress `yaml:"local_addresses"`
	SorryServer    *SorryServer   `yaml:"sorry_server"`
	RealServers    []RealServer   `yaml:"real_servers"`
}

// LocalAddress is a FullNAT local address (DPVS's local_address_group).
type LocalAddress struct {
	IP        string `yaml:"ip"`
	Interface string `yaml:"interface"`
	// Backup: another node's local address, taken over when that node
	// fails: replies and synced connections accepted, no new connections.
	Backup bool `yaml:"backup"`
}

// SorryServer is added to a service while none of its real servers is up.
type SorryServer struct {
	IP     string `yaml:"ip"`
	Port   *int   `yaml:"port"` // 0 only on a port-0 service
	Weight *int   `yaml:"weight"`
}

// RealServer is a destination with its health checks.
type RealServer struct {
	IP string `yaml:"ip"`
	// Port 0 (only on a port-0 service): the port the client asked for;
	// its network checks then need connect_port.
	Port             *int       `yaml:"port"`
	Weight           *int       `yaml:"weight"`
	UThreshold       int64      `yaml:"uthreshold"`
	LThreshold       int64      `yaml:"lthreshold"`
	InhibitOnFailure *bool      `yaml:"inhibit_on_failure"`
	TCPCheck         *TCPCheck  `yaml:"TCP_CHECK"`
	HTTPGet          *HTTPCheck `yaml:"HTTP_GET"`
	SSLGet           *HTTPCheck `yaml:"SSL_GET"`
	UDPCheck         *UDPCheck  `yaml:"UDP_CHECK"`
	MiscCheck        *MiscCheck `yaml:"MISC_CHECK"`
}

// Timing is the schedule of a check and its rise/fall counts.
type Timing struct {
	DelayLoop        Duration `yaml:"delay_loop"`
	DelayBeforeRetry Duration `yaml:"delay_before_retry"`
	// Retry is keepalived's: further attempts after a failure before an up
	// server is declared down (fall = retry + 1). Fall is the same count
	// given directly; give one of them.
	Retry *int `yaml:"retry"`
	Fall  int  `yaml:"fall"`
	Rise  int  `yaml:"rise"`
	// Alpha starts the check in the failed state (keepalived's alpha).
	Alpha bool `yaml:"alpha"`
}

// Connect is where a network check connects and from where.
type Connect struct {
	Timing         `yaml:",inline"`
	ConnectIP      string   `yaml:"connect_ip"`
	ConnectPort    int      `yaml:"connect_port"`
	Bindto         string   `yaml:"bindto"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
}

// TCPCheck succeeds when a TCP connection is established.
type TCPCheck struct {
	Connect `yaml:",inline"`
}

// HTTPCheck is HTTP_GET or SSL_GET: every url must answer as configured.
type HTTPCheck struct {
	Connect     `yaml:",inline"`
	URL         []URL  `yaml:"url"`
	VirtualHost string `yaml:"virtualhost"`
}

// URL is one request of an HTTP check.
type URL struct {
	Path       string      `yaml:"path"`
	StatusCode StatusCodes `yaml:"status_code"` // 200, "200-299", "200-299,302"
	Regex      string      `yaml:"regex"`       // the body must match
	Digest     string      `yaml:"digest"`      // hex MD5 of the body
}

// UDPCheck sends a datagram and waits for an answer.
type UDPCheck struct {
	Connect    `yaml:",inline"`
	Payload    string `yaml:"payload"`
	PayloadHex string `yaml:"payload_hex"`
	// RequireReply (default true): a reply must arrive within
	// connect_timeout. false: only an ICMP port unreachable fails the check.
	RequireReply *bool  `yaml:"require_reply"`
	Regex        string `yaml:"regex"`
}

// MiscCheck runs a command: exit 0 healthy, anything else failed.
type MiscCheck struct {
	Timing      `yaml:",inline"`
	MiscPath    string   `yaml:"misc_path"`
	MiscTimeout Duration `yaml:"misc_timeout"`
}

// typeNames turns yaml.v3's Go type names into the file's words.
var typeNames = strings.NewReplacer(
	"config.Config", "the top level",
	"config.Dataplane", "dataplane",
	"config.Log", "log",
	"config.HTTP", "http",
	"config.Control", "control",
	"config.Global", "global_defs",
	"config.Announce", "announce",
	"config.Sync", "sync",
	"config.BIRDConf", "announce.bird",
	"config.BGPConf", "announce.bgp",
	"config.BGPNeighbor", "a BGP neighbor",
	"config.TimeoutsConf", "global_defs.timeouts",
	"config.VirtualServer", "a virtual server",
	"config.LocalAddress", "a local address",
	"config.SorryServer", "sorry_server",
	"config.RealServer", "a real server",
	"config.TCPCheck", "TCP_CHECK",
	"config.HTTPCheck", "HTTP_GET/SSL_GET",
	"config.URL", "an url entry",
	"config.UDPCheck", "UDP_CHECK",
	"config.MiscCheck", "MISC_CHECK",
)

var unknownField = regexp.MustCompile(`field (\S+) not found in type`)

// Load reads and validates a file.
func Load(path string) (*Config, error) { return yamlconf.Load(path, Parse) }

// Parse decodes and validates YAML, applying defaults. An empty file is a
// valid configuration without services.
func Parse(b []byte) (*Config, error) {
	var c Config
	if err := yamlconf.Decode(b, &c); err != nil && !errors.Is(err, yamlconf.ErrEmpty) {
		msg := unknownField.ReplaceAllString(err.Error(), "unknown key $1 (see docs/controlplane.md for the keys) in")
		return nil, fmt.Errorf("config: %s", typeNames.Replace(msg))
	}
	c.defaults()
	if err := errors.Join(c.validate(), c.Announce.check(), c.Sync.check()); err != nil {
		return nil, err
	}
	return &c, nil
}

// Defaults of the process settings.
const (
	DefaultSocket = "/run/gvs/dataplane.sock"
	DefaultListen = "127.0.0.1:9105"
	// DefaultControlSocket is where reload and state are served.
	DefaultControlSocket = "/run/gvs/controlplane.sock"
)

func (c *Config) defaults() {
	if c.Dataplane.Socket == "" {
		c.Dataplane.Socket = DefaultSocket
	}
	if c.Dataplane.PollInterval == 0 {
		c.Dataplane.PollInterval = Seconds(1)
	}
	if c.Dataplane.ResyncInterval == nil {
		d := Seconds(30)
		c.Dataplane.ResyncInterval = &d
	}
	if c.Dataplane.CallTimeout == 0 {
		c.Dataplane.CallTimeout = Seconds(5)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultListen
	}
	if c.Control.Socket == "" {
		c.Control.Socket = DefaultControlSocket
	}
	c.Announce.defaults()
	c.Sync.defaults()
}

// ServiceKey identifies a virtual service.
type ServiceKey struct {
	Proto string // TCP, UDP
	Addr  netip.Addr
	Port  uint16
}

// String is the form used in logs and errors: "TCP 10.1.0.100:80".
func (k ServiceKey) String() string {
	return k.Proto + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Service is a resolved virtual server.
type Service struct {
	Key        ServiceKey
	Name       string // the configured name, or Key.String()
	Sched      string
	SchedFlags []string // sorted
	MidFlow    bool
	// PersistTimeout is persistence_timeout (0: no persistence; else whole
	// seconds); PersistPrefix the granularity as a prefix length of the
	// vip's family, 0 for one client address (the dataplane's convention:
	// a full-length mask resolves to 0).
	PersistTimeout time.Duration
	PersistPrefix  int
	OnePacket      bool // ops
	// Deny and Allow are deny_list and allow_list, masked, in the file's
	// order; ConnRateLimit and PerSourceLimit new connections per second
	// (0: no limit); SynProxy is synproxy (admission.go).
	Deny, Allow                   []netip.Prefix
	ConnRateLimit, PerSourceLimit uint32
	SynProxy                      bool
	// Fwd is how the dataplane reaches the real servers and the sorry
	// server (lb_kind): FwdFullNAT, FwdMasq, FwdRoute or FwdTunnel.
	Fwd string
	// Tun is the tunnel of lb_kind TUN (zero otherwise).
	Tun     Tunnel
	LAddrs  []LAddr
	Inhibit bool // the service's default for its real servers
	Sorry   *Dest
	Reals   []Real
}

// Forwarding methods (lb_kind) as the dataplane's API and ipvsadm's
// Forward column name them.
const (
	FwdFullNAT = "FullNat" // lb_kind FULLNAT
	FwdMasq    = "Masq"    // lb_kind NAT
	FwdRoute   = "Route"   // lb_kind DR
	FwdTunnel  = "Tunnel"  // lb_kind TUN
)

// Tunnel is a TUN service's encapsulation in the dataplane API's words:
// Type ipip, gue or gre; Port gue's UDP port; Csum "" (ipip), tun-nocsum,
// tun-csum or tun-remcsum.
type Tunnel struct {
	Type string
	Port uint16
	Csum string
}

// LAddr is a FullNAT local address; Dev may be empty (the dataplane knows).
type LAddr struct {
	Addr   netip.Addr
	Dev    string
	Backup bool // another node's, taken over (no new connections)
}

// Dest is a destination as the dataplane gets it.
type Dest struct {
	Addr   netip.AddrPort
	Weight int
	Upper  uint32
	Lower  uint32
}

// Real is a resolved real server.
type Real struct {
	Dest
	// Inhibit: on failure set weight 0 (quiesce) instead of removing.
	Inhibit bool
	Checks  []Check
}

// Check kinds, named as keepalived names its checkers.
const (
	TCPCheckKind  = "TCP_CHECK"
	HTTPGetKind   = "HTTP_GET"
	SSLGetKind    = "SSL_GET"
	UDPCheckKind  = "UDP_CHECK"
	MiscCheckKind = "MISC_CHECK"
)

// Check is a resolved health check; it is comparable with reflect.DeepEqual
// so a reload keeps checks that did not change.
type Check struct {
	Kind     string
	Target   netip.AddrPort // network checks
	Bind     netip.Addr     // invalid: the kernel picks
	Timeout  time.Duration  // connect_timeout, or misc_timeout
	Interval time.Duration  // delay_loop
	// RetryInterval is delay_before_retry: the pace while a transition is
	// pending (an up server failing, a down server succeeding).
	RetryInterval time.Duration
	Rise, Fall    int
	Alpha         bool

	URLs        []URLCheck // HTTP_GET, SSL_GET
	VirtualHost string

	Payload      []byte // UDP_CHECK
	RequireReply bool
	Regex        string

	Script string // MISC_CHECK, run with /bin/sh -c
}

// URLCheck is one resolved request of an HTTP check.
type URLCheck struct {
	Path   string
	Codes  StatusCodes
	Regex  string
	Digest string // lower-case hex
}

// Timeouts are the resolved global timeouts; zero keeps a value.
type Timeouts struct {
	TCP, TCPFin, UDP                                   time.Duration
	None, SynSent, SynRecv, TimeWait, Close, CloseWait time.Duration
	LastAck, Listen, SynAck                            time.Duration
}

// Timeouts returns the global timeouts.
func (c *Config) Timeouts() Timeouts {
	t := c.Global.Timeouts
	return Timeouts{TCP: t.TCP.D(), TCPFin: t.TCPFin.D(), UDP: t.UDP.D(), None: t.None.D(), SynSent: t.SynSent.D(),
		SynRecv: t.SynRecv.D(), TimeWait: t.TimeWait.D(), Close: t.Close.D(), CloseWait: t.CloseWait.D(),
		LastAck: t.LastAck.D(), Listen: t.Listen.D(), SynAck: t.SynAck.D()}
}
