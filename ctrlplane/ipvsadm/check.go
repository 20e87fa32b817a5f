package ipvsadm

// The checks Parse runs after reading the options: ipvsadm's
// generic_opt_check and those of process_options, and the value parsers
// they share.

import (
	"strings"
)

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
