package main

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
)

// oppAnswer handles one packet of IP protocol 248 read from a raw socket
// (what follows the IP header: the opp header, the UOA option and the UDP
// datagram) that src sent to the --udp-echo address local: it returns
// the echo to send through the UDP socket — "NAME uoa=ADDR:PORT MESSAGE" —
// and the UDP source to send it to. ok is false for a packet to another
// port, one whose opp header or UDP datagram is malformed, or whose UDP
// checksum does not verify against the pseudo-header of protocol 17 and
// the UDP length (what the datagram's sender computed, and what DPVS's
// UOA kernel module leaves for the UDP stack to verify); IPv4's "no
// checksum" (0) is accepted.
func oppAnswer(name string, pkt []byte, src netip.Addr, local netip.AddrPort) (reply []byte, to netip.AddrPort, ok bool) {
	client, udp, ok := nat.ParseOPP(pkt)
	if !ok || binary.BigEndian.Uint16(udp[2:]) != local.Port() {
		return nil, to, false
	}
	src, dst := src.Unmap(), local.Addr().Unmap()
	if src.Is4() != dst.Is4() {
		return nil, to, false
	}
	if ck := binary.BigEndian.Uint16(udp[6:]); ck != 0 || !src.Is4() {
		s, d := src.AsSlice(), dst.AsSlice()
		if header.Checksum(udp, header.PseudoHeaderChecksum(header.ProtoUDP, s, d, uint16(len(udp)))) != 0xffff {
			return nil, to, false
		}
	}
	reply = append([]byte(name+" uoa="+client.String()+" "), udp[header.UDPSize:]...)
	return reply, netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:])), true
}
