package ipvsadm

// What GVS's dataplane API can carry. ipvsadm accepts more than GVS can
// do; everything the API has no field or call for is refused here, by
// name, with a non-zero exit — never accepted and dropped. Forwarding
// methods other than FullNAT are not refused here: the API has a field
// for them and the dataplane answers them itself ("not supported").

import (
	"math/bits"
	"slices"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func unsupported(opt string) *Error {
	return &Error{Msg: "ipvsadm: " + opt + ": not supported by GVS", Code: ExitFail}
}

// CheckGVS returns an error naming the first part of the command that GVS
// does not support, or nil.
func (c *Command) CheckGVS() *Error {
	switch c.Cmd {
	case CmdStartDaemon, CmdStopDaemon:
		return &Error{Msg: "ipvsadm: --" + c.Cmd.String() + ": not supported yet", Code: ExitFail}
	}
	if c.listIpset != "" {
		return &Error{Msg: "ipvsadm: " + c.listIpset + ": ipsets are not supported by GVS: give an address or prefix (10.0.0.0/8)", Code: ExitFail}
	}
	if c.ListEntry.IsValid() && c.Opts.Has(OptService) && c.ListEntry.Addr().Is4() != c.Service.Addr.Unmap().Is4() {
		return &Error{Msg: "ipvsadm: " + c.ListEntry.String() + ": the service's clients are of its address family: give an address or prefix of that family", Code: ExitFail}
	}
	if len(c.dpvsOnly) > 0 {
		return unsupported(c.dpvsOnly[0])
	}
	s := &c.Service
	switch {
	case s.FWMark != 0:
		return unsupported("--fwmark-service")
	case s.Proto == protoSCTP:
		return unsupported("--sctp-service")
	case c.Opts.Has(OptNetmask) && !s.Persistent:
		// the kernel takes a mask without -p and ignores it
		return &Error{Msg: "ipvsadm: --netmask without --persistent: add -p [timeout]", Code: ExitFail}
	case c.Opts.Has(OptPE):
		return unsupported("--pe")
	case c.Opts.Has(OptSyncID):
		return unsupported("--syncid")
	}
	if c.Opts.Has(OptNetmask) {
		if _, err := c.persistPrefix(); err != nil {
			return err
		}
	}
	return nil
}

// persistPrefix is -M as a prefix length (0: none given, a host). IPv4
// masks must be contiguous: GVS keeps templates per client network.
func (c *Command) persistPrefix() (uint32, *Error) {
	s := &c.Service
	if !c.Opts.Has(OptNetmask) {
		return 0, nil
	}
	var n int
	if !s.Addr.Is6() && !s.IPv6 {
		a, _ := inetAton(s.Netmask)
		m := a.As4()
		v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
		n = bits.LeadingZeros32(^v)
		if n < 32 && v<<n != 0 {
			return 0, &Error{Msg: "ipvsadm: --netmask " + s.Netmask + ": GVS takes contiguous masks only (255.255.255.0, a prefix): give one", Code: ExitFail}
		}
	} else {
		n = int(atoi(s.Netmask))
	}
	if n == 0 {
		return 0, &Error{Msg: "ipvsadm: --netmask " + s.Netmask + ": one template for every client is not supported by GVS: give a longer mask", Code: ExitFail}
	}
	return uint32(n), nil
}

func protoName(p int) string {
	switch p {
	case protoTCP:
		return "TCP"
	case protoUDP:
		return "UDP"
	case protoSCTP:
		return "SCTP"
	case protoICMP:
		return "ICMP"
	case protoICMPv6:
		return "ICMPv6"
	}
	return ""
}

// ServiceKey is the API's key of the command's virtual service, nil when
// the command names none.
func (c *Command) ServiceKey() *pb.ServiceKey {
	if !c.Opts.Has(OptService) {
		return nil
	}
	if c.Service.Match != "" {
		return &pb.ServiceKey{Proto: protoName(c.Service.Proto), Match: c.Service.Match}
	}
	return &pb.ServiceKey{Proto: protoName(c.Service.Proto), Addr: c.Service.Addr.String(), Port: uint32(c.Service.Port)}
}

// ServicePB is the virtual service of -A, -E and -D.
func (c *Command) ServicePB() *pb.Service {
	s := &c.Service
	prefix, _ := c.persistPrefix() // refused by CheckGVS when invalid
	return &pb.Service{
		Key:                c.ServiceKey(),
		Sched:              s.Sched,
		SchedFlags:         schedFlagsPB(s),
		Persistent:         s.Persistent,
		PersistentTimeout:  s.Timeout,
		PersistentPrefix:   prefix,
		OnePacket:          s.OnePacket,
		Synproxy:           s.Synproxy,
		ConnTimeout:        s.ConnTimeout,
		MidFlow:            s.MidFlow,
		ConnRateLimit:      s.ConnRateLimit,
		PerSourceRateLimit: s.PerSourceLimit,
		ProxyProtocol:      s.ProxyProtocol,
	}
}

// schedFlagsPB is the service's scheduler flags as the API carries them: a
// conhash qid hash target travels as the flag "qid" (sip is the default).
func schedFlagsPB(s *ServiceSpec) []string {
	if s.HashTarget != "qid" {
		return s.SchedFlags
	}
	return append(slices.Clone(s.SchedFlags), "qid")
}

// DestPB is the request of -a, -e and -d.
func (c *Command) DestPB() *pb.DestRequest {
	d := &c.Dest
	dest := &pb.Dest{Addr: d.Addr.String(), Port: uint32(d.Port)}
	if c.Cmd != CmdDelDest {
		dest.Weight = d.Weight
		dest.Upper = d.Upper
		dest.Lower = d.Lower
		dest.Fwd = string(d.Fwd)
		if d.Fwd == FwdTunnel {
			dest.TunType, dest.TunPort, dest.TunCsum = d.TunType, uint32(d.TunPort), d.TunCsum
		}
	}
	return &pb.DestRequest{Service: c.ServiceKey(), Dest: dest}
}

// LAddrPB is the request of -P and -Q.
func (c *Command) LAddrPB() *pb.LAddrRequest {
	return &pb.LAddrRequest{Service: c.ServiceKey(), Laddr: &pb.LAddr{Addr: c.LAddr.String(), Dev: c.IfName, Backup: c.Backup}}
}

// TimeoutsPB is the request of --set.
func (c *Command) TimeoutsPB() *pb.Timeouts {
	return &pb.Timeouts{Tcp: c.Timeouts.TCP, TcpFin: c.Timeouts.TCPFin, Udp: c.Timeouts.UDP}
}
