package nat

import (
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

// ICMP errors about a FullNAT connection.
//
// An ICMP error quotes the start of the packet that caused it (RFC 792,
// RFC 4443): the IP header and at least 8 bytes of its transport header,
// which hold the ports (and, for UDP, the checksum). GVS finds the
// connection from the quoted packet and must translate the whole error as it
// translates the connection's packets, or the receiver's stack cannot match
// it to its socket:
//
//   - From the server side, about L:lport→D:dport (an in-direction packet
//     after rewriting; the error is addressed to L). The client sent
//     C:cport→V:vport, so the error goes out as V→C quoting
//     C:cport→V:vport:
//     TranslateICMPError(pkt, V, C, &Endpoints{C, V, cport, vport})
//   - From the client side, about V:vport→C:cport (an out-direction packet;
//     addressed to V). The real server sent D:dport→L:lport, so the error
//     goes in as L→D quoting D:dport→L:lport:
//     TranslateICMPError(pkt, L, D, &Endpoints{D, L, dport, lport})
//
// Checksums fixed incrementally: the outer IPv4 header checksum, the quoted
// IPv4 header checksum, the quoted TCP/UDP checksum when its bytes are in
// the quote (a quote of 8 transport bytes holds the UDP checksum but not
// TCP's; what is absent is left absent), and the ICMP checksum — over the
// message for ICMPv4, and for ICMPv6 also over the pseudo-header with the new
// outer addresses. An incoming checksum that was wrong stays wrong.
//
// The MTU of fragmentation-needed / packet-too-big messages passes unchanged.
// When TOA grows the client's segments towards the server by 8 or 20 bytes,
// an MTU reported from the server side is that much too large for the
// client; the caller lowers it with AdjustICMPMTU(pkt, -TOALen(client)).
// Errors about ICMP echo, IPv6 extension headers in the quote and non-first
// fragments are not translated (ErrUnsupportedProto, ErrExtHeader,
// ErrFragment).

// ICMP types and codes handled here that header does not name.
const (
	icmpv4ParamProblem = 12
	icmpv4FragNeeded   = 4 // code of ICMPv4DstUnreachable
	icmpv6ParamProblem = 4
	minMTUv4           = 68
	minMTUv6           = 1280
)

// ICMPError describes an ICMP error message about a TCP or UDP packet.
type ICMPError struct {
	// Outer holds the addresses of the ICMP packet itself; ports are zero.
	Outer      Endpoints
	Type, Code uint8
	// MTU is the next-hop MTU of an ICMPv4 fragmentation-needed or an ICMPv6
	// packet-too-big message, 0 for other messages.
	MTU uint32
	// Inner holds the quoted packet's addresses and ports as quoted: the
	// packet the receiver of the error had sent.
	Inner      Endpoints
	InnerProto uint8
	// InnerL4Len is how many bytes of the quoted transport header are
	// present (at least 8).
	InnerL4Len int
}

// icmpLoc locates the parts of an ICMP error in a packet.
type icmpLoc struct {
	v6         bool
	icmp       int // offset of the ICMP header
	end        int // end of the ICMP message (IP total length)
	inner      int // offset of the quoted IP header
	innerL4    int // offset of the quoted transport header
	innerProto uint8
}

// ICMP header size before the quoted packet (type, code, checksum, 4 bytes
// of type-specific data).
const icmpHdrLen = 8

// locateICMPError checks that l3 is an ICMP error this package translates
// and returns where its parts are.
func locateICMPError(l3 []byte) (icmpLoc, error) {
	loc, err := locate(l3)
	if err != nil {
		return icmpLoc{}, err
	}
	if !loc.v6 && header.IPv4(l3).FlagsFrag()&ipv4MoreFragments != 0 || loc.v6 && header.LocateIPv6(l3[:loc.end]).Fragment() {
		return icmpLoc{}, ErrFragment // the message continues elsewhere
	}
	il := icmpLoc{v6: loc.v6, icmp: loc.l4, end: loc.end, inner: loc.l4 + icmpHdrLen}
	if loc.v6 {
		if loc.proto != header.ProtoICMPv6 {
			return icmpLoc{}, ErrNotICMPError
		}
	} else if loc.proto != header.ProtoICMP {
		return icmpLoc{}, ErrNotICMPError
	}
	if loc.end-loc.l4 < icmpHdrLen {
		return icmpLoc{}, ErrTruncated
	}
	typ := l3[loc.l4]
	if loc.v6 {
		switch typ {
		case header.ICMPv6DstUnreachable, header.ICMPv6PacketTooBig, header.ICMPv6TimeExceeded, icmpv6ParamProblem:
		default:
			return icmpLoc{}, ErrNotICMPError
		}
	} else {
		switch typ {
		case header.ICMPv4DstUnreachable, header.ICMPv4TimeExceeded, icmpv4ParamProblem:
		default:
			return icmpLoc{}, ErrNotICMPError
		}
	}

	// The quoted packet: same family as the outer one, a transport header
	// we can find (past extension headers).
	q := l3[il.inner:loc.end]
	if len(q) == 0 {
		return icmpLoc{}, ErrTruncated
	}
	want := uint8(4)
	if loc.v6 {
		want = 6
	}
	if q[0]>>4 != want {
		return icmpLoc{}, ErrMalformed
	}
	if loc.v6 {
		if len(q) < header.IPv6MinSize {
			return icmpLoc{}, ErrTruncated
		}
		// the quote is cut short: walk the extension headers it holds
		t := header.LocateIPv6(header.IPv6(q))
		if !t.HasL4() {
			if t.Fragment() {
				return icmpLoc{}, ErrFragment
			}
			return icmpLoc{}, ErrExtHeader
		}
		il.innerProto = t.Proto
		il.innerL4 = il.inner + int(t.Off)
	} else {
		if len(q) < header.IPv4MinSize {
			return icmpLoc{}, ErrTruncated
		}
		ip := header.IPv4(q)
		hl := ip.HeaderLen()
		if hl < header.IPv4MinSize {
			return icmpLoc{}, ErrMalformed
		}
		if hl > len(q) {
			return icmpLoc{}, ErrTruncated
		}
		if ip.FlagsFrag()&ipv4FragOffset != 0 {
			return icmpLoc{}, ErrFragment
		}
		il.innerProto = ip.Protocol()
		il.innerL4 = il.inner + hl
	}
	if il.innerProto != header.ProtoTCP && il.innerProto != header.ProtoUDP {
		return icmpLoc{}, ErrUnsupportedProto
	}
	// RFC 792 and RFC 4443 promise 8 bytes of the transport header.
	if loc.end-il.innerL4 < header.UDPSize {
		return icmpLoc{}, ErrTruncated
	}
	return il, nil
}

// ParseICMPError returns the description of the ICMP error l3 (starting at
// its IP header): ICMPv4 destination unreachable, time exceeded or parameter
// problem, ICMPv6 destination unreachable, packet too big, time exceeded or
// parameter problem, quoting a TCP or UDP packet of the same family with at
// least 8 bytes of its transport header.
//
// ErrNotICMPError means the packet is something else (not ICMP, or another
// ICMP type): the caller handles it on its ordinary path. Other errors mean a
// malformed or unsupported error message (ErrMalformed, ErrTruncated,
// ErrFragment, ErrExtHeader, ErrUnsupportedProto). The ICMP checksum is not
// verified here.
func ParseICMPError(l3 []byte) (ICMPError, error) {
	il, err := locateICMPError(l3)
	if err != nil {
		return ICMPError{}, err
	}
	var e ICMPError
	m := l3[il.icmp:il.end]
	e.Type, e.Code = m[0], m[1]
	q := l3[il.inner:il.end]
	l4 := l3[il.innerL4:il.end]
	if il.v6 {
		out, in := header.IPv6(l3), header.IPv6(q)
		e.Outer.Src, e.Outer.Dst = out.Src(), out.Dst()
		e.Inner.Src, e.Inner.Dst = in.Src(), in.Dst()
		if e.Type == header.ICMPv6PacketTooBig {
			e.MTU = be32(m[4:])
		}
	} else {
		out, in := header.IPv4(l3), header.IPv4(q)
		e.Outer.Src, e.Outer.Dst = out.Src(), out.Dst()
		e.Inner.Src, e.Inner.Dst = in.Src(), in.Dst()
		if e.Type == header.ICMPv4DstUnreachable && e.Code == icmpv4FragNeeded {
			e.MTU = uint32(be16(m[6:]))
		}
	}
	e.Inner.SrcPort, e.Inner.DstPort = be16(l4[l4SrcPort:]), be16(l4[l4DstPort:])
	e.InnerProto = il.innerProto
	e.InnerL4Len = len(l4)
	return e, nil
}

// TranslateICMPError rewrites the ICMP error l3 (see ParseICMPError for what
// it accepts) for the other side of a FullNAT connection: the outer source and
// destination become outerSrc and outerDst, the quoted packet's addresses and
// ports become those of inner. See the top of this file for which values each
// direction takes and which checksums are fixed. All addresses must be of the
// packet's family (ErrFamily); on any error the packet is unchanged.
func TranslateICMPError(l3 []byte, outerSrc, outerDst netip.Addr, inner *Endpoints) error {
	il, err := locateICMPError(l3)
	if err != nil {
		return err
	}
	m := l3[il.icmp:il.end]
	q := l3[il.inner:il.end]
	l4 := l3[il.innerL4:il.end]

	var icmpAcc uint64 // difference in the words the ICMP checksum covers
	var l4Acc uint64   // difference in the quoted TCP/UDP pseudo-header and ports
	if il.v6 {
		if !outerSrc.Is6() || !outerDst.Is6() || !inner.Src.Is6() || !inner.Dst.Is6() {
			return ErrFamily
		}
		out, in := header.IPv6(l3), header.IPv6(q)
		os, od := outerSrc.As16(), outerDst.As16()
		is, id := inner.Src.As16(), inner.Dst.As16()
		// ICMPv6's checksum covers the outer addresses (pseudo-header).
		icmpAcc = diffAddr16(icmpAcc, out.SrcBytes(), &os)
		icmpAcc = diffAddr16(icmpAcc, out.DstBytes(), &od)
		l4Acc = diffAddr16(l4Acc, in.SrcBytes(), &is)
		l4Acc = diffAddr16(l4Acc, in.DstBytes(), &id)
		icmpAcc += l4Acc
	} else {
		if !outerSrc.Is4() || !outerDst.Is4() || !inner.Src.Is4() || !inner.Dst.Is4() {
			return ErrFamily
		}
		out, in := header.IPv4(l3), header.IPv4(q)
		// The outer addresses: only the outer header checksum covers them.
		acc := diffAddr4(0, out.SrcBytes(), outerSrc.As4())
		acc = diffAddr4(acc, out.DstBytes(), outerDst.As4())
		out.SetChecksum(apply(out.Checksum(), acc))

		// The quoted addresses: its header checksum, its transport
		// pseudo-header and the ICMP checksum, which also covers the quoted
		// header checksum.
		l4Acc = diffAddr4(l4Acc, in.SrcBytes(), inner.Src.As4())
		l4Acc = diffAddr4(l4Acc, in.DstBytes(), inner.Dst.As4())
		oldCk := in.Checksum()
		newCk := apply(oldCk, l4Acc)
		in.SetChecksum(newCk)
		icmpAcc = diff16(l4Acc, oldCk, newCk)
	}

	ports := diff16(0, be16(l4[l4SrcPort:]), inner.SrcPort)
	ports = diff16(ports, be16(l4[l4DstPort:]), inner.DstPort)
	put16(l4[l4SrcPort:], inner.SrcPort)
	put16(l4[l4DstPort:], inner.DstPort)
	icmpAcc += ports
	l4Acc += ports

	// The quoted transport checksum, if quoted.
	ckOff, _, _ := l4CksumOff(il.innerProto)
	if ckOff+2 <= len(l4) {
		// A UDP checksum of zero means none and stays so.
		if old := be16(l4[ckOff:]); il.innerProto == header.ProtoTCP || old != 0 {
			ck := apply(old, l4Acc)
			if il.innerProto == header.ProtoUDP {
				ck = udpChecksum(ck)
			}
			put16(l4[ckOff:], ck)
			icmpAcc = diff16(icmpAcc, old, ck)
		}
	}

	put16(m[2:], apply(be16(m[2:]), icmpAcc))
	return nil
}

// AdjustICMPMTU adds delta (usually negative: -TOALen(client)) to the MTU of
// an ICMPv4 fragmentation-needed or ICMPv6 packet-too-big message l3, with an
// incremental ICMP checksum update. The result is kept at or above the
// protocol minimum (68 for IPv4, 1280 for IPv6 — below that, only the MSS
// clamp helps) and a negative delta never raises the value. An ICMPv4 MTU of
// zero (a router predating RFC 1191) is left alone. ErrNotICMPError if l3 is
// not one of these two messages.
func AdjustICMPMTU(l3 []byte, delta int) error {
	il, err := locateICMPError(l3)
	if err != nil {
		return err
	}
	m := l3[il.icmp:il.end]
	if il.v6 {
		if m[0] != header.ICMPv6PacketTooBig {
			return ErrNotICMPError
		}
		old := be32(m[4:])
		n := clampMTU(int64(old), delta, minMTUv6, 0xffffffff)
		put32(m[4:], uint32(n))
		acc := diff16(0, uint16(old>>16), uint16(n>>16))
		acc = diff16(acc, uint16(old), uint16(n))
		put16(m[2:], apply(be16(m[2:]), acc))
		return nil
	}
	if m[0] != header.ICMPv4DstUnreachable || m[1] != icmpv4FragNeeded {
		return ErrNotICMPError
	}
	old := be16(m[6:])
	if old == 0 {
		return nil
	}
	n := uint16(clampMTU(int64(old), delta, minMTUv4, 0xffff))
	put16(m[6:], n)
	put16(m[2:], apply(be16(m[2:]), diff16(0, old, n)))
	return nil
}

func clampMTU(old int64, delta int, min, max int64) int64 {
	n := old + int64(delta)
	if n < min {
		n = min
	}
	if n > max {
		n = max
	}
	if delta < 0 && n > old {
		n = old
	}
	return n
}

// ShiftICMPQuote adds seq and ack to the sequence and acknowledgement
// numbers of the TCP segment an ICMP error l3 quotes (the acknowledgement
// only when quoted), updating the quoted TCP checksum when quoted and the
// ICMP checksum incrementally: for connections whose two sides number
// their bytes differently (SYN proxy, proxy protocol), so that the
// receiver of the error finds its own segment in the quote (Linux ignores
// errors quoting a sequence number outside its send window).
// ErrNotICMPError when l3 is not an ICMP error quoting TCP.
func ShiftICMPQuote(l3 []byte, seq, ack uint32) error {
	il, err := locateICMPError(l3)
	if err != nil {
		return err
	}
	if il.innerProto != header.ProtoTCP {
		return ErrNotICMPError
	}
	m := l3[il.icmp:il.end]
	l4 := l3[il.innerL4:il.end]
	var acc uint64
	shift := func(off int, d uint32) {
		old := be32(l4[off:])
		n := old + d
		put32(l4[off:], n)
		acc = diff16(acc, uint16(old>>16), uint16(n>>16))
		acc = diff16(acc, uint16(old), uint16(n))
	}
	shift(4, seq)
	if len(l4) >= 12 {
		shift(8, ack)
	}
	icmpAcc := acc
	if len(l4) >= 18 { // the quoted TCP checksum
		old := be16(l4[16:])
		n := apply(old, acc)
		put16(l4[16:], n)
		icmpAcc = diff16(icmpAcc, old, n)
	}
	put16(m[2:], apply(be16(m[2:]), icmpAcc))
	return nil
}
