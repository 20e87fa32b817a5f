package ipvsadm

// Parse turns one ipvsadm command line into a Command, checking it the way
// ipvsadm 1.31 does (parse_options, generic_opt_check and the checks of
// process_options), in the same order and with the same words and exit
// codes, so that a bad command line fails here exactly as it fails with
// ipvsadm. What GVS cannot do is refused afterwards, by Command.CheckGVS.

import (
	"fmt"
	"github.com/gvs-lb/gvs/ipvs"
	"net/netip"
	"strings"
)

// Exit codes of ipvsadm: fail() exits 2; tryhelp_exit(-1), popt errors and
// libipvs errors end with -1, which the shell sees as 255; a listing that
// cannot get its data exits 1.
const (
	ExitOK      = 0
	ExitList    = 1
	ExitFail    = 2
	ExitMinus1  = 255
	maxTimeout  = 86400 * 31
	defSched    = "wlc"
	defPersist  = 300
	schedMaxLen = 15 // IP_VS_SCHEDNAME_MAXLEN - 1
	ifNameMax   = 15 // IFNAMSIZ - 1
)

// Error is an ipvsadm error: the text it prints on stderr (without the
// final newline) and its exit code.
type Error struct {
	Msg  string
	Code int
}

func (e *Error) Error() string { return e.Msg }

func fail(format string, a ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, a...), Code: ExitFail}
}

// TryHelp is the text of ipvsadm's tryhelp_exit.
func TryHelp(prog string) string {
	return fmt.Sprintf("Try `%s -h' or '%s --help' for more information.", prog, prog)
}

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

// Parse parses argv (argv[0] is the program name) like ipvsadm 1.31 with
// DPVS's extensions. An empty command line lists the table (ipvsadm with
// no arguments). Help and version come back as CmdHelp and CmdVersion.
func Parse(argv []string, po ParseOptions) (*Command, *Error) {
	prog := "ipvsadm"
	if len(argv) > 0 {
		prog = argv[0]
	} else {
		argv = []string{prog}
	}
	c := &Command{}
	var sock *string
	if po.AllowSocket {
		sock = &c.Socket
	}
	if len(argv) == 1 {
		c.Cmd = CmdList
		return c, nil
	}
	p := newPopt(argv, optionTable, sock)
	// the command must be the first option
	ev, done, perr := p.nextOpt()
	if done && perr == nil && c.Socket != "" && len(p.leftovers) == 0 {
		// "ipvsadm --socket PATH" is "ipvsadm" for that dataplane
		c.Cmd = CmdList
		return c, nil
	}
	if done || perr != nil {
		return nil, &Error{Msg: TryHelp(prog), Code: ExitMinus1}
	}
	cmd, ok := cmdOfTag[ev.tag]
	if !ok {
		return nil, &Error{Msg: TryHelp(prog), Code: ExitMinus1}
	}
	c.Cmd = cmd
	switch cmd {
	case CmdHelp, CmdVersion:
		return c, nil
	case CmdStartDaemon:
		if ev.arg != "master" && ev.arg != "backup" {
			return nil, fail("illegal start-daemon parameter specified")
		}
		c.Daemon.State = ev.arg
	case CmdStopDaemon:
		if ev.arg != "master" && ev.arg != "backup" {
			return nil, fail("illegal start_daemon specified")
		}
		c.Daemon.State = ev.arg
	}
	c.Dest.Weight = 1
	c.Dest.Fwd = FwdRoute

	var schedFlagsArg string
	for {
		ev, done, perr := p.nextOpt()
		if perr != nil {
			return nil, &Error{Msg: fmt.Sprintf("%s: %s", perr.bad, perr.code), Code: ExitMinus1}
		}
		if done {
			break
		}
		if err := c.option(ev, po, &schedFlagsArg); err != nil {
			return nil, err
		}
	}
	left := p.leftovers
	if c.Cmd == CmdTimeout {
		if len(left) < 3 {
			return nil, fail("--set option requires 3 timeout values")
		}
		var t [3]uint32
		for i := range t {
			v, err := parseTimeout(left[i], 0, maxTimeout)
			if err != nil {
				return nil, err
			}
			t[i] = v
		}
		c.Timeouts = Timeouts{TCP: t[0], TCPFin: t[1], UDP: t[2]}
		left = left[3:]
	}
	if len(left) > 0 {
		return nil, fail("unexpected argument %s", left[0])
	}
	if c.Opts.Has(OptSchedFlags) {
		flags, err := parseSchedFlags(c.Service.Sched, schedFlagsArg)
		if err != nil {
			return nil, err
		}
		c.Service.SchedFlags = flags
	}
	if err := c.check(po, prog); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Command) set(o Opt) *Error {
	if c.Opts.Has(o) {
		return fail("multiple '%s' options specified", o)
	}
	c.Opts |= 1 << o
	return nil
}

