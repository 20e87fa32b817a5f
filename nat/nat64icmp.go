package nat

// ICMP errors about a NAT64 connection change family with it (RFC 7915
// §4.2 and §5.2): an ICMPv4 error from the real servers' side about
// L→D becomes an ICMPv6 error V→C about C→V, and an ICMPv6 error from the
// clients' side about V→C becomes an ICMPv4 error L→D about D→L. Both IP
// headers (outer and quoted) are replaced, so the message is rebuilt into
// the caller's buffer rather than edited in place:
//
//	ICMPv4 → ICMPv6                         ICMPv6 → ICMPv4
//	3/0,1,5,6,7,8,11,12 unreachable → 1/0   1/0,2,3 → 3/1 (host unreachable)
//	3/2 protocol → 4/1 pointer 6            1/1 → 3/10 (admin prohibited)
//	3/3 port → 1/4                          1/4 → 3/3 (port unreachable)
//	3/4 fragmentation needed → 2/0, MTU+20  2/0 packet too big → 3/4, MTU−20
//	3/9,10,13,15 prohibited → 1/1           3/x → 11/x (time exceeded)
//	11/x → 3/x (time exceeded)              4/0 → 12/0, pointer mapped
//	12/0,2 → 4/0, pointer mapped            4/1 → 3/2 (protocol unreachable)
//
// Anything else (3/14, 12/1, 4/2, pointers into fields without a peer) is
// not translated: ErrNotICMPError. MTUs stay within the families' minimums
// (1280, 68). The quoted packet's TCP/UDP checksum, when quoted, is updated
// for its new pseudo-header and ports; the ICMP checksum is computed anew
// (for ICMPv6 over the new pseudo-header). An ICMPv6 error is cut to 1280
// bytes, an ICMPv4 one to the caller's buffer.

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

// TranslateICMP64 writes into out the ICMP error l3 (a validated IPv4 or
// IPv6 packet that ParseICMPError accepts) translated to the other family:
// from outerSrc to outerDst, quoting the packet inner (addresses of the
// new family). mtuDelta is added to a converted MTU besides the 20 bytes
// of header difference (what GVS adds to the connection's packets:
// -TOALen). It returns the length written.
//
// Errors: those of ParseICMPError, ErrFamily when the addresses are not of
// the other family, ErrNotICMPError for a message without a translation,
// ErrTooBig when out is shorter than the headers.
func TranslateICMP64(out, l3 []byte, outerSrc, outerDst netip.Addr, inner *Endpoints, mtuDelta int) (int, error) {
	il, err := locateICMPError(l3)
	if err != nil {
		return 0, err
	}
	m := l3[il.icmp:il.end]
	l4 := l3[il.innerL4:il.end]
	if il.v6 {
		return icmp6To4(out, l3, il, m, l4, outerSrc, outerDst, inner, mtuDelta)
	}
	return icmp4To6(out, l3, il, m, l4, outerSrc, outerDst, inner, mtuDelta)
}

func icmp4To6(out, l3 []byte, il icmpLoc, m, l4 []byte, outerSrc, outerDst netip.Addr, inner *Endpoints, mtuDelta int) (int, error) {
	if !outerSrc.Is6() || !outerDst.Is6() || !inner.Src.Is6() || !inner.Dst.Is6() ||
		outerSrc.Is4In6() || outerDst.Is4In6() || inner.Src.Is4In6() || inner.Dst.Is4In6() {
		return 0, ErrFamily
	}
	typ, code, param, ok := map4To6(m[0], m[1], m[4:8])
	if !ok {
		return 0, ErrNotICMPError
	}
	if typ == header.ICMPv6PacketTooBig {
		mtu := int64(be16(m[6:]))
		if mtu == 0 {
			mtu = minMTUv6 // a router predating RFC 1191: the IPv6 minimum is safe
		}
		param = uint32(clampMTU(mtu+int64(NAT64Growth), mtuDelta, minMTUv6, 0xffffffff))
	}
	const hdrs = header.IPv6MinSize + icmpHdrLen + header.IPv6MinSize
	n := min(hdrs+len(l4), minMTUv6, len(out))
	if n < hdrs+8 {
		return 0, ErrTooBig
	}
	q := header.IPv4(l3[il.inner:])
	o := out[:n]
	os, od := outerSrc.As16(), outerDst.As16()
	is, id := inner.Src.As16(), inner.Dst.As16()

	// the outer IPv6 header from the outer IPv4 header
	put32(o[0:], 6<<28|uint32(l3[1])<<20)
	put16(o[4:], uint16(n-header.IPv6MinSize))
	o[6], o[7] = header.ProtoICMPv6, l3[8]
	copy(o[8:24], os[:])
	copy(o[24:40], od[:])
	// the ICMPv6 header
	mm := o[header.IPv6MinSize:]
	mm[0], mm[1] = typ, code
	put16(mm[2:], 0)
	put32(mm[4:], param)
	// the quoted IPv6 header from the quoted IPv4 one
	qh := mm[icmpHdrLen:]
	qlen := int(q.TotalLen()) - q.HeaderLen()
	if qlen < 0 {
		qlen = 0
	}
	put32(qh[0:], 6<<28|uint32(q.TOS())<<20)
	put16(qh[4:], uint16(qlen))
	qh[6], qh[7] = il.innerProto, q.TTL()
	copy(qh[8:24], is[:])
	copy(qh[24:40], id[:])
	// the quoted transport bytes, ports and checksum translated
	acc := notWords32(0, q[12:20])
	acc = addWords32(acc, is[:])
	acc = addWords32(acc, id[:])
	quoteL4(qh[header.IPv6MinSize:], l4, il.innerProto, inner, acc)

	ck := header.PseudoHeaderChecksum(header.ProtoICMPv6, o[8:24], o[24:40], uint16(len(mm)))
	put16(mm[2:], ^header.Checksum(mm, ck))
	return n, nil
}

