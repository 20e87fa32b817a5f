package dataplane

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/ipvs"
	"github.com/gvs-lb/gvs/proxyproto"
)

// ppTest is a FullNAT connection through a proxy-protocol service.
type ppTest struct {
	*spConnT
	hdr []byte
}

func newPPTest(t *testing.T, v6 bool, pp string, synproxy bool) *ppTest {
	c := newSPTest(t, v6)
	k := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: c.vip.Addr(), Port: 80}
	ver, insecure, err := ipvs.ParseProxyProtocol(pp)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.td.d.EditService(ipvs.ServiceSpec{Key: k, Sched: "rr", SynProxy: synproxy, ProxyProtocol: ver, ProxyProtocolInsecure: insecure}); err != nil {
		t.Fatal(err)
	}
	h := make([]byte, 128)
	h = h[:proxyproto.Write(h, int(ver), 6, c.client, c.vip)]
	c.extra = len(h)
	return &ppTest{spConnT: c, hdr: h}
}

// open runs a plain FullNAT handshake: SYN to the server, its SYN-ACK
// back (MSS clamped by the header's length).
func (c *ppTest) open(sisn uint32) {
	t := c.t
	syn := c.td.one(t, 0, c.clientSeg(tcpSeg{syn: true, seq: c.cisn, mss: 1460}), 1)
	if len(syn.tcp.Payload) != 0 || syn.tcp.Seq != c.cisn {
		t.Fatalf("SYN to the server: seq %d payload %q", syn.tcp.Seq, syn.tcp.Payload)
	}
	c.local = syn.src
	sa := c.td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: sisn, ackn: c.cisn + 1, mss: 1460}), 0)
	ip := 20
	if c.client.Addr().Is6() {
		ip = 40
	}
	if m, _ := tcpOpt(sa.tcp, layers.TCPOptionKindMSS); len(m) != 2 || int(m[0])<<8|int(m[1]) != 1500-ip-20-len(c.hdr) {
		t.Errorf("SYN-ACK MSS %x, want %d (room for the %d-byte header)", m, 1500-ip-20-len(c.hdr), len(c.hdr))
	}
	if sa.tcp.Ack != c.cisn+1 {
		t.Fatalf("SYN-ACK ack %d", sa.tcp.Ack)
	}
}

// TestProxyProtocol: v1 and v2, IPv4 and IPv6: the handshake's ACK carries
// the header; a retransmission of the first segment carries it again; later
// segments move up by its length, the server's acknowledgements and SACK
// blocks down; no TOA.
func TestProxyProtocol(t *testing.T) {
	for _, tc := range []struct {
		pp string
		v6 bool
	}{{"v1", false}, {"v2", false}, {"v1", true}, {"v2", true}} {
		c := newPPTest(t, tc.v6, tc.pp, false)
		const sisn = 9000
		c.open(sisn)
		n := uint32(len(c.hdr))
		ack := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: sisn + 1}), 1)
		if !bytes.Equal(ack.tcp.Payload, c.hdr) || ack.tcp.Seq != c.cisn+1 || ack.tcp.Ack != sisn+1 {
			t.Fatalf("%s v6=%v: handshake ACK seq %d payload %q, want the header %q", tc.pp, tc.v6, ack.tcp.Seq, ack.tcp.Payload, c.hdr)
		}
		wantNoTOA(t, "handshake ACK", ack)
		// the request at ISN+1 before the header is acknowledged: the header again, in front
		req := []byte("GET / HTTP/1.0\r\n\r\n")
		d := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, psh: true, seq: c.cisn + 1, ackn: sisn + 1, payload: req}), 1)
		if !bytes.Equal(d.tcp.Payload, append(append([]byte(nil), c.hdr...), req...)) || d.tcp.Seq != c.cisn+1 {
			t.Fatalf("first data: seq %d payload %q", d.tcp.Seq, d.tcp.Payload)
		}
		// the server acknowledges header and request; its SACK block is in its space
		rack := c.cisn + 1 + n + uint32(len(req))
		r := c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, psh: true, seq: sisn + 1, ackn: rack, payload: []byte("200"),
			opts: []layers.TCPOption{nopOpt, nopOpt, optSACK(rack+10, rack+20)}}), 0)
		if r.tcp.Ack != c.cisn+1+uint32(len(req)) {
			t.Errorf("server ACK to the client %d, want %d", r.tcp.Ack, c.cisn+1+uint32(len(req)))
		}
		if s, _ := tcpOpt(r.tcp, layers.TCPOptionKindSACK); len(s) != 8 || be32(s) != rack+10-n {
			t.Errorf("SACK %x, want %d", s, rack+10-n)
		}
		// confirmed: a later segment moves up, a retransmission at ISN+1 too (no header)
		more := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1 + uint32(len(req)), ackn: sisn + 4, payload: []byte("x")}), 1)
		if more.tcp.Seq != rack || string(more.tcp.Payload) != "x" {
			t.Errorf("later segment seq %d (want %d) payload %q", more.tcp.Seq, rack, more.tcp.Payload)
		}
		re := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: sisn + 4, payload: req}), 1)
		if re.tcp.Seq != c.cisn+1+n || !bytes.Equal(re.tcp.Payload, req) {
			t.Errorf("retransmission after confirmation: seq %d payload %q", re.tcp.Seq, re.tcp.Payload)
		}
		if c.td.sum(CtrLBPPAdded) != 2 {
			t.Errorf("lb_proxy_protocol_added %d, want 2", c.td.sum(CtrLBPPAdded))
		}
	}
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// TestProxyProtocolInsecure: -insecure keeps a client's own header of the
// version (no shift at all), and puts GVS's in front of anything else; it
// decides at the first data, not at the handshake's ACK.
func TestProxyProtocolInsecure(t *testing.T) {
	c := newPPTest(t, false, "v1-insecure", false)
	c.open(100)
	if a := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: 101}), 1); len(a.tcp.Payload) != 0 {
		t.Fatalf("insecure: the handshake ACK got %q", a.tcp.Payload)
	}
	own := []byte("PROXY TCP4 198.51.100.7 10.1.0.100 5555 80\r\nGET /")
	d := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: 101, payload: own}), 1)
	if !bytes.Equal(d.tcp.Payload, own) {
		t.Fatalf("the client's header was not kept: %q", d.tcp.Payload)
	}
	r := c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: 101, ackn: c.cisn + 1 + uint32(len(own))}), 0)
	if r.tcp.Ack != c.cisn+1+uint32(len(own)) {
		t.Errorf("kept: ack shifted to %d", r.tcp.Ack)
	}

	c = newPPTest(t, false, "v2-insecure", false)
	c.open(100)
	d = c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: 101, payload: own}), 1) // a v1 header at a v2 service
	if !bytes.Equal(d.tcp.Payload, append(append([]byte(nil), c.hdr...), own...)) {
		t.Fatalf("v2-insecure with a v1 header: %q", d.tcp.Payload)
	}
}

