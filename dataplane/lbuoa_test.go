package dataplane

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/nat"
)

// TestUOA: with uoa_max_trail 2, the first two datagrams of a FullNAT UDP
// connection reach the real server with the client's address in an IPv4
// option (checksums verified by gopacket), the third without; replies are
// untouched; without the setting, none.
func TestUOA(t *testing.T) {
	for _, trail := range []int{2, 0} {
		td := fixture{Options: Options{Workers: 1, UOAMaxTrail: trail}, addrs: lbAddrs, lbNeighbors: true}.build(t)
		td.service(ipvs.UDP, vip, 9000, "rr", lip, netip.AddrPortFrom(rs1IP, 9001))
		client := netip.AddrPortFrom(clientIP, 5353)
		q := udpFrame(t, macClient, macDP0, client, netip.AddrPortFrom(vip, 9000), []byte("query"))
		for i := 0; i < 3; i++ {
			td.inject(0, q)
			td.stepAll()
			frames := td.outAll(1)
			if len(frames) != 1 {
				t.Fatalf("datagram %d: %d frames", i, len(frames))
			}
			raw := frames[0]
			out := decodeL4(t, raw)
			p := decode(t, raw)
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			want := trail > 0 && i < trail
			if got := len(ip.Options) == 1 && ip.Options[0].OptionType == nat.UOAKind; got != want {
				t.Fatalf("trail %d, datagram %d: UOA %v, want %v (options %+v)", trail, i, got, want, ip.Options)
			}
			if want {
				if a, ok := nat.ParseUOA(raw[14+20 : 14+28]); !ok || a != client {
					t.Fatalf("UOA names %v", a)
				}
			}
			if string(out.udp.Payload) != "query" || out.dst != netip.AddrPortFrom(rs1IP, 9001) {
				t.Fatalf("datagram %d: %q to %s", i, out.udp.Payload, out.dst)
			}
		}
		if n := td.sum(CtrLBUOAAdded); n != uint64(trail) {
			t.Errorf("lb_uoa_added %d, want %d", n, trail)
		}
	}
}

// oppStrip takes the opp header out of frame (Ethernet, then IPv4 or IPv6
// without extension headers) as a real server's UOA module does and
// returns the client its UOA option names, its version and the frame as
// it would be without it (IP protocol / next header and length restored,
// IPv4 header checksum recomputed); ok is false when the frame has none.
// The frame's own IPv4 header checksum must verify.
func oppStrip(t *testing.T, frame []byte) (client netip.AddrPort, version byte, restored []byte, ok bool) {
	t.Helper()
	l3 := frame[14:]
	nh, hlen := 6, header.IPv6MinSize
	if l3[0]>>4 == 4 {
		nh, hlen = 9, header.IPv4(l3).HeaderLen()
		if header.Checksum(l3[:hlen], 0) != 0xffff {
			t.Fatalf("IPv4 header checksum does not verify: %x", l3[:hlen])
		}
	}
	if l3[nh] != nat.ProtoOPP {
		return client, 0, frame, false
	}
	client, _, ok = nat.ParseOPP(l3[hlen:])
	if !ok {
		t.Fatalf("opp header unreadable: %x", l3[hlen:])
	}
	n := int(binary.BigEndian.Uint16(l3[hlen+2:]))
	out := append(append([]byte(nil), frame[:14+hlen]...), l3[hlen+n:]...)
	ip := out[14:]
	ip[nh] = l3[hlen+1]
	if ip[0]>>4 == 4 {
		v4 := header.IPv4(ip)
		if int(v4.TotalLen()) != len(l3) {
			t.Fatalf("IPv4 total length %d, packet %d bytes", v4.TotalLen(), len(l3))
		}
		v4.SetTotalLen(v4.TotalLen() - uint16(n))
		v4.SetChecksum(0)
		v4.SetChecksum(^header.Checksum(ip[:hlen], 0))
	} else {
		v6 := header.IPv6(ip)
		if int(v6.PayloadLen())+header.IPv6MinSize != len(l3) {
			t.Fatalf("IPv6 payload length %d, packet %d bytes", v6.PayloadLen(), len(l3))
		}
		v6.SetPayloadLen(v6.PayloadLen() - uint16(n))
	}
	return client, l3[hlen] >> 4, out, true
}

