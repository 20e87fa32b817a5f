package dataplane

// Formatting of trace records, on the API's goroutine (never a worker's):
// the one-line decode of the packet as received and one line per stage.

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/session"
)

// TraceStep is a formatted stage of a traced packet.
type TraceStep struct {
	AtNs    int64  // since the packet's rx burst
	Stage   string // parse, lookup, schedule, rewrite, route, neighbour, transmit, drop, kni, redirect
	Verdict string
	Counter string // drop: the counter's name (as in dpip -s link show)
}

// DescribeTrace formats r: the packet's decode and its stages.
func (d *Dataplane) DescribeTrace(r *TraceRecord) (packet string, steps []TraceStep) {
	steps = make([]TraceStep, 0, r.NEvent+1)
	for _, e := range r.Stages() {
		s := TraceStep{AtNs: e.At, Stage: e.Stage.String(), Verdict: d.traceVerdict(&e)}
		if e.Stage == StageDrop {
			s.Counter = e.Ctr.String()
		}
		steps = append(steps, s)
	}
	if r.Lost > 0 {
		steps = append(steps, TraceStep{Stage: "truncated", Verdict: fmt.Sprintf("%d more stages not recorded", r.Lost)})
	}
	return DecodeFrame(r.HeadBytes(), r.Len), steps
}

func (d *Dataplane) traceVerdict(e *TraceEvent) string {
	switch e.Stage {
	case StageParse:
		return fmt.Sprintf("IPv%d on %s", e.Code, e.Name)
	case StageLookup:
		switch e.Code {
		case LookupHitIn:
			return fmt.Sprintf("hit in: connection %d, real server %s", e.N, e.A)
		case LookupHitOut:
			return fmt.Sprintf("hit out (reply): connection %d, real server %s", e.N, e.A)
		}
		return "miss"
	case StageSchedule:
		k := ipvs.ServiceKey{Proto: ipvs.Proto(e.Code), Addr: e.B.Addr(), Port: e.B.Port()}
		return fmt.Sprintf("service %s scheduler %s: real server %s", k, e.Name, e.A)
	case StageRewrite:
		dir := "in"
		if session.Direction(e.Code) == session.Out {
			dir = "out"
		}
		return fmt.Sprintf("%s: %s > %s", dir, e.A, e.B)
	case StageRoute:
		return fmt.Sprintf("dev %s via %s", e.Name, e.A.Addr())
	case StageNeighbour:
		if e.Code == NeighResolved {
			return fmt.Sprintf("%s at %s", e.A.Addr(), e.MAC)
		}
		return fmt.Sprintf("%s unresolved: held, resolution sent", e.A.Addr())
	case StageTransmit:
		return fmt.Sprintf("port %s queue %d", d.PortName(int(e.N)), e.Q)
	case StageDrop:
		return e.Ctr.String()
	case StageKNI:
		return "to kni of port " + d.PortName(int(e.N))
	case StageRedirect:
		return fmt.Sprintf("to worker %d (its local port)", e.N)
	}
	return "?"
}

// DecodeFrame is a one-line decode of the start of a frame (length: the
// whole frame's): VLAN, addresses, ports, TCP flags and sequence numbers,
// ICMP type.
func DecodeFrame(f []byte, length int) string {
	var sb strings.Builder
	l2, ok := header.ParseL2(f)
	if !ok {
		return fmt.Sprintf("truncated frame, %d bytes", length)
	}
	if l2.Tagged {
		fmt.Fprintf(&sb, "vlan %d ", l2.VID)
	}
	et := l2.Type
	ip := f[l2.L3:]
	var src, dst netip.Addr
	var proto uint8
	var l4 []byte
	switch {
	case et == header.EtherTypeIPv4 && len(ip) >= header.IPv4MinSize && ip[0]>>4 == 4:
		h := header.IPv4(ip)
		src, dst, proto = h.Src(), h.Dst(), h.Protocol()
		if hl := h.HeaderLen(); hl >= header.IPv4MinSize && hl <= len(ip) && !h.IsFragment() {
			l4 = ip[hl:]
		}
		sb.WriteString("IP ")
	case et == header.EtherTypeIPv6 && len(ip) >= header.IPv6MinSize && ip[0]>>4 == 6:
		h := header.IPv6(ip)
		src, dst, proto = h.Src(), h.Dst(), h.NextHeader()
		l4 = ip[header.IPv6MinSize:]
		if h.Validate() == header.Valid { // past the extension headers
			t := header.LocateIPv6(h[:header.IPv6MinSize+int(h.PayloadLen())])
			if proto, l4 = t.Proto, nil; t.HasL4() {
				l4 = ip[t.Off:t.End]
			}
		}
		sb.WriteString("IP6 ")
	case et == header.EtherTypeARP:
		fmt.Fprintf(&sb, "ARP %s > %s, %d bytes", header.Ethernet(f).Src(), header.Ethernet(f).Dst(), length)
		return sb.String()
	default:
		fmt.Fprintf(&sb, "ethertype %#04x %s > %s, %d bytes", et, header.Ethernet(f).Src(), header.Ethernet(f).Dst(), length)
		return sb.String()
	}
	switch {
	case proto == header.ProtoTCP && len(l4) >= header.TCPMinSize:
		t := header.TCP(l4)
		fmt.Fprintf(&sb, "%s > %s: TCP [%s] seq %d", netip.AddrPortFrom(src, t.SrcPort()), netip.AddrPortFrom(dst, t.DstPort()),
			tcpFlagString(t.Flags()), t.Seq())
		if t.Flags()&header.TCPFlagACK != 0 {
			fmt.Fprintf(&sb, " ack %d", t.Ack())
		}
		fmt.Fprintf(&sb, " win %d", t.Window())
	case proto == header.ProtoUDP && len(l4) >= 8:
		u := header.UDP(l4)
		fmt.Fprintf(&sb, "%s > %s: UDP length %d", netip.AddrPortFrom(src, u.SrcPort()), netip.AddrPortFrom(dst, u.DstPort()), u.Length())
	case (proto == header.ProtoICMP || proto == header.ProtoICMPv6) && len(l4) >= 2:
		fmt.Fprintf(&sb, "%s > %s: ICMP type %d code %d", src, dst, l4[0], l4[1])
	default:
		fmt.Fprintf(&sb, "%s > %s: protocol %d", src, dst, proto)
	}
	fmt.Fprintf(&sb, ", %d bytes", length)
	return sb.String()
}

// tcpFlagString writes flags the way tcpdump does: S, F, R, P, . for ACK.
func tcpFlagString(f uint8) string {
	var b []byte
	for _, x := range []struct {
		bit uint8
		c   byte
	}{{header.TCPFlagSYN, 'S'}, {header.TCPFlagFIN, 'F'}, {header.TCPFlagRST, 'R'}, {header.TCPFlagPSH, 'P'}, {header.TCPFlagACK, '.'}} {
		if f&x.bit != 0 {
			b = append(b, x.c)
		}
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}