// TestProxyProtocolWithSynProxy: the SYN proxy's ACK to the server carries
// the header in front of the held request; both shifts apply after.
func TestProxyProtocolWithSynProxy(t *testing.T) {
	c := newPPTest(t, false, "v2", true)
	c.handshake()
	req := []byte("GET /")
	c.td.inject(0, c.clientSeg(tcpSeg{ack: true, psh: true, seq: c.cisn + 1, ackn: c.cookie + 1, payload: req}))
	c.td.stepAll()
	const sisn = 4000
	ack := c.td.one(t, 1, c.serverSeg(tcpSeg{syn: true, ack: true, seq: sisn, ackn: c.cisn + 1, mss: 1460}), 1)
	if !bytes.Equal(ack.tcp.Payload, append(append([]byte(nil), c.hdr...), req...)) {
		t.Fatalf("handshake ACK payload %q", ack.tcp.Payload)
	}
	wantNoTOA(t, "handshake ACK", ack)
	n := uint32(len(c.hdr))
	r := c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: sisn + 1, ackn: c.cisn + 1 + n + 5, payload: []byte("ok")}), 0)
	if r.tcp.Seq != c.cookie+1 || r.tcp.Ack != c.cisn+6 {
		t.Fatalf("server data to the client: seq %d ack %d, want %d %d", r.tcp.Seq, r.tcp.Ack, c.cookie+1, c.cisn+6)
	}
	in := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 6, ackn: c.cookie + 3, payload: []byte("y")}), 1)
	if in.tcp.Seq != c.cisn+6+n || in.tcp.Ack != sisn+3 {
		t.Fatalf("client data to the server: seq %d ack %d, want %d %d", in.tcp.Seq, in.tcp.Ack, c.cisn+6+n, sisn+3)
	}
}

// TestProxyProtocolCut: a full-size first segment that would not fit the
// egress MTU with the header is cut; the client resends the rest.
func TestProxyProtocolCut(t *testing.T) {
	c := newPPTest(t, false, "v1", false)
	c.open(100)
	big := bytes.Repeat([]byte("a"), 1460)
	d := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: 101, payload: big}), 1)
	if got := len(d.tcp.Payload); got != 1460 || !bytes.HasPrefix(d.tcp.Payload, c.hdr) {
		t.Fatalf("cut segment: %d bytes of payload, want 1460 starting with the header", got)
	}
	if c.td.sum(CtrLBPPCut) != 1 {
		t.Error("lb_proxy_protocol_cut not counted")
	}
}