// uoaOPPCase is a FullNAT UDP service of one family pair: the client's
// datagram to the VIP reaches the server from the local address.
type uoaOPPCase struct {
	name           string
	client, vipP   netip.AddrPort
	local          netip.Addr
	rs             netip.AddrPort
	version        byte // the opp header's: the client's family
	nat64, v6Frame bool
}

var uoaOPPCases = []uoaOPPCase{
	{name: "ipv4", client: netip.AddrPortFrom(clientIP, 5353), vipP: netip.AddrPortFrom(vip, 9000), local: lip, rs: netip.AddrPortFrom(rs1IP, 9001), version: nat.OPPVersionIPv4},
	{name: "ipv6", client: netip.AddrPortFrom(clientIP6, 5353), vipP: netip.AddrPortFrom(vip6, 9000), local: lip6, rs: netip.AddrPortFrom(rs1IP6, 9001), version: nat.OPPVersionIPv6, v6Frame: true},
	{name: "nat64", client: client64, vipP: netip.AddrPortFrom(vip6, 7000), local: lip, rs: netip.AddrPortFrom(rs1IP, 7001), version: nat.OPPVersionIPv6, nat64: true, v6Frame: true},
}

func (c uoaOPPCase) setup(td *testDP) {
	td.service(ipvs.UDP, c.vipP.Addr(), c.vipP.Port(), "rr", c.local, c.rs)
}

func (c uoaOPPCase) frame(t testing.TB, payload []byte) []byte {
	return udpFrameAny(t, macClient, macDP0, c.client, c.vipP, payload, false)
}

// TestUOAOPP: with uoa_mode opp and uoa_max_trail 2, the first two
// datagrams of a FullNAT UDP connection reach the real server with the
// opp header (protocol 248) naming the client — IPv4, IPv6 and NAT64 (the
// IPv6 client in an IPv4 datagram, version 2) — the third without; taking
// the header out as the server's module does gives a datagram whose
// checksums gopacket recomputes the same, from the local address to the
// server, with the client's payload.
func TestUOAOPP(t *testing.T) {
	for _, c := range uoaOPPCases {
		t.Run(c.name, func(t *testing.T) {
			td := fixture{Options: Options{Workers: 1, UOAMaxTrail: 2, UOAMode: UOAOPP}, addrs: lbAddrs, lbNeighbors: true}.build(t)
			c.setup(td)
			for i := 0; i < 3; i++ {
				msg := []byte(fmt.Sprintf("query %d", i))
				td.inject(0, c.frame(t, msg))
				td.stepAll()
				frames := td.outAll(1)
				if len(frames) != 1 {
					ctr, _ := td.w.Stats()
					t.Fatalf("datagram %d: %d frames; counters %v", i, len(frames), nonZero(ctr))
				}
				if (frames[0][14]>>4 == 6) != (c.v6Frame && !c.nat64) {
					t.Fatalf("datagram %d: IP version %d", i, frames[0][14]>>4)
				}
				client, ver, plain, has := oppStrip(t, frames[0])
				if has != (i < 2) {
					t.Fatalf("datagram %d: opp header %v, want %v", i, has, i < 2)
				}
				if has && (client != c.client || ver != c.version) {
					t.Fatalf("datagram %d: opp version %d names %v, want version %d, %v", i, ver, client, c.version, c.client)
				}
				d := decodeL4(t, plain)
				if d.udp == nil || !bytes.Equal(d.udp.Payload, msg) || d.src.Addr() != c.local || d.dst != c.rs {
					t.Fatalf("datagram %d: %v → %v, %q", i, d.src, d.dst, d.udp.Payload)
				}
			}
			if n, f := td.sum(CtrLBUOAAdded), td.sum(CtrLBUOAFailed); n != 2 || f != 0 {
				t.Errorf("lb_uoa_added %d, lb_uoa_failed %d, want 2, 0", n, f)
			}
		})
	}
}

