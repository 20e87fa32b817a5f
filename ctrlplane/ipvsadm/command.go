package ipvsadm

// The parsed form of an ipvsadm command line (Parse).

import "net/netip"

// Format holds ipvsadm's printing flags (FMT_*).
type Format uint

// The printing flags.
const (
	FmtNumeric Format = 1 << iota
	FmtRule
	FmtStats
	FmtRate
	FmtThresholds
	FmtPersistentConn
	FmtNoSort
	FmtExact
	FmtTunInfo
	FmtDrops // GVS -L --drops
)

// Fwd is a forwarding method, named as the API and the listings name it.
type Fwd string

// The forwarding methods.
const (
	FwdRoute   Fwd = "Route"
	FwdMasq    Fwd = "Masq"
	FwdTunnel  Fwd = "Tunnel"
	FwdFullNAT Fwd = "FullNat"
	FwdSNAT    Fwd = "SNAT"
)

// ServiceSpec is a virtual service as given on the command line.
type ServiceSpec struct {
	Proto         int    // protoTCP, protoUDP, …; 0 when none was given
	Match         string // -H: a SNAT match service, canonical (ipvs.Match.String)
	Addr          netip.Addr
	Port          uint16
	FWMark        uint32
	IPv6          bool // -6 (fwmark services)
	Sched         string
	SchedFlags    []string
	Persistent    bool
	Timeout       uint32
	Netmask       string
	PE            string
	OnePacket     bool
	Synproxy      bool
	ConnTimeout   uint32
	ProxyProtocol string // v1, v2, v1-insecure, v2-insecure; "" is disable
	MidFlow       bool   // GVS --mid-flow (mh only)
	HashTarget    string // DPVS --hash-target: "sip" or "qid" (conhash only); "" = not given
	// GVS --conn-rate-limit and --per-source-limit: new connections per
	// second of the service and of one client address (0: no limit)
	ConnRateLimit, PerSourceLimit uint32
}

// DestSpec is a real server as given on the command line.
type DestSpec struct {
	Addr      netip.Addr
	Port      uint16
	portGiven bool
	Fwd       Fwd
	Weight    int32
	Upper     uint32
	Lower     uint32
	TunType   string
	TunPort   uint16
	TunCsum   string // tun-nocsum, tun-csum, tun-remcsum
}

// DaemonSpec is a sync daemon as given on the command line.
type DaemonSpec struct {
	State      string // master, backup
	McastIfn   string
	SyncID     int
	McastGroup string
	McastPort  int
	McastTTL   int
	SyncMaxlen int
}

// Timeouts are --set's values, in seconds; 0 keeps the current value.
type Timeouts struct {
	TCP, TCPFin, UDP uint32
}

// Command is one parsed ipvsadm command line.
type Command struct {
	Cmd     Cmd
	Opts    OptSet
	Format  Format
	Service ServiceSpec
	Dest    DestSpec
	LAddr   netip.Addr
	IfName  string
	Backup  bool // GVS --backup with -P: a backup local address
	// ListEntry is -k/-2's client address or prefix (acl.go); listIpset
	// is set when it named an ipset instead.
	ListEntry netip.Prefix
	listIpset string
	Timeouts  Timeouts
	Daemon    DaemonSpec
	// Socket is --socket's value ("" when not given).
	Socket string
	// dpvsOnly lists DPVS options GVS has no use for, in the order given.
	dpvsOnly []string
	match    bool // DPVS's -H: a service without an address
}

// ParseOptions adjusts Parse.
type ParseOptions struct {
	// Names resolves port names ("http"); nil accepts numeric ports only.
	Names Names
	// AllowSocket makes --socket PATH an option (the command line, not -R
	// input).
	AllowSocket bool
	// Restoring is set for lines read by -R: -R itself is then refused
	// the way ipvsadm refuses it.
	Restoring bool
}