func icmp6To4(out, l3 []byte, il icmpLoc, m, l4 []byte, outerSrc, outerDst netip.Addr, inner *Endpoints, mtuDelta int) (int, error) {
	if !outerSrc.Is4() || !outerDst.Is4() || !inner.Src.Is4() || !inner.Dst.Is4() {
		return 0, ErrFamily
	}
	typ, code, param, ok := map6To4(m[0], m[1], be32(m[4:]))
	if !ok {
		return 0, ErrNotICMPError
	}
	if typ == header.ICMPv4DstUnreachable && code == icmpv4FragNeeded {
		mtu := clampMTU(int64(be32(m[4:]))-int64(NAT64Growth), mtuDelta, minMTUv4, 0xffff)
		binary.BigEndian.PutUint32(param[:], uint32(mtu))
	}
	const hdrs = header.IPv4MinSize + icmpHdrLen + header.IPv4MinSize
	n := min(hdrs+len(l4), len(out))
	if n < hdrs+8 {
		return 0, ErrTooBig
	}
	q := header.IPv6(l3[il.inner:])
	o := out[:n]
	// the outer IPv4 header from the outer IPv6 header
	header.IPv4(o).Encode(&header.IPv4Fields{TOS: l3[0]<<4 | l3[1]>>4, TotalLen: uint16(n), TTL: l3[7],
		Protocol: header.ProtoICMP, Src: outerSrc, Dst: outerDst})
	// the ICMPv4 header
	mm := o[header.IPv4MinSize:]
	mm[0], mm[1] = typ, code
	put16(mm[2:], 0)
	copy(mm[4:8], param[:])
	// the quoted IPv4 header from the quoted IPv6 one
	qh := header.IPv4(mm[icmpHdrLen:])
	qh.Encode(&header.IPv4Fields{TOS: q[0]<<4 | q[1]>>4, TotalLen: uint16(min(header.IPv4MinSize+int(q.PayloadLen()), 0xffff)),
		Flags: ipv4DF, TTL: q.HopLimit(), Protocol: il.innerProto, Src: inner.Src, Dst: inner.Dst})
	s, d := inner.Src.As4(), inner.Dst.As4()
	acc := notWords32(0, q[8:40])
	acc += uint64(binary.BigEndian.Uint32(s[:])) + uint64(binary.BigEndian.Uint32(d[:]))
	quoteL4(qh[header.IPv4MinSize:], l4, il.innerProto, inner, acc)

	put16(mm[2:], ^header.Checksum(mm, 0))
	return n, nil
}