// TestProxyProtocolSync: a proxy-protocol connection is published with its
// shift, and the peer that installs it moves the client's segments past
// the header and the server's acknowledgements back.
func TestProxyProtocolSync(t *testing.T) {
	a := newPPTest(t, false, "v2", false)
	setSync(a.td, SyncPolicy{Threshold: 2})
	a.open(500)
	a.td.one(t, 0, a.clientSeg(tcpSeg{ack: true, seq: a.cisn + 1, ackn: 501}), 1) // the header
	ev := popSync(a.td)
	n := uint32(len(a.hdr))
	if len(ev) != 1 || !ev[0].Adjust.Present || ev[0].Adjust.PPShift != uint8(n) || ev[0].Adjust.SynProxy {
		t.Fatalf("events %+v, want one with the %d-byte shift", ev, n)
	}
	b := newPPTest(t, false, "v2", false)
	if res, err := b.td.d.InstallSynced(ev); err != nil || res.Installed != 1 {
		t.Fatalf("install: %+v %v", res, err)
	}
	b.local = a.local
	in := b.td.one(t, 0, b.clientSeg(tcpSeg{ack: true, seq: a.cisn + 1, ackn: 501, payload: []byte("GET")}), 1)
	if in.tcp.Seq != a.cisn+1+n || string(in.tcp.Payload) != "GET" {
		t.Fatalf("client data on the peer: seq %d payload %q, want %d without a header", in.tcp.Seq, in.tcp.Payload, a.cisn+1+n)
	}
	out := b.td.one(t, 1, b.serverSeg(tcpSeg{ack: true, seq: 501, ackn: a.cisn + 4 + n}), 0)
	if out.tcp.Ack != a.cisn+4 {
		t.Fatalf("server ACK on the peer: %d, want %d", out.tcp.Ack, a.cisn+4)
	}
}

// TestProxyProtocolLongStream: past 2 GiB of client data the shift still
// applies both ways (no half-space test once the header is acknowledged).
func TestProxyProtocolLongStream(t *testing.T) {
	c := newPPTest(t, false, "v1", false)
	c.open(100)
	n := uint32(len(c.hdr))
	c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: 101}), 1)
	c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: 101, ackn: c.cisn + 1 + n}), 0) // header acknowledged
	far := uint32(0x80000010)                                                         // 2 GiB and more later
	in := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1 + far, ackn: 101, payload: []byte("x")}), 1)
	if in.tcp.Seq != c.cisn+1+far+n {
		t.Errorf("client seq after 2 GiB: %d, want %d", in.tcp.Seq, c.cisn+1+far+n)
	}
	out := c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: 101, ackn: c.cisn + 2 + far + n}), 0)
	if out.tcp.Ack != c.cisn+2+far {
		t.Errorf("server ack after 2 GiB: %d, want %d", out.tcp.Ack, c.cisn+2+far)
	}
}

// TestProxyProtocolNewSYN: a new SYN from the port of a closing
// proxy-protocol connection is dropped and the old connection ended, so
// the client's retransmission opens a fresh one; the handshake's own SYN
// retransmitted passes.
func TestProxyProtocolNewSYN(t *testing.T) {
	c := newPPTest(t, false, "v2", false)
	c.open(100)
	again := c.td.one(t, 0, c.clientSeg(tcpSeg{syn: true, seq: c.cisn, mss: 1460}), 1)
	if !again.tcp.SYN || again.tcp.Seq != c.cisn || again.tcp.Window != 65535 {
		t.Fatalf("retransmitted SYN: seq %d window %d", again.tcp.Seq, again.tcp.Window)
	}
	c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, fin: true, seq: c.cisn + 1, ackn: 101}), 1)
	c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, fin: true, seq: 101, ackn: c.cisn + 2 + uint32(len(c.hdr))}), 0)
	c.td.inject(0, c.clientSeg(tcpSeg{syn: true, seq: 777777, mss: 1460}))
	c.td.stepAll()
	if len(c.td.outAll(1)) != 0 || c.td.sum(CtrDropLBAdjustedSYN) != 1 {
		t.Fatalf("new SYN on a closing connection: drop_lb_adjusted_syn %d", c.td.sum(CtrDropLBAdjustedSYN))
	}
	c.td.stepAll() // the expiry
	syn := c.td.one(t, 0, c.clientSeg(tcpSeg{syn: true, seq: 777777, mss: 1460}), 1)
	if syn.tcp.Seq != 777777 || !syn.tcp.SYN {
		t.Fatalf("the retransmitted new SYN: seq %d", syn.tcp.Seq)
	}
}

