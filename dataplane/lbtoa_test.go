package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/nat"
)

// Forged TOA options a client may send: kind 254 in the IPv4 form, kind
// 253 in the IPv6 form, and a kind 254 of an odd length.
var (
	forgedTOA4 = layers.TCPOption{OptionType: nat.TOAKind, OptionLength: 8, OptionData: []byte{0x01, 0xbb, 1, 2, 3, 4}}
	forgedTOA6 = layers.TCPOption{OptionType: nat.TOAKindAlt, OptionLength: 20,
		OptionData: append([]byte{0, 80}, netip.MustParseAddr("2001:db8::bad").AsSlice()...)}
	forgedOdd = layers.TCPOption{OptionType: nat.TOAKind, OptionLength: 3, OptionData: []byte{7}}
	tsOpt     = layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 1, 0, 0, 0, 2, 0}}
	nopOpt    = layers.TCPOption{OptionType: layers.TCPOptionKindNop}
)

// toaOpts returns every option of kind 254 or 253 in a decoded segment.
func toaOpts(tcp *layers.TCP) []layers.TCPOption {
	var o []layers.TCPOption
	for _, x := range tcp.Options {
		if x.OptionType == nat.TOAKind || x.OptionType == nat.TOAKindAlt {
			o = append(o, x)
		}
	}
	return o
}

// wantGVSTOA requires exactly one TOA option in d: GVS's, for client.
func wantGVSTOA(t *testing.T, what string, d decoded, client netip.AddrPort) {
	t.Helper()
	o := toaOpts(d.tcp)
	if len(o) != 1 {
		t.Fatalf("%s: %d TOA options %v, want exactly GVS's", what, len(o), o)
	}
	want := binary.BigEndian.AppendUint16(nil, client.Port())
	want = append(want, client.Addr().AsSlice()...)
	if o[0].OptionType != nat.TOAKind || int(o[0].OptionLength) != 2+len(want) || !bytes.Equal(o[0].OptionData, want) {
		t.Fatalf("%s: TOA kind %d len %d data %x, want kind 254 len %d data %x", what, o[0].OptionType, o[0].OptionLength, o[0].OptionData, 2+len(want), want)
	}
}

func wantNoTOA(t *testing.T, what string, d decoded) {
	t.Helper()
	if o := toaOpts(d.tcp); len(o) != 0 {
		t.Fatalf("%s: TOA options %v reach the real server, want none", what, o)
	}
}

// toaConn is one FullNAT TCP connection through the test dataplane.
type toaConn struct {
	td               *testDP
	client, vip, rs  netip.AddrPort
	local            netip.AddrPort
	cseq, sseq       uint32
	clientSeg        func(s tcpSeg) []byte
	serverSeg        func(s tcpSeg) []byte
	toaLen, ipHdrLen int
}

func newTOAConn(t *testing.T, v6 bool, cport uint16) *toaConn {
	td := newLBTestDP(t, 1)
	c := &toaConn{td: td, client: netip.AddrPortFrom(clientIP, cport), vip: netip.AddrPortFrom(vip, 80),
		rs: netip.AddrPortFrom(rs1IP, 8080), cseq: 1000, sseq: 5000, toaLen: 8, ipHdrLen: 20}
	l := lip
	if v6 {
		td.service(ipvs.TCP, vip6, 80, "rr", lip6, netip.AddrPortFrom(rs1IP6, 8080))
		c.client, c.vip, c.rs, l = netip.AddrPortFrom(clientIP6, cport), netip.AddrPortFrom(vip6, 80), netip.AddrPortFrom(rs1IP6, 8080), lip6
		c.toaLen, c.ipHdrLen = 20, 40
	}
	c.clientSeg = func(s tcpSeg) []byte {
		s.src, s.dst, s.smac, s.dmac = c.client, c.vip, macClient, macDP0
		return tcpFrame(t, s)
	}
	c.serverSeg = func(s tcpSeg) []byte {
		s.src, s.dst, s.smac, s.dmac = c.rs, c.local, macRS1, macDP1
		return tcpFrame(t, s)
	}
	// SYN with a forged TOA: scrubbed there too
	syn := td.one(t, 0, c.clientSeg(tcpSeg{syn: true, seq: c.cseq, mss: 1460, opts: []layers.TCPOption{nopOpt, nopOpt, forgedTOA4}}), 1)
	wantNoTOA(t, "SYN", syn)
	c.local = netip.AddrPortFrom(l, syn.src.Port())
	c.cseq++
	td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: c.sseq, ackn: c.cseq, mss: 1460}), 0)
	c.sseq++
	return c
}

