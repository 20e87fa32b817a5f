package dataplane

// Tunnel forwarding (ipvsadm -i, LVS "Tunnel"): as with direct routing the
// client's packet reaches the real server unchanged and the real server,
// which holds the virtual address itself, answers the client directly, so
// the connection has no local address (the client's address and port
// stand in, session.FlagNoOutput) and GVS never sees the replies. Unlike
// direct routing the packet travels inside an outer IP header from one of
// GVS's addresses (the egress interface's) to the real server's, so the
// real server may sit on any subnet the routes reach, behind routers.
// The encapsulation is the real server's --tun-type: ipip (IPv4-in-IPv4,
// IPv6-in-IPv6), gre or gue (nat/tunnel.go writes the headers).
//
// The outer headers go into the buffer's headroom in front of the
// packet (the received Ethernet header's bytes, then pktbuf.Prepend):
// nothing is copied or allocated. GVS does not fragment: a packet that no
// longer fits the egress MTU gets an ICMP fragmentation-needed (IPv4 with
// DF) or packet-too-big (IPv6) back to the client with the MTU less the
// encapsulation, and is dropped (drop_lb_tunnel_too_big); an IPv4 packet
// without DF is dropped (drop_lb_tunnel_need_frag).
//
// A connection's method is fixed when it is made (a local address:
// FullNAT; none: direct routing or tunnel); between the two methods
// without one, the real server's current method and tunnel options
// decide per packet, as LVS reads them from the destination at transmit.

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/nat"
)

// tunnelDest returns the spec of destination id when it is a tunnel real
// server, or nil.
func (w *Worker) tunnelDest(id uint32) *ipvs.DestSpec {
	if d := w.lb.Dests[id]; d != nil && d.Spec.Fwd == ipvs.FwdTunnel {
		return &d.Spec
	}
	return nil
}

// encapKind maps ipvsadm's tunnel type to nat's.
func encapKind(t ipvs.TunType) nat.EncapKind {
	switch t {
	case ipvs.TunGUE:
		return nat.EncapGUE
	case ipvs.TunGRE:
		return nat.EncapGRE
	}
	return nat.EncapIPIP
}

// lbTunnel encapsulates l3, the client's packet of a flow from client,
// towards the tunnel real server rs (options d) and sends it on.
func (w *Worker) lbTunnel(b *pktbuf.Buf, l3 []byte, d *ipvs.DestSpec, rs netip.Addr, client netip.AddrPort) {
	out, nh, ne, ok := w.path(rs, l3)
	if !ok {
		w.drop(b, CtrDropNoRoute)
		return
	}
	kind, csum := encapKind(d.TunType), d.TunFlags != 0
	n := nat.EncapLen(kind, l3[0]>>4 == 6, csum)
	if len(l3)+n > out.MTU {
		w.lbTunnelTooBig(b, l3, out.MTU-n)
		return
	}
	src, ok := w.snap.sourceFor(out.Index, rs)
	if !ok {
		w.drop(b, CtrDropLBTunnelNoSource)
		return
	}
	// the outer headers take the place of the received L2 header, and
	// as much of the headroom in front of it as they need
	var hdr []byte
	if off := int(b.L3); off >= n {
		hdr = b.Bytes()[off-n : off]
		b.L3 = uint16(off - n)
	} else {
		if b.Prepend(n-off) == nil {
			w.drop(b, CtrDropNoBuffer)
			return
		}
		b.L3 = 0
		hdr = b.Bytes()[:n]
	}
	e := nat.Encap{Kind: kind, Src: src, Dst: rs, Csum: csum, ID: w.tunID}
	if kind == nat.EncapGUE {
		e.SrcPort, e.DstPort = tunnelSrcPort(client), d.TunPort
	}
	if l3[0]>>4 == 4 {
		w.tunID++
	}
	nat.EncapHeader(hdr, l3, &e)
	w.ctr.inc(CtrLBTunnelEncap)
	w.xmitTo(b, out, nh, ne)
}

// lbTunnelTooBig answers a client packet that would exceed the egress MTU
// once encapsulated: mtu is what is left for the client's packets.
func (w *Worker) lbTunnelTooBig(b *pktbuf.Buf, l3 []byte, mtu int) {
	if mtu < 0 {
		mtu = 0
	}
	if l3[0]>>4 == 4 {
		ip := header.IPv4(l3)
		if !ip.DontFragment() {
			w.drop(b, CtrDropLBTunnelNeedFrag)
			return
		}
		// destination unreachable, code 4: fragmentation needed and DF set
		w.icmp4Error(b, ip, header.ICMPv4DstUnreachable, 4, uint16(mtu))
	} else {
		w.icmp6Error(b, header.IPv6(l3), header.ICMPv6PacketTooBig, 0, uint32(mtu))
	}
	w.drop(b, CtrDropLBTunnelTooBig)
}

// tunnelSrcPort is a GUE packet's UDP source port: a hash of the client's
// address and port in 49152-65535, so a real server's RSS spreads the
// flows and keeps each on one queue.
func tunnelSrcPort(client netip.AddrPort) uint16 {
	a := client.Addr().As16()
	h := binary.LittleEndian.Uint32(a[12:])*0x9e3779b1 ^ binary.LittleEndian.Uint32(a[8:])*0x85ebca6b ^
		binary.LittleEndian.Uint32(a[0:])*0xc2b2ae35 ^ uint32(client.Port())*0x27d4eb2f
	h ^= h >> 16
	return uint16(49152 + h%16384)
}
