package ipvsadm

// What GVS's dataplane API can carry. ipvsadm accepts more than GVS can
// do; everything the API has no field or call for is refused here, by
// name, with a non-zero exit — never accepted and dropped. Forwarding
// methods other than FullNAT are not refused here: the API has a field
// for them and the dataplane answers them itself ("not supported").

import (
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
	case CmdAddBlklst, CmdDelBlklst, CmdGetBlklst, CmdAddWhtlst, CmdDelWhtlst, CmdGetWhtlst:
		return unsupported("--" + c.Cmd.String())
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
	case c.Opts.Has(OptNetmask):
		return unsupported("--netmask")
	case c.Opts.Has(OptPE):
		return unsupported("--pe")
	case c.Opts.Has(OptOnePacket):
		return unsupported("--ops")
	case s.ProxyProtocol != "":
		return unsupported("--proxy-protocol " + s.ProxyProtocol)
	case c.Opts.Has(OptPersistentConn):
		return unsupported("--persistent-conn")
	case c.Opts.Has(OptSyncID):
		return unsupported("--syncid")
	case c.Dest.TunType == "gue":
		return unsupported("--tun-type gue")
	case c.Opts.Has(OptTunPort):
		return unsupported("--tun-port")
	case c.Dest.TunCsum != "":
		return unsupported("--" + c.Dest.TunCsum)
	}
	return nil
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
	return &pb.ServiceKey{Proto: protoName(c.Service.Proto), Addr: c.Service.Addr.String(), Port: uint32(c.Service.Port)}
}

// ServicePB is the virtual service of -A, -E and -D.
func (c *Command) ServicePB() *pb.Service {
	s := &c.Service
	return &pb.Service{
		Key:               c.ServiceKey(),
		Sched:             s.Sched,
		SchedFlags:        schedFlagsPB(s),
		Persistent:        s.Persistent,
		PersistentTimeout: s.Timeout,
		Synproxy:          s.Synproxy,
		ConnTimeout:       s.ConnTimeout,
		MidFlow:           s.MidFlow,
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