// option handles one option after the command, as parse_options' loop.
func (c *Command) option(ev event, po ParseOptions, schedFlags *string) *Error {
	s := &c.Service
	d := &c.Dest
	var err *Error
	switch ev.tag {
	case tagTCP, tagUDP, tagSCTP, tagICMP, tagICMPv6:
		if err = c.set(OptService); err != nil {
			return err
		}
		s.Proto = map[tag]int{tagTCP: protoTCP, tagUDP: protoUDP, tagSCTP: protoSCTP,
			tagICMP: protoICMP, tagICMPv6: protoICMPv6}[ev.tag]
		addr, port, res := parseService(ev.arg, s.Proto, po.Names)
		if res&serviceAddr == 0 {
			return fail("illegal virtual server address[:port] specified")
		}
		s.Addr = addr
		if res&servicePort != 0 {
			s.Port = port
		}
		if ev.tag == tagICMP || ev.tag == tagICMPv6 {
			c.dpvsOnly = append(c.dpvsOnly, optLong(ev.tag))
		}
	case tagFWMark:
		if err = c.set(OptService); err != nil {
			return err
		}
		s.Proto = protoTCP
		n, rest, overflow := strtol(ev.arg, 10)
		if rest != "" || ev.arg == "" || overflow || n <= 0 || n > 0xffffffff {
			return fail("invalid fwmark value `%s' specified", ev.arg)
		}
		s.FWMark = uint32(n)
	case tagSched:
		if err = c.set(OptScheduler); err != nil {
			return err
		}
		s.Sched = ev.arg
		if len(s.Sched) > schedMaxLen {
			s.Sched = s.Sched[:schedMaxLen]
		}
	case tagPersistent:
		if err = c.set(OptPersistent); err != nil {
			return err
		}
		s.Persistent = true
		s.Timeout = defPersist
		if ev.hasArg {
			if s.Timeout, err = parseTimeout(ev.arg, 1, maxTimeout); err != nil {
				return err
			}
		}
	case tagNetmask:
		if err = c.set(OptNetmask); err != nil {
			return err
		}
		if !s.Addr.Is6() && !s.IPv6 {
			if _, ok := inetAton(ev.arg); !ok {
				return fail("illegal virtual server persistent mask specified")
			}
		} else if n := atoi(ev.arg); n < 1 || n > 128 {
			return fail("illegal ipv6 netmask specified")
		}
		s.Netmask = ev.arg
	case tagReal:
		if err = c.set(OptServer); err != nil {
			return err
		}
		addr, port, res := parseService(ev.arg, s.Proto, po.Names)
		if res&serviceAddr == 0 {
			return fail("illegal real server address[:port] specified")
		}
		d.Addr, d.Port, d.portGiven = addr, port, res&servicePort != 0
	case tagGate, tagIPIP, tagMasq, tagFullNAT, tagSNAT:
		if err = c.set(OptForward); err != nil {
			return err
		}
		d.Fwd = map[tag]Fwd{tagGate: FwdRoute, tagIPIP: FwdTunnel, tagMasq: FwdMasq,
			tagFullNAT: FwdFullNAT, tagSNAT: FwdSNAT}[ev.tag]
	case tagWeight:
		if err = c.set(OptWeight); err != nil {
			return err
		}
		n := stringToNumber(ev.arg, 0, 65535)
		if n == -1 {
			return fail("illegal weight specified")
		}
		d.Weight = int32(n)
	case tagUThreshold:
		if err = c.set(OptUThreshold); err != nil {
			return err
		}
		n := stringToNumber(ev.arg, 0, 1<<31-1)
		if n == -1 {
			return fail("illegal u_threshold specified")
		}
		d.Upper = uint32(n)
	case tagLThreshold:
		if err = c.set(OptLThreshold); err != nil {
			return err
		}
		n := stringToNumber(ev.arg, 0, 1<<31-1)
		if n == -1 {
			return fail("illegal l_threshold specified")
		}
		d.Lower = uint32(n)
	case tagConnection:
		return c.set(OptConnection)
	case tagNumeric:
		c.Format |= FmtNumeric
		return c.set(OptNumeric)
	case tagMcastIfn:
		if err = c.set(OptMcast); err != nil {
			return err
		}
		c.Daemon.McastIfn = truncate(ev.arg, ifNameMax)
	case tagSyncID:
		if err = c.set(OptSyncID); err != nil {
			return err
		}
		n := stringToNumber(ev.arg, 0, 255)
		if n == -1 {
			return fail("illegal syncid specified")
		}
		c.Daemon.SyncID = int(n)
	case tagTimeout:
		return c.set(OptTimeout)
	case tagDaemon:
		return c.set(OptDaemon)
	case tagStats:
		c.Format |= FmtStats
		return c.set(OptStats)
	case tagRate:
		c.Format |= FmtRate
		return c.set(OptRate)
	case tagThresholds:
		c.Format |= FmtThresholds
		return c.set(OptThresholds)
	case tagPersistentConn:
		c.Format |= FmtPersistentConn
		return c.set(OptPersistentConn)
	case tagNoSort:
		c.Format |= FmtNoSort
		return c.set(OptNoSort)
	case tagSort:
		// sorting is the default; --sort is accepted and does nothing
	case tagExact:
		c.Format |= FmtExact
		return c.set(OptExact)
	case tagIPv6:
		if s.FWMark == 0 {
			return fail("-6 used before -f\n")
		}
		s.IPv6 = true
	case tagOps:
		s.OnePacket = true
		return c.set(OptOnePacket)
	case tagPE:
		if err = c.set(OptPE); err != nil {
			return err
		}
		s.PE = ev.arg
	case tagSchedFlags:
		if err = c.set(OptSchedFlags); err != nil {
			return err
		}
		*schedFlags = ev.arg
	case tagMcastGroup:
		if err = c.set(OptMcastGroup); err != nil {
			return err
		}
		if strings.Contains(ev.arg, ":") {
			a, ok := parseIPv6(ev.arg)
			if !ok || !a.IsMulticast() {
				return fail("invalid IPv6 mcast-group `%s'", ev.arg)
			}
		} else {
			a, err := netip.ParseAddr(ev.arg)
			if err != nil || !a.Is4() || !a.IsMulticast() {
				return fail("invalid IPv4 mcast-group `%s'", ev.arg)
			}
		}
		c.Daemon.McastGroup = ev.arg
	case tagMcastPort:
		if err = c.set(OptMcastPort); err != nil {
			return err
		}
		n := stringToNumber(ev.arg, 1, 65535)
		if n == -1 {
			return fail("illegal mcast-port specified")
		}
		c.Daemon.McastPort = int(n)
	case tagMcastTTL:
		if err = c.set(OptMcastTTL); err != nil {
			return err
		}
		n := stringToNumber(ev.arg, 1, 255)
		if n == -1 {
			return fail("illegal mcast-ttl specified")
		}
		c.Daemon.McastTTL = int(n)
	case tagSyncMaxlen:
		if err = c.set(OptSyncMaxlen); err != nil {
			return err
		}
		n := stringToNumber(ev.arg, 1, 65535-20-8)
		if n == -1 {
			return fail("illegal sync-maxlen specified")
		}
		c.Daemon.SyncMaxlen = int(n)
	case tagTunInfo:
		c.Format |= FmtTunInfo
		return c.set(OptTunInfo)
	case tagDrops:
		c.Format |= FmtDrops
		return c.set(OptDrops)
	case tagTunType:
		if err = c.set(OptTunType); err != nil {
			return err
		}
		if ev.arg != "ipip" && ev.arg != "gue" && ev.arg != "gre" {
			return fail("illegal tunnel type specified")
		}
		d.TunType = ev.arg
	case tagTunPort:
		if err = c.set(OptTunPort); err != nil {
			return err
		}
		n := stringToNumber(ev.arg, 1, 65535)
		if n == -1 {
			return fail("illegal tunnel port specified")
		}
		d.TunPort = uint16(n)
	case tagTunNoCsum, tagTunCsum, tagTunRemCsum:
		o := map[tag]Opt{tagTunNoCsum: OptTunNoCsum, tagTunCsum: OptTunCsum, tagTunRemCsum: OptTunRemCsum}[ev.tag]
		if err = c.set(o); err != nil {
			return err
		}
		d.TunCsum = o.String()
	case tagLAddr:
		if err = c.set(OptLocalAddress); err != nil {
			return err
		}
		addr, _, res := parseService(ev.arg, 0, nil)
		if res&serviceAddr == 0 {
			return fail("illegal local address")
		}
		c.LAddr = addr
	case tagIfname:
		if err = c.set(OptIfname); err != nil {
			return err
		}
		c.IfName = truncate(ev.arg, ifNameMax)
	case tagSynproxy:
		if err = c.set(OptSynproxy); err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(ev.arg, "enable"):
			s.Synproxy = true
		case strings.HasPrefix(ev.arg, "disable"):
			s.Synproxy = false
		default:
			return fail("synproxy switch must be enable or disable\n")
		}
	case tagConnTimeout:
		if err = c.set(OptConnTimeout); err != nil {
			return err
		}
		if ev.num < 0 {
			return fail("invalid timeout value `%s' specified", ev.arg)
		}
		s.ConnTimeout = uint32(ev.num)
	case tagProxyProtocol:
		if err = c.set(OptProxyProtocol); err != nil {
			return err
		}
		// DPVS's proxy_protocol_type: anything else means disable
		switch v := strings.ToLower(ev.arg); v {
		case "v1", "v2", "v1-insecure", "v2-insecure":
			s.ProxyProtocol = v
		default:
			s.ProxyProtocol = ""
		}
	case tagConnRateLimit, tagPerSourceLimit:
		o, v := OptConnRateLimit, &s.ConnRateLimit
		if ev.tag == tagPerSourceLimit {
			o, v = OptPerSourceLimit, &s.PerSourceLimit
		}
		if err = c.set(o); err != nil {
			return err
		}
		if ev.num < 0 || ev.num > 1<<32-1 {
			return fail("invalid %s value `%s' specified: give connections per second, 0 for no limit", o, ev.arg)
		}
		*v = uint32(ev.num)
	case tagMidFlow:
		if err = c.set(OptMidFlow); err != nil {
			return err
		}
		s.MidFlow = true
	case tagBackup:
		if err = c.set(OptBackup); err != nil {
			return err
		}
		c.Backup = true
	case tagHashTarget:
		// DPVS compares the first three letters only
		if err = c.set(OptHashTarget); err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(ev.arg, "sip"):
			s.HashTarget = "sip"
		case strings.HasPrefix(ev.arg, "qid"):
			s.HashTarget = "qid"
		default:
			return fail("hash target not support")
		}
	case tagBlklst, tagWhtlst:
		o, what := OptBlklst, "blacklist"
		if ev.tag == tagWhtlst {
			o, what = OptWhtlst, "whitelist"
		}
		if err = c.set(o); err != nil {
			return err
		}
		p, ipset, ok := parseListEntry(ev.arg)
		if !ok {
			return fail("illegal %s entry format, require [ IP | ipset:NAME ]", what)
		}
		if ipset {
			c.listIpset = ev.arg
		}
		c.ListEntry = p
	case tagMatch:
		// DPVS's SNAT match service: no address, the match is the key
		if err = c.set(OptService); err != nil {
			return err
		}
		m, perr := ipvs.ParseMatch(ev.arg)
		if perr != nil {
			return fail("illegal match specified: %v", perr)
		}
		c.match = true
		s := &c.Service
		s.Match, s.IPv6 = m.String(), m.V6()
		s.Proto = map[ipvs.Proto]int{ipvs.TCP: protoTCP, ipvs.UDP: protoUDP}[m.Proto]
	case tagCPU, tagExpireQuiescent, tagDestCheck, tagQUIC, tagSockpair:
		c.dpvsOnly = append(c.dpvsOnly, optLong(ev.tag))
	default:
		// a second command, -h or -v after the command
		return fail("invalid option `%s'", ev.bad)
	}
	return nil
}

