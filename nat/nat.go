// Package nat rewrites packet headers in place for GVS's forwarding modes.
// This file and its siblings cover FullNAT (LVS/DPVS vocabulary):
//
//	client C:cport ──► V:vport  (virtual service)
//	        GVS forwards from a local address L:lport to the real server D:dport
//
//	in  direction: C:cport→V:vport  becomes  L:lport→D:dport   (Rewrite)
//	out direction: D:dport→L:lport  becomes  V:vport→C:cport   (Rewrite)
//
// plus the companions of that rewrite: the TOA option that tells the real
// server who the client is (InsertTOA), the MSS clamp that keeps room for it
// (ClampMSS), and the translation of ICMP errors that quote a connection's
// packets (ParseICMPError, TranslateICMPError, AdjustICMPMTU).
//
// Invariants and contract:
//   - Every function works on a packet that starts at the IP header and that
//     the L3 stage has validated (version, header length, total length) and
//     trimmed to the IP total length. The functions still bounds-check what
//     they read, so a hostile packet yields an error, never a panic.
//   - Nothing is re-serialised and nothing is allocated: fields are
//     overwritten where they are and every checksum that covers them is
//     updated incrementally (RFC 1624), so a packet whose checksums were valid
//     stays valid and a corrupted one stays detectably corrupted.
//   - Errors are the sentinel values below, returned unwrapped so the packet
//     path can map them to drop counters without allocating.
//   - The address family of the packet is the family on both sides, but
//     for NAT64 (nat64.go: To4, To6 replace the IP header). IPv6 extension headers (hop-by-hop, destination options,
//     routing with no segment left, fragment) are walked by
//     header.LocateIPv6, the one parser of them; a routing header with
//     segments left is refused with ErrExtHeader.
//
// The callers are the IPVS stage of the dataplane workers (dataplane/lb.go,
// lbtoa.go), which works on its own packet buffers through Buffer; TTL/hop
// limit is theirs to decrement.
package nat

import (
	"errors"
	"net/netip"
)

// Errors returned by the functions of this package. Each names why a packet
// cannot be rewritten; the packet is left unchanged when one is returned.
var (
	// ErrMalformed: version, header length or total length do not fit the
	// bytes present (the L3 stage should have dropped the packet).
	ErrMalformed = errors.New("nat: malformed IP header")
	// ErrTruncated: the transport header (or the part of it that must be
	// rewritten) is not in the packet.
	ErrTruncated = errors.New("nat: truncated transport header")
	// ErrUnsupportedProto: the transport protocol is neither TCP nor UDP
	// (or, for InsertTOA, not TCP).
	ErrUnsupportedProto = errors.New("nat: transport protocol not supported")
	// ErrExtHeader: an IPv6 packet's extension headers hide its transport
	// header (a routing header with segments left, a chain too long or cut).
	ErrExtHeader = errors.New("nat: IPv6 extension headers hide the transport header")
	// ErrFragment: an IPv4 fragment with a non-zero offset (no transport
	// header to rewrite; the caller rewrites its addresses or reassembles).
	// ICMP errors are refused when fragmented at all.
	ErrFragment = errors.New("nat: IPv4 fragment")
	// ErrFamily: an address given does not belong to the packet's family
	// (or, for InsertTOA, the client address is invalid).
	ErrFamily = errors.New("nat: address family does not match the packet")
	// ErrOptionSpace: the TCP header would exceed 60 bytes.
	ErrOptionSpace = errors.New("nat: no room for the TCP option (header would exceed 60 bytes)")
	// ErrHeadroom: the buffer has too little headroom to grow the header.
	ErrHeadroom = errors.New("nat: not enough headroom in the packet buffer")
	// ErrTooBig: the grown packet would exceed 65535 bytes of IP length.
	ErrTooBig = errors.New("nat: packet would exceed the maximum IP length")
	// ErrNotICMPError: the packet is not an ICMP error this package
	// translates (ICMPv4 destination unreachable, time exceeded, parameter
	// problem; ICMPv6 destination unreachable, packet too big, time
	// exceeded, parameter problem). For AdjustICMPMTU: not a
	// fragmentation-needed / packet-too-big message.
	ErrNotICMPError = errors.New("nat: not a translatable ICMP error")
)

// Endpoints are the addresses and ports a packet is rewritten to (Rewrite)
// or carries (ParseICMPError). Both addresses must be of the packet's family;
// an IPv4 packet takes Is4 addresses, an IPv6 packet 16-byte ones.
type Endpoints struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// Reverse returns the endpoints of the opposite direction.
func (e Endpoints) Reverse() Endpoints {
	return Endpoints{Src: e.Dst, Dst: e.Src, SrcPort: e.DstPort, DstPort: e.SrcPort}
}
