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