// check runs generic_opt_check and the checks of process_options.
func (c *Command) check(po ParseOptions, prog string) *Error {
	if err := c.genericOptCheck(); err != nil {
		return err
	}
	s := &c.Service
	d := &c.Dest
	switch c.Cmd {
	case CmdAdd, CmdEdit:
		if s.FWMark == 0 && s.Port == 0 && !s.Persistent && !c.match {
			return fail("Zero port specified for non-persistent service")
		}
		if s.OnePacket && s.FWMark == 0 && s.Proto != protoUDP {
			return fail("One-Packet Scheduling is only for UDP virtual services")
		}
		if s.HashTarget != "" && s.Sched != "conhash" {
			return fail("hash target can only be set when schedule is conhash")
		}
		if s.HashTarget == "qid" && s.Proto != protoUDP {
			return fail("qid hash can only be set in udp service")
		}
		if s.Sched == "" {
			s.Sched = defSched
		}
	case CmdAddDest, CmdEditDest, CmdDelDest:
		// ipvsadm copies the service's port when -r has none; GVS does
		// it whatever the order of -t and -r
		if !d.portGiven {
			d.Port = s.Port
		}
		if c.Cmd == CmdDelDest {
			break
		}
		if s.FWMark == 0 && (d.Fwd == FwdTunnel || d.Fwd == FwdRoute) {
			d.Port = s.Port
		}
		// and NAT64: an IPv4 FullNAT server behind an IPv6 service (DPVS)
		nat64 := d.Fwd == FwdFullNAT && d.Addr.Is4() && (s.Addr.Is6() || s.IPv6)
		if d.Addr.Is6() != (s.Addr.Is6() || s.IPv6) && d.Fwd != FwdTunnel && !nat64 {
			return fail("Different address family is allowed only for tunneling servers")
		}
		tun := c.Opts.Has(OptTunType) || c.Opts.Has(OptTunPort) || c.Opts.Has(OptTunNoCsum) ||
			c.Opts.Has(OptTunCsum) || c.Opts.Has(OptTunRemCsum)
		if tun && d.Fwd != FwdTunnel {
			return fail("Tunnel options conflict with forward method")
		}
		if err := c.tunnelOptCheck(); err != nil {
			return err
		}
	case CmdList:
		o := c.Opts
		if (o.Has(OptConnection) || o.Has(OptTimeout) || o.Has(OptDaemon)) &&
			(o.Has(OptStats) || o.Has(OptRate) || o.Has(OptThresholds)) ||
			(o.Has(OptTimeout) || o.Has(OptDaemon)) && o.Has(OptPersistentConn) {
			return fail("options conflicts in the list command")
		}
	case CmdRestore:
		if po.Restoring {
			// restore_table refuses to read stdin again
			return &Error{Msg: TryHelp(prog), Code: ExitMinus1}
		}
	}
	return nil
}