// ack is a client segment of the connection, with options and payload.
func (c *toaConn) ack(opts []layers.TCPOption, payload []byte) []byte {
	return c.clientSeg(tcpSeg{ack: true, psh: len(payload) > 0, seq: c.cseq, ackn: c.sseq, opts: opts, payload: payload})
}

func badChecksum(frame []byte) []byte {
	off := 14 + 20 + 16
	if frame[14]>>4 == 6 {
		off = 14 + 40 + 16
	}
	frame[off] ^= 0x5a
	return frame
}

// TestTOAForgedWithRoom: a first ACK carrying forged kind-254 and kind-253
// options reaches the real server with exactly GVS's TOA; the client's
// other options are kept.
func TestTOAForgedWithRoom(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v6       bool
		opts     []layers.TCPOption // leaves room for GVS's TOA
		scrubbed uint64
	}{
		// 20+3+1+8 = 32 bytes: room for 8
		{"IPv4", false, []layers.TCPOption{forgedTOA6, forgedOdd, nopOpt, forgedTOA4}, 3},
		// 8+2+10 = 20 bytes: room for 20
		{"IPv6", true, []layers.TCPOption{forgedTOA4, nopOpt, nopOpt, tsOpt}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTOAConn(t, tc.v6, 40100)
			got := c.td.one(t, 0, c.ack(tc.opts, nil), 1)
			wantGVSTOA(t, "first ACK", got, c.client)
			if tc.v6 && tsOf(got.tcp) == nil {
				t.Error("the client's timestamps option was lost")
			}
			if got.dst != c.rs || got.src != c.local {
				t.Errorf("first ACK %s -> %s", got.src, got.dst)
			}
			if n := c.td.sum(CtrLBTOAScrubbed); n != 1+tc.scrubbed { // +1: the SYN's
				t.Errorf("lb_toa_scrubbed = %d, want %d", n, 1+tc.scrubbed)
			}
			if c.td.sum(CtrLBTOAAdded) != 1 || c.td.sum(CtrLBTOAFailed) != 0 {
				t.Errorf("lb_toa_added %d lb_toa_failed %d", c.td.sum(CtrLBTOAAdded), c.td.sum(CtrLBTOAFailed))
			}
		})
	}
}

func tsOf(tcp *layers.TCP) []byte {
	for _, o := range tcp.Options {
		if o.OptionType == layers.TCPOptionKindTimestamps {
			return o.OptionData
		}
	}
	return nil
}

// TestTOAForgedWithoutRoom: with the options area full, the segment reaches
// the real server with no TOA at all (counted); the next segment gets GVS's.
func TestTOAForgedWithoutRoom(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		c := newTOAConn(t, v6, 40200)
		full := []layers.TCPOption{forgedTOA6, forgedTOA4, nopOpt, nopOpt, tsOpt} // 20+8+2+10 = 40 bytes
		got := c.td.one(t, 0, c.ack(full, nil), 1)
		wantNoTOA(t, "first ACK with 40 bytes of options", got)
		if got.tcp.DataOffset != 15 || tsOf(got.tcp) == nil {
			t.Errorf("header length %d words, timestamps %x", got.tcp.DataOffset, tsOf(got.tcp))
		}
		if c.td.sum(CtrLBTOAFailed) != 1 || c.td.sum(CtrLBTOAAdded) != 0 || c.td.sum(CtrLBTOAScrubbed) != 1+2 {
			t.Errorf("v6=%v: lb_toa_failed %d lb_toa_added %d lb_toa_scrubbed %d", v6, c.td.sum(CtrLBTOAFailed), c.td.sum(CtrLBTOAAdded), c.td.sum(CtrLBTOAScrubbed))
		}
		// not confirmed: the next segment carries GVS's TOA
		got = c.td.one(t, 0, c.ack([]layers.TCPOption{forgedTOA4}, []byte("hello")), 1)
		wantGVSTOA(t, "next segment", got, c.client)
		if string(got.tcp.Payload) != "hello" {
			t.Errorf("payload %q", got.tcp.Payload)
		}
	}
}