// TestProxyProtocolICMPQuote: an ICMP error about a proxy-protocol
// connection quotes the segment in its receiver's sequence space: the
// client finds the sequence number it sent (not the one moved past the
// header), the server the acknowledgement it would have seen.
func TestProxyProtocolICMPQuote(t *testing.T) {
	c := newPPTest(t, false, "v2", false)
	const sisn = 9000
	c.open(sisn)
	n := uint32(len(c.hdr))
	c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: sisn + 1}), 1) // the header
	c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: sisn + 1, ackn: c.cisn + 1 + n}), 0)
	cseq := c.cisn + 1 + 100 // a client segment, as the client numbers it
	sent := c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: cseq, ackn: sisn + 1, payload: make([]byte, 40)}), 1)
	if sent.tcp.Seq != cseq+n {
		t.Fatalf("segment to the server seq %d, want %d", sent.tcp.Seq, cseq+n)
	}
	quoted := tcpFrame(t, tcpSeg{src: c.local, dst: c.rs, smac: macDP1, dmac: macRS1, ack: true, seq: cseq + n, ackn: sisn + 1, payload: make([]byte, 40)})[14:]
	c.td.inject(1, fragNeeded4(t, rs2IP, c.local.Addr(), macRS1, macDP1, quoted))
	c.td.stepAll()
	out := c.td.outAll(0)
	if len(out) != 1 {
		t.Fatalf("%d errors to the client", len(out))
	}
	q := quotedTCP(t, out[0])
	if q.Seq != cseq || q.Ack != sisn+1 || uint16(q.SrcPort) != c.client.Port() {
		t.Errorf("quote to the client: seq %d ack %d port %d, want seq %d ack %d", q.Seq, q.Ack, q.SrcPort, cseq, sisn+1)
	}
	// from the client's side, about a segment GVS sent the client
	quoted = tcpFrame(t, tcpSeg{src: c.vip, dst: c.client, smac: macDP0, dmac: macClient, ack: true, seq: sisn + 1, ackn: cseq + 40})[14:]
	c.td.inject(0, fragNeeded4(t, clientIP, c.vip.Addr(), macClient, macDP0, quoted))
	c.td.stepAll()
	out = c.td.outAll(1)
	if len(out) != 1 {
		t.Fatalf("%d errors to the server", len(out))
	}
	if q := quotedTCP(t, out[0]); q.Seq != sisn+1 || q.Ack != cseq+40+n {
		t.Errorf("quote to the server: seq %d ack %d, want %d %d", q.Seq, q.Ack, sisn+1, cseq+40+n)
	}
}

// quotedTCP decodes the TCP segment an ICMPv4 error frame quotes (its
// checksum verified: the whole segment is quoted).
func quotedTCP(t *testing.T, frame []byte) *layers.TCP {
	t.Helper()
	ic := decode(t, frame).Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	inner := gopacket.NewPacket(ic.Payload, layers.LayerTypeIPv4, gopacket.Default)
	tcp, ok := inner.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		t.Fatalf("no quoted TCP: %v", inner)
	}
	ip := inner.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	want := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(want, gopacket.SerializeOptions{ComputeChecksums: true}, tcp, gopacket.Payload(tcp.Payload)); err != nil {
		t.Fatal(err)
	}
	if got := ic.Payload[ip.IHL*4 : ip.Length]; string(got) != string(want.Bytes()) {
		t.Errorf("quoted TCP checksum does not verify: seq %d ack %d ck %#x", tcp.Seq, tcp.Ack, tcp.Checksum)
	}
	return tcp
}

// TestProxyProtocolTooBig: a client segment of a proxy-protocol
// connection too big for the server's route gets fragmentation-needed
// quoting the segment exactly as the client sent it (its sequence number
// moved back out of the header's space, the checksum restored).
func TestProxyProtocolTooBig(t *testing.T) {
	c := newPPTest(t, false, "v2", false)
	const sisn = 9000
	c.open(sisn)
	n := uint32(len(c.hdr))
	c.td.one(t, 0, c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: sisn + 1}), 1) // the header
	c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: sisn + 1, ackn: c.cisn + 1 + n}), 0)
	in := setDF(c.clientSeg(tcpSeg{ack: true, seq: c.cisn + 1, ackn: sisn + 1, payload: make([]byte, 1500)}))
	c.td.inject(0, in)
	c.td.stepAll()
	if n := len(c.td.outAll(1)); n != 0 {
		t.Fatalf("%d frames to the server", n)
	}
	back := c.td.outAll(0)
	if len(back) != 1 {
		t.Fatalf("%d frames back to the client, drop_mtu_exceeded %d", len(back), c.td.sum(CtrDropMTUExceeded))
	}
	m := decode(t, back[0]).Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if m.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || m.Seq != 1500 {
		t.Fatalf("ICMP %v MTU %d", m.TypeCode, m.Seq)
	}
	if q := m.Payload; !bytes.Equal(q, in[14:14+len(q)]) {
		t.Errorf("the quote is not the client's segment as sent:\n% x\n% x", q[:48], in[14:14+48])
	}
}