func (c *Command) genericOptCheck() *Error {
	row, ok := commandsVOptions[c.Cmd]
	if !ok {
		// DPVS's black and white lists: GVS refuses the command itself
		return nil
	}
	last, count := Opt(0), 0
	for j := Opt(0); j < numOpts; j++ {
		v, ok := row[j]
		if !ok {
			v = 'x'
		}
		if !c.Opts.Has(j) {
			if v == '+' {
				return fail("You need to supply the '%s' option for the '%s' command", j, c.Cmd)
			}
			continue
		}
		if v == 'x' {
			return fail("Illegal '%s' option with the '%s' command", j, c.Cmd)
		}
		if v == '1' {
			count++
			if count == 1 {
				last = j
				continue
			}
			return fail("The option '%s' conflicts with the '%s' option in the '%s' command", j, last, c.Cmd)
		}
	}
	return nil
}

// tunnelOptCheck is ipvsadm's tunnel_opt_check: ipip takes no tunnel
// option; gue needs --tun-port and at most one checksum option; gre takes
// --tun-nocsum or --tun-csum.
func (c *Command) tunnelOptCheck() *Error {
	tunType := c.Dest.TunType
	if tunType == "" {
		tunType = "ipip"
	}
	opts := []Opt{OptTunPort, OptTunNoCsum, OptTunCsum, OptTunRemCsum}
	rules := map[string][]byte{"ipip": []byte("xxxx"), "gue": []byte("+111"), "gre": []byte("x11x")}[tunType]
	last, count := Opt(0), 0
	for i, o := range opts {
		v := rules[i]
		if !c.Opts.Has(o) {
			if v == '+' {
				return fail("You need to supply the '%s' option for the '%s' tunnel type", o, tunType)
			}
			continue
		}
		if v == 'x' {
			return fail("Illegal '%s' option with the '%s' tunnel type", o, tunType)
		}
		if v == '1' {
			count++
			if count == 1 {
				last = o
				continue
			}
			return fail("The option '%s' conflicts with the '%s' option in the '%s' tunnel type", o, last, tunType)
		}
	}
	return nil
}