// TestTOABadChecksumDoesNotConsume: a first ACK with a bad TCP checksum is
// dropped and changes nothing; the next ACK carries GVS's TOA and nothing
// else of kind 254/253.
func TestTOABadChecksumDoesNotConsume(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		c := newTOAConn(t, v6, 40300)
		c.td.inject(0, badChecksum(c.ack([]layers.TCPOption{forgedTOA4}, nil)))
		c.td.stepAll()
		if n := len(c.td.outAll(1)); n != 0 || c.td.sum(CtrDropLBBadChecksum) != 1 {
			t.Fatalf("v6=%v: %d frames forwarded, drop_lb_bad_checksum %d", v6, n, c.td.sum(CtrDropLBBadChecksum))
		}
		conns, _ := c.td.d.Conns(nil)
		if len(conns) != 1 || conns[0].State.String() != "SYN_RECV" {
			t.Fatalf("the bad segment moved the connection: %+v", conns)
		}
		got := c.td.one(t, 0, c.ack([]layers.TCPOption{forgedTOA4}, nil), 1)
		wantGVSTOA(t, "ACK after a bad-checksum ACK", got, c.client)
	}
}

// TestTOAConfirmedByServer: until the real server answers, every client
// segment carries GVS's TOA; after its ACK none does, and the client's
// forged options are still scrubbed. Malformed option lists are dropped.
func TestTOAConfirmedByServer(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		c := newTOAConn(t, v6, 40400)
		for i := 0; i < 3; i++ { // the ACK and two data segments
			got := c.td.one(t, 0, c.ack([]layers.TCPOption{nopOpt, forgedOdd}, bytes.Repeat([]byte{'x'}, i)), 1)
			wantGVSTOA(t, "segment before the server answered", got, c.client)
			c.cseq += uint32(i)
		}
		// a server's SYN-ACK retransmission does not confirm; its ACK does
		c.td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: c.sseq - 1, ackn: c.cseq - 3}), 0)
		wantGVSTOA(t, "segment after a SYN-ACK retransmission", c.td.one(t, 0, c.ack(nil, nil), 1), c.client)
		c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: c.sseq, ackn: c.cseq}), 0)
		added := c.td.sum(CtrLBTOAAdded)
		scrubbed := c.td.sum(CtrLBTOAScrubbed)
		got := c.td.one(t, 0, c.ack([]layers.TCPOption{forgedTOA4, nopOpt, nopOpt, tsOpt}, []byte("data")), 1)
		wantNoTOA(t, "data after the server's ACK", got)
		if string(got.tcp.Payload) != "data" || tsOf(got.tcp) == nil {
			t.Errorf("payload %q timestamps %x", got.tcp.Payload, tsOf(got.tcp))
		}
		if c.td.sum(CtrLBTOAAdded) != added || c.td.sum(CtrLBTOAScrubbed) != scrubbed+1 {
			t.Errorf("after confirmation: lb_toa_added %d (was %d), lb_toa_scrubbed %d (was %d)", c.td.sum(CtrLBTOAAdded), added, c.td.sum(CtrLBTOAScrubbed), scrubbed)
		}
		c.cseq += 4
		// a malformed option list: its length byte runs past the header
		bad := c.ack([]layers.TCPOption{nopOpt, nopOpt, tsOpt}, nil)
		bad[14+c.ipHdrLen+20+3] = 20
		c.td.inject(0, bad)
		c.td.stepAll()
		if n := len(c.td.outAll(1)); n != 0 || c.td.sum(CtrDropLBBadTCPOptions) != 1 {
			t.Errorf("malformed options: %d frames forwarded, drop_lb_bad_tcp_options %d", n, c.td.sum(CtrDropLBBadTCPOptions))
		}
	}
}

// TestTOANoRoomInMTU: a client segment that fills the MTU (a client that
// ignores the clamped MSS) goes on without the TOA rather than being dropped.
func TestTOANoRoomInMTU(t *testing.T) {
	c := newTOAConn(t, false, 40500)
	got := c.td.one(t, 0, c.ack([]layers.TCPOption{forgedTOA4}, make([]byte, 1500-20-28)), 1)
	wantNoTOA(t, "full-MTU segment", got)
	if c.td.sum(CtrLBTOAFailed) != 1 || len(got.tcp.Payload) != 1500-48 {
		t.Errorf("lb_toa_failed %d, payload %d bytes", c.td.sum(CtrLBTOAFailed), len(got.tcp.Payload))
	}
}
