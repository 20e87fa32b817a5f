package nat

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
	"github.com/gvs-lb/gvs/header"
)

// The hot functions must not allocate: each is run on a packet restored
// before every call (or flip-flopping between two tuples).

func rewriteFlipFlop(l3 []byte, k fnatConn) func(i int) {
	in, out := k.toServer(), k.clientSent()
	return func(i int) {
		to := &in
		if i&1 == 1 {
			to = &out
		}
		if err := Rewrite(l3, to); err != nil {
			panic(err)
		}
	}
}

// toaRunner restores a frame into b and inserts the TOA.
func toaRunner(t testing.TB, k fnatConn, client netip.AddrPort) func() {
	l3 := pkt{ep: k.toServer(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts}.build(t)
	b := newBuf(t, l3, etherTypeOf(l3))
	frame := append([]byte(nil), b.Bytes()...)
	return func() {
		b.Reset(pktbuf.Headroom, len(frame))
		copy(b.Bytes(), frame)
		if err := InsertTOA(b, header.EthernetMinSize, client); err != nil {
			panic(err)
		}
	}
}

func icmpRunner(t testing.TB, k fnatConn) func() {
	c := icmpCase{k: k, fromServer: true, quoted: pkt{proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts, payload: seqPayload(64)},
		typ: header.ICMPv4DstUnreachable, code: icmpv4FragNeeded, mtu: 1400}
	if k == conn6 {
		c.typ, c.code = header.ICMPv6PacketTooBig, 0
	}
	in, _, os, od, inner := c.setup(t)
	pkt := append([]byte(nil), in...)
	return func() {
		copy(pkt, in)
		e, err := ParseICMPError(pkt)
		if err != nil || e.MTU == 0 {
			panic(err)
		}
		if err := TranslateICMPError(pkt, os, od, &inner); err != nil {
			panic(err)
		}
		if err := AdjustICMPMTU(pkt, -TOALenIPv4); err != nil {
			panic(err)
		}
	}
}

func TestAllocs(t *testing.T) {
	tcp4 := pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts, payload: seqPayload(100)}.build(t)
	udp6 := pkt{ep: conn6.clientSent(), proto: header.ProtoUDP, payload: seqPayload(100)}.build(t)
	syn := pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN | header.TCPFlagACK, opts: synOpts}.build(t)
	synCopy := append([]byte(nil), syn...)
	icmp4, icmp6 := icmpRunner(t, conn4), icmpRunner(t, conn6)
	toa4 := toaRunner(t, conn4, netip.AddrPortFrom(conn4.c, cport))
	toa6 := toaRunner(t, conn6, netip.AddrPortFrom(conn6.c, cport))
	rw4, rw6 := rewriteFlipFlop(tcp4, conn4), rewriteFlipFlop(udp6, conn6)
	refuse := pkt{ep: conn4.clientSent(), proto: header.ProtoICMP}.build(t)
	i := 0
	for name, fn := range map[string]func(){
		"Rewrite IPv4 TCP": func() { rw4(i); i++ },
		"Rewrite IPv6 UDP": func() { rw6(i); i++ },
		"Rewrite refused": func() {
			if Rewrite(refuse, &Endpoints{}) == nil {
				panic("accepted")
			}
		},
		"InsertTOA IPv4": toa4,
		"InsertTOA IPv6": toa6,
		"ClampMSS": func() {
			copy(syn, synCopy)
			if !ClampMSS(syn, 1452) {
				panic("not clamped")
			}
		},
		"ICMPv4 parse+translate+adjust": icmp4,
		"ICMPv6 parse+translate+adjust": icmp6,
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}

func BenchmarkRewrite(b *testing.B) {
	for _, bc := range []struct {
		name string
		p    pkt
		k    fnatConn
	}{
		{"IPv4-TCP", pkt{ep: conn4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts, payload: seqPayload(18)}, conn4},
		{"IPv4-UDP", pkt{ep: conn4.clientSent(), proto: header.ProtoUDP, payload: seqPayload(18)}, conn4},
		{"IPv6-TCP", pkt{ep: conn6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts}, conn6},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l3 := bc.p.build(b)
			// Alternate between the two rewrites so that every call
			// changes every field.
			tos := [2]Endpoints{bc.k.toServer(), bc.k.clientSent()}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := Rewrite(l3, &tos[i&1]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkInsertTOA(b *testing.B) {
	for _, bc := range []struct {
		name string
		k    fnatConn
	}{{"IPv4", conn4}, {"IPv6", conn6}} {
		b.Run(bc.name, func(b *testing.B) {
			fn := toaRunner(b, bc.k, netip.AddrPortFrom(bc.k.c, cport))
			b.ReportAllocs()
			for b.Loop() {
				fn()
			}
		})
	}
}

func BenchmarkClampMSS(b *testing.B) {
	syn := pkt{ep: conn4.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN | header.TCPFlagACK, opts: synOpts}.build(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ClampMSS(syn, 1452-uint16(i&1)) // changes every time
	}
}

func BenchmarkTranslateICMPError(b *testing.B) {
	for _, bc := range []struct {
		name string
		k    fnatConn
	}{{"IPv4", conn4}, {"IPv6", conn6}} {
		b.Run(bc.name, func(b *testing.B) {
			c := icmpCase{k: bc.k, fromServer: true, quoted: pkt{proto: header.ProtoTCP, flags: header.TCPFlagACK, opts: tsOpts, payload: seqPayload(64)},
				typ: header.ICMPv4DstUnreachable, code: icmpv4FragNeeded, mtu: 1400}
			if bc.k == conn6 {
				c.typ, c.code = header.ICMPv6PacketTooBig, 0
			}
			l3 := c.build(b)
			fwd := []Endpoints{bc.k.clientSent(), bc.k.toServer()}
			outer := [][2]netip.Addr{{bc.k.v, bc.k.c}, {bc.k.router, bc.k.l}}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				j := i & 1 // translate back and forth
				if err := TranslateICMPError(l3, outer[j][0], outer[j][1], &fwd[j]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// build returns the error as it arrives from the router (for benchmarks).
func (c icmpCase) build(t testing.TB) []byte {
	e := icmpErr{src: c.k.router, dst: c.k.l, typ: c.typ, code: c.code, mtu: c.mtu,
		quoted: c.quoted.withEP(c.k.toServer()).build(t), quoteLen: c.quoteLen}
	return e.build(t)
}
