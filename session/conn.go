package session

import (
	"encoding/binary"
	"net/netip"

	"github.com/gvs-lb/gvs/header"
)

// Conn is one connection seen from both sides. It is a plain value of 96
// bytes with no pointers; the table stores Conns in a slab and hands out
// pointers into it (see Table.Get).
//
// Addresses are stored in their 16-byte form: IPv6 as is, IPv4 v4-mapped
// (::ffff:a.b.c.d), which is what netip.Addr.As16 produces. Each address
// therefore carries its own family (a NAT64 conn may mix them), and the
// IPv4-mapped range itself is never used as a real IPv6 address. Ports
// are in host byte order.
type Conn struct {
	CAddr [16]byte // client
	VAddr [16]byte // virtual address (VIP)
	LAddr [16]byte // local address: the balancer's source towards the real server
	DAddr [16]byte // destination: the real server

	CPort, VPort, LPort, DPort uint16

	// Dest and Service are the caller's ids of the destination (real
	// server) and of the virtual service; the table does not interpret them.
	Dest    uint32
	Service uint32

	expires uint32 // tick at which the conn is due (see Expires)
	tnext   uint32 // timer wheel links, or the free-list link when free
	tprev   uint32

	Proto uint8 // header.ProtoTCP or header.ProtoUDP; 0 marks a free slab entry
	State State
	Flags Flags
	Mark  uint8 // spare byte for the caller
}

// Flags is a Conn's bit set. The low bits are the caller's; the table owns
// the bits in flagsInternal and clears them on Insert.
type Flags uint8

const (
	// FlagIPv6: the client side (CAddr, VAddr) is IPv6. Set by SetCAddrPort.
	FlagIPv6 Flags = 1 << iota
	// FlagAdjusted: the conn has an entry in its worker's adjustment table
	// (the caller's, indexed by conn id): a TCP connection whose two
	// handshakes the balancer made apart (SYN proxy) and whose sequence
	// numbers, timestamps and windows it translates. The table's Conn stays
	// 96 bytes; only services that need it pay for the side entry.
	FlagAdjusted
	// FlagTemplate: the conn holds a reference to its client's
	// persistence template (ipvs/persist), given back when it ends.
	FlagTemplate
	// FlagNoOutput: replies bypass the balancer (DR, tunnel). Transition
	// uses the LVS input-only table until a packet is seen in the Out
	// direction, which clears the flag (LVS IP_VS_CONN_F_NOOUTPUT).
	FlagNoOutput
	// FlagTOAConfirmed: the real server has shown that its handshake
	// completed (a segment without SYN/RST towards the client), so the
	// client segment that completed it has passed: the TOA is no longer
	// inserted. Until then every client segment gets it (FullNAT).
	FlagTOAConfirmed
	// FlagSynced: the conn was installed by session sync (from a peer, or
	// re-installed by this node's control plane after a dataplane restart)
	// rather than created by a packet here.
	FlagSynced
	// FlagMidFlow: the conn was created for a segment without SYN (an mh
	// service's mid-flow option): a synced copy of the flow's original
	// connection is the better one and may replace it.
	FlagMidFlow
)

const (
	flagDoomed    Flags = 1 << 7 // queued by ExpireNow
	flagsInternal       = flagDoomed
)

// Expires returns the tick at which the conn is due to expire unless
// touched again.
func (c *Conn) Expires() uint32 { return c.expires }

// NewConn returns a conn for proto with its four address/port pairs set.
func NewConn(proto uint8, client, virtual, local, dest netip.AddrPort) Conn {
	c := Conn{Proto: proto}
	c.SetCAddrPort(client)
	c.SetVAddrPort(virtual)
	c.SetLAddrPort(local)
	c.SetDAddrPort(dest)
	if proto == header.ProtoUDP {
		c.State = StateUDP
	}
	return c
}

func addrPortOf(b *[16]byte, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(addrOf(b), port)
}

// addrOf is netip.AddrFrom16(*b).Unmap() with an IPv4 address read as its
// 4 bytes (the per-packet case) rather than through a copy of all 16.
func addrOf(b *[16]byte) netip.Addr {
	if IsMapped4(b) {
		return netip.AddrFrom4([4]byte(b[12:16]))
	}
	return netip.AddrFrom16(*b)
}

// IsMapped4 reports whether the address a conn holds in b is IPv4 (in its
// v4-mapped form), testing its words rather than building a netip.Addr.
func IsMapped4(b *[16]byte) bool {
	return binary.LittleEndian.Uint64(b[:8]) == 0 && binary.LittleEndian.Uint32(b[8:12]) == 0xffff0000
}

// CAddrPort returns the client address and port; IPv4 addresses come back
// unmapped.
func (c *Conn) CAddrPort() netip.AddrPort { return addrPortOf(&c.CAddr, c.CPort) }

// VAddrPort returns the virtual address and port.
func (c *Conn) VAddrPort() netip.AddrPort { return addrPortOf(&c.VAddr, c.VPort) }

// LAddrPort returns the local address and port.
func (c *Conn) LAddrPort() netip.AddrPort { return addrPortOf(&c.LAddr, c.LPort) }

// DAddrPort returns the real server's address and port.
func (c *Conn) DAddrPort() netip.AddrPort { return addrPortOf(&c.DAddr, c.DPort) }

// SetCAddrPort sets the client address and port, and FlagIPv6 from the
// address family.
func (c *Conn) SetCAddrPort(ap netip.AddrPort) {
	a := ap.Addr().Unmap()
	c.CAddr, c.CPort = a.As16(), ap.Port()
	if a.Is6() {
		c.Flags |= FlagIPv6
	} else {
		c.Flags &^= FlagIPv6
	}
}

// SetVAddrPort sets the virtual address and port.
func (c *Conn) SetVAddrPort(ap netip.AddrPort) { c.VAddr, c.VPort = ap.Addr().As16(), ap.Port() }

// SetLAddrPort sets the local address and port.
func (c *Conn) SetLAddrPort(ap netip.AddrPort) { c.LAddr, c.LPort = ap.Addr().As16(), ap.Port() }

// SetDAddrPort sets the real server's address and port.
func (c *Conn) SetDAddrPort(ap netip.AddrPort) { c.DAddr, c.DPort = ap.Addr().As16(), ap.Port() }

// HasLocal reports whether the conn has a local address of its own
// (FullNAT). Direct-routing conns carry the client's address and port in
// its place, so that OutKey is the real server's reply to the client.
func (c *Conn) HasLocal() bool { return c.LAddr != c.CAddr || c.LPort != c.CPort }

// InKey returns the key of the client→VIP direction.
func (c *Conn) InKey() Key {
	return Key{Proto: c.Proto, Src: c.CAddr, Dst: c.VAddr, SrcPort: c.CPort, DstPort: c.VPort}
}

// OutKey returns the key of the real server→balancer direction.
func (c *Conn) OutKey() Key {
	return Key{Proto: c.Proto, Src: c.DAddr, Dst: c.LAddr, SrcPort: c.DPort, DstPort: c.LPort}
}

// matchIn and matchOut compare a key with one side of the conn without
// building a Key.
func (c *Conn) matchIn(k *Key) bool {
	return c.CPort == k.SrcPort && c.VPort == k.DstPort && c.Proto == k.Proto &&
		c.CAddr == k.Src && c.VAddr == k.Dst
}

func (c *Conn) matchOut(k *Key) bool {
	return c.DPort == k.SrcPort && c.LPort == k.DstPort && c.Proto == k.Proto &&
		c.DAddr == k.Src && c.LAddr == k.Dst
}