// quoteL4 copies the quoted transport bytes l4 into dst (as many as fit),
// with inner's ports and, when quoted, the TCP/UDP checksum updated by acc
// (the pseudo-header's address difference) and the port difference.
func quoteL4(dst, l4 []byte, proto uint8, inner *Endpoints, acc uint64) {
	n := copy(dst, l4)
	dst = dst[:n]
	acc = diff16(acc, be16(dst[l4SrcPort:]), inner.SrcPort)
	acc = diff16(acc, be16(dst[l4DstPort:]), inner.DstPort)
	put16(dst[l4SrcPort:], inner.SrcPort)
	put16(dst[l4DstPort:], inner.DstPort)
	ckOff, _, _ := l4CksumOff(proto)
	if ckOff+2 > len(dst) {
		return
	}
	old := be16(dst[ckOff:])
	switch {
	case proto == header.ProtoTCP:
		put16(dst[ckOff:], apply(old, acc))
	case old != 0:
		put16(dst[ckOff:], udpChecksum(apply(old, acc)))
	}
}

// map4To6 maps an ICMPv4 error's type and code (and its parameter bytes,
// for the parameter-problem pointer) to ICMPv6 (RFC 7915 §4.2).
func map4To6(typ, code uint8, rest []byte) (t6, c6 uint8, param uint32, ok bool) {
	switch typ {
	case header.ICMPv4DstUnreachable:
		switch code {
		case 0, 1, 5, 6, 7, 8, 11, 12:
			return header.ICMPv6DstUnreachable, 0, 0, true // no route
		case 2:
			return icmpv6ParamProblem, 1, 6, true // unrecognised next header, pointing at it
		case 3:
			return header.ICMPv6DstUnreachable, 4, 0, true // port unreachable
		case icmpv4FragNeeded:
			return header.ICMPv6PacketTooBig, 0, 0, true // MTU set by the caller
		case 9, 10, 13, 15:
			return header.ICMPv6DstUnreachable, 1, 0, true // administratively prohibited
		}
	case header.ICMPv4TimeExceeded:
		return header.ICMPv6TimeExceeded, code, 0, true
	case icmpv4ParamProblem:
		if code != 0 && code != 2 {
			return 0, 0, 0, false
		}
		if p, ok := pointer4To6(rest[0]); ok {
			return icmpv6ParamProblem, 0, uint32(p), true
		}
	}
	return 0, 0, 0, false
}

// pointer4To6 maps an IPv4 header offset to the IPv6 field's (RFC 7915
// figure 3).
func pointer4To6(p uint8) (uint8, bool) {
	switch {
	case p == 0, p == 1:
		return p, true // version/IHL → version/traffic class; TOS → traffic class
	case p == 2, p == 3:
		return 4, true // total length → payload length
	case p == 8:
		return 7, true // TTL → hop limit
	case p == 9:
		return 6, true // protocol → next header
	case p >= 12 && p <= 15:
		return 8, true // source address
	case p >= 16 && p <= 19:
		return 24, true // destination address
	}
	return 0, false
}

// map6To4 maps an ICMPv6 error's type, code and parameter to ICMPv4 (RFC
// 7915 §5.2); param is the ICMPv4 header's last four bytes.
func map6To4(typ, code uint8, p uint32) (t4, c4 uint8, param [4]byte, ok bool) {
	switch typ {
	case header.ICMPv6DstUnreachable:
		switch code {
		case 0, 2, 3:
			return header.ICMPv4DstUnreachable, 1, param, true // host unreachable
		case 1:
			return header.ICMPv4DstUnreachable, 10, param, true // administratively prohibited
		case 4:
			return header.ICMPv4DstUnreachable, 3, param, true // port unreachable
		}
	case header.ICMPv6PacketTooBig:
		return header.ICMPv4DstUnreachable, icmpv4FragNeeded, param, true // MTU set by the caller
	case header.ICMPv6TimeExceeded:
		return header.ICMPv4TimeExceeded, code, param, true
	case icmpv6ParamProblem:
		switch code {
		case 0:
			if q, ok := pointer6To4(p); ok {
				param[0] = q
				return icmpv4ParamProblem, 0, param, true
			}
		case 1:
			return header.ICMPv4DstUnreachable, 2, param, true // protocol unreachable
		}
	}
	return 0, 0, param, false
}

// pointer6To4 maps an IPv6 header offset to the IPv4 field's (RFC 7915
// figure 6).
func pointer6To4(p uint32) (uint8, bool) {
	switch {
	case p == 0, p == 1:
		return uint8(p), true
	case p == 4, p == 5:
		return 2, true // payload length → total length
	case p == 6:
		return 9, true // next header → protocol
	case p == 7:
		return 8, true // hop limit → TTL
	case p >= 8 && p <= 23:
		return 12, true // source address
	case p >= 24 && p <= 39:
		return 16, true // destination address
	}
	return 0, false
}