// TestUOAIPOFamilies: in the ipo mode (the default), as in DPVS, IPv6 and
// NAT64 connections get no UOA at all — no header, no attempt counted —
// while IPv4 ones get the IPv4 option.
func TestUOAIPOFamilies(t *testing.T) {
	for _, c := range uoaOPPCases {
		td := fixture{Options: Options{Workers: 1, UOAMaxTrail: 2}, addrs: lbAddrs, lbNeighbors: true}.build(t)
		c.setup(td)
		td.inject(0, c.frame(t, []byte("q")))
		td.stepAll()
		frames := td.outAll(1)
		if len(frames) != 1 {
			t.Fatalf("%s: %d frames", c.name, len(frames))
		}
		if _, _, _, has := oppStrip(t, frames[0]); has {
			t.Errorf("%s: opp header in ipo mode", c.name)
		}
		var opts int
		if ip, ok := decode(t, frames[0]).Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			opts = len(ip.Options)
		}
		want := 0
		if c.name == "ipv4" {
			want = 1
		}
		if opts != want || td.sum(CtrLBUOAAdded) != uint64(want) || td.sum(CtrLBUOAFailed) != 0 {
			t.Errorf("%s: %d IPv4 options, lb_uoa_added %d, lb_uoa_failed %d; want %d, %d, 0",
				c.name, opts, td.sum(CtrLBUOAAdded), td.sum(CtrLBUOAFailed), want, want)
		}
	}
}

// TestUOAOPPMTU: a datagram that the opp header would push over the
// egress MTU (1500) goes without it, counted in lb_uoa_failed, and the
// next one that fits carries it; one that fits exactly carries it.
func TestUOAOPPMTU(t *testing.T) {
	for _, c := range uoaOPPCases {
		t.Run(c.name, func(t *testing.T) {
			td := fixture{Options: Options{Workers: 1, UOAMaxTrail: 3, UOAMode: UOAOPP}, addrs: lbAddrs, lbNeighbors: true}.build(t)
			c.setup(td)
			hdr := 28 // the IP and UDP headers towards the server
			if c.v6Frame && !c.nat64 {
				hdr = 48
			}
			grow := nat.OPPLen(c.client.Addr())
			for i, size := range []int{1500 - hdr - grow + 1, 1500 - hdr - grow, 10} {
				td.inject(0, c.frame(t, make([]byte, size)))
				td.stepAll()
				frames := td.outAll(1)
				if len(frames) != 1 {
					ctr, _ := td.w.Stats()
					t.Fatalf("payload %d: %d frames; counters %v", size, len(frames), nonZero(ctr))
				}
				_, _, plain, has := oppStrip(t, frames[0])
				if has != (i > 0) || len(frames[0])-14 > 1500 {
					t.Fatalf("payload %d: opp header %v, %d bytes of IP", size, has, len(frames[0])-14)
				}
				if d := decodeL4(t, plain); d.udp == nil || len(d.udp.Payload) != size {
					t.Fatalf("payload %d: datagram changed", size)
				}
			}
			if n, f := td.sum(CtrLBUOAAdded), td.sum(CtrLBUOAFailed); n != 2 || f != 1 {
				t.Errorf("lb_uoa_added %d, lb_uoa_failed %d, want 2, 1", n, f)
			}
		})
	}
}

// TestUOAOPPAllocs: the first datagram of a new connection, given the opp
// header, allocates nothing (IPv4, IPv6, NAT64).
func TestUOAOPPAllocs(t *testing.T) {
	for _, c := range uoaOPPCases {
		td := fixture{Options: Options{Workers: 1, ConnCapacity: 1 << 12, UOAMaxTrail: 1, UOAMode: UOAOPP}, addrs: lbAddrs, lbNeighbors: true}.build(t)
		c.setup(td)
		l := &loopDP{testDP: td}
		for p, mp := range td.ports {
			s := &sinkQueue{Queue: mp.MemQueue(0), out: make([]*pktbuf.Buf, 0, 2*txBufSize)}
			td.w.queues[p] = s
			l.sinks = append(l.sinks, s)
		}
		td.w.iterate()
		frames := make([][]byte, 700) // one new connection each: a client port each
		for i := range frames {
			cl := netip.AddrPortFrom(c.client.Addr(), uint16(20000+i))
			frames[i] = udpFrameAny(t, macClient, macDP0, cl, c.vipP, []byte("query"), false)
		}
		i := 0
		run := func() {
			l.rx(t, 0, frames[i])
			i++
			l.w.flushAll()
			if l.releaseAll() != 1 {
				t.Fatalf("%s: no frame sent", c.name)
			}
		}
		for range 100 {
			run()
		}
		allocs := testing.AllocsPerRun(500, run)
		l.w.ctr.publish()
		if n := l.counter(CtrLBUOAAdded); n != uint64(i) {
			t.Fatalf("%s: lb_uoa_added %d for %d datagrams", c.name, n, i)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per datagram, want 0", c.name, allocs)
		}
	}
}