func parseTimeout(s string, min, max int64) (uint32, *Error) {
	n := stringToNumber(s, min, max)
	if n == -1 {
		return 0, fail("invalid timeout value `%s' specified", s)
	}
	return uint32(n), nil
}

// schedFlagBit maps the scheduler flag names to IP_VS_SVC_F_SCHED1..3.
var schedFlagBit = map[string]int{
	"flag-1": 1, "flag-2": 2, "flag-3": 3,
	"sh-fallback": 1, "sh-port": 2, "mh-fallback": 1, "mh-port": 2,
}

// parseSchedFlags is ipvsadm's parse_sched_flags; the flags are kept by
// name, in the order given.
func parseSchedFlags(sched, arg string) ([]string, *Error) {
	if sched == "" {
		sched = defSched
	}
	var flags []string
	for _, f := range strings.FieldsFunc(arg, func(r rune) bool { return r == ',' }) {
		if _, ok := schedFlagBit[f]; !ok {
			return nil, fail("invalid scheduler flag `%s'", f)
		}
		if (strings.HasPrefix(f, "sh-") && sched != "sh") || (strings.HasPrefix(f, "mh-") && sched != "mh") {
			return nil, fail("incompatible scheduler flag `%s'", f)
		}
		flags = append(flags, f)
	}
	if len(flags) == 0 {
		return nil, fail("invalid scheduler flag `%s'", arg)
	}
	return flags, nil
}

func atoi(s string) int64 {
	n, _, _ := strtol(s, 10)
	return n
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func optLong(t tag) string {
	for _, d := range optionTable {
		if d.tag == t {
			return "--" + d.long
		}
	}
	return "?"
}
