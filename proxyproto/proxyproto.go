// Package proxyproto writes and recognises the PROXY protocol headers
// (versions 1 and 2, as HAProxy specifies them) that carry a client's
// address to a real server in front of the connection's data: nginx
// (`listen … proxy_protocol`) and haproxy (`accept-proxy`) read them. The
// dataplane inserts them into FullNAT connections (dataplane/lbproxyproto.go).
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"
)

// Versions.
const (
	V1 = 1 // text: "PROXY TCP4 src dst sport dport\r\n"
	V2 = 2 // binary: 16-byte header, then the addresses
)

// MaxV1Len is the longest version 1 header (the specification's bound).
const MaxV1Len = 107

// sigV2 is the version 2 signature.
var sigV2 = [12]byte{0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a}

// Len returns the length of the header Write writes for version v (V1 or
// V2) and the endpoints (one family), or 0 for another version.
func Len(v int, src, dst netip.AddrPort) int {
	switch v {
	case V1:
		var b [MaxV1Len]byte
		return len(appendV1(b[:0], src, dst))
	case V2:
		if src.Addr().Is4() {
			return 16 + 12
		}
		return 16 + 36
	}
	return 0
}

// Write writes the header of version v for a connection of protocol proto
// (6 TCP, 17 UDP; version 1 speaks only of TCP) from src to dst into b,
// which must hold Len bytes, and returns its length.
func Write(b []byte, v int, proto uint8, src, dst netip.AddrPort) int {
	if v == V1 {
		return len(appendV1(b[:0:len(b)], src, dst))
	}
	copy(b, sigV2[:])
	b[12] = 0x21 // version 2, PROXY
	fam, alen := byte(0x10), 12
	if !src.Addr().Is4() {
		fam, alen = 0x20, 36
	}
	if proto == 17 {
		fam |= 0x02 // DGRAM
	} else {
		fam |= 0x01 // STREAM
	}
	b[13] = fam
	binary.BigEndian.PutUint16(b[14:], uint16(alen))
	p := b[16:]
	if src.Addr().Is4() {
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(p, s[:])
		copy(p[4:], d[:])
		p = p[8:]
	} else {
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(p, s[:])
		copy(p[16:], d[:])
		p = p[32:]
	}
	binary.BigEndian.PutUint16(p, src.Port())
	binary.BigEndian.PutUint16(p[2:], dst.Port())
	return 16 + alen
}

func appendV1(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, "PROXY TCP4 "...)
	if !src.Addr().Is4() {
		b[len(b)-2] = '6'
	}
	b = src.Addr().AppendTo(b)
	b = append(b, ' ')
	b = dst.Addr().AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	return append(b, '\r', '\n')
}

// Parse reports whether data begins with a complete header: its version
// and length, or 0, 0 (no header, an incomplete one, or one that breaks
// the specification's framing: a version 1 line longer than 107 bytes, a
// version 2 header of another version nibble).
func Parse(data []byte) (version, n int) {
	if len(data) >= 16 && [12]byte(data[:12]) == sigV2 {
		if data[12]>>4 != 2 {
			return 0, 0
		}
		n = 16 + int(binary.BigEndian.Uint16(data[14:]))
		if n > len(data) {
			return 0, 0
		}
		return V2, n
	}
	if !bytes.HasPrefix(data, []byte("PROXY ")) {
		return 0, 0
	}
	line := data[:min(len(data), MaxV1Len)]
	if i := bytes.Index(line, []byte("\r\n")); i >= 0 {
		return V1, i + 2
	}
	return 0, 0
}
