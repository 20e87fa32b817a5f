//go:build linux

package xdpfast

import (
	"bytes"
	"cmp"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
)

// XDP actions as BPF_PROG_RUN returns them. The test maps have no AF_XDP
// socket, so "to the workers" is the XSKMAP's fallback action, XDP_PASS:
// what the program without the fast path returns for the same frame.
const (
	xdpPass     = 2
	xdpRedirect = 4
)

// A FullNAT connection in each family: client C, virtual service V, local
// address L, real server D.
type fnatConn struct{ c, v, l, d netip.Addr }

const (
	cport uint16 = 40000
	vport uint16 = 80
	lport uint16 = 1029
	dport uint16 = 8080
)

var (
	conn4 = fnatConn{
		c: netip.MustParseAddr("198.51.100.7"), v: netip.MustParseAddr("203.0.113.10"),
		l: netip.MustParseAddr("10.0.0.5"), d: netip.MustParseAddr("10.0.1.20"),
	}
	conn6 = fnatConn{
		c: netip.MustParseAddr("2001:db8:c::7"), v: netip.MustParseAddr("2001:db8:f::10"),
		l: netip.MustParseAddr("fd00::5"), d: netip.MustParseAddr("fd00:1::20"),
	}
	portMAC    = [6]byte{0x02, 0, 0, 0, 0, 0x01} // GVS's port, where frames arrive
	clientHop  = [6]byte{0x02, 0, 0, 0, 0, 0xc1} // the router towards clients
	serverHop  = [6]byte{0x02, 0, 0, 0, 0, 0xd1} // the real server
	egressPort = [6]byte{0x02, 0, 0, 0, 0, 0x02} // GVS's port towards the servers
)

func (k fnatConn) clientSent() nat.Endpoints {
	return nat.Endpoints{Src: k.c, Dst: k.v, SrcPort: cport, DstPort: vport}
}
func (k fnatConn) toServer() nat.Endpoints {
	return nat.Endpoints{Src: k.l, Dst: k.d, SrcPort: lport, DstPort: dport}
}
func (k fnatConn) serverSent() nat.Endpoints {
	return nat.Endpoints{Src: k.d, Dst: k.l, SrcPort: dport, DstPort: lport}
}
func (k fnatConn) toClient() nat.Endpoints {
	return nat.Endpoints{Src: k.v, Dst: k.c, SrcPort: vport, DstPort: cport}
}

func keyOf(proto uint8, e nat.Endpoints) Key {
	return Key{Proto: proto, Src: e.Src, Dst: e.Dst, SrcPort: e.SrcPort, DstPort: e.DstPort}
}

// loIfindex is an egress the DEVMAP accepts in every namespace; BPF_PROG_RUN
// only records the redirect, nothing is sent.
const loIfindex = 1

// offload writes both directions of a connection of k: in towards the
// server out of egress port lo, out towards the client.
func offload(t testing.TB, f *Fast, proto uint8, k fnatConn, mtu int) {
	t.Helper()
	in := k.toServer()
	if err := f.Add(keyOf(proto, k.clientSent()), Rewrite{Src: in.Src, Dst: in.Dst, SrcPort: in.SrcPort, DstPort: in.DstPort,
		SrcMAC: egressPort, DstMAC: serverHop, Ifindex: loIfindex, MTU: mtu}); err != nil {
		t.Fatal(err)
	}
	out := k.toClient()
	if err := f.Add(keyOf(proto, k.serverSent()), Rewrite{Src: out.Src, Dst: out.Dst, SrcPort: out.SrcPort, DstPort: out.DstPort,
		SrcMAC: portMAC, DstMAC: clientHop, Ifindex: loIfindex, MTU: mtu}); err != nil {
		t.Fatal(err)
	}
}

func loadTest(t testing.TB, o Options) *Fast {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("BPF_PROG_RUN needs root")
	}
	f, err := Load(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.AddEgress(loIfindex); err != nil {
		t.Fatal(err)
	}
	return f
}

// frame describes a test frame; build serialises it with gopacket.
type frame struct {
	ep       nat.Endpoints
	proto    uint8
	flags    uint8 // TCP flags (header.TCPFlag*)
	payload  []byte
	ttl      uint8
	ipOpts   bool   // IPv4 router alert option
	fragOff  uint16 // IPv4 flags+fragment offset field
	hopByHop bool   // IPv6 hop-by-hop options header
	v6Frag   bool   // IPv6 fragment header
	vlan     bool   // one 802.1Q tag
	noUDPCk  bool   // UDP checksum 0
	dstMAC   []byte // default portMAC
	seq      uint32 // TCP sequence number; default 1000
	ack      uint32 // TCP acknowledgment number; default 2000
}

func ip(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

func (f frame) build(t testing.TB) []byte {
	t.Helper()
	ttl := f.ttl
	if ttl == 0 {
		ttl = 64
	}
	dst := f.dstMAC
	if dst == nil {
		dst = portMAC[:]
	}
	eth := &layers.Ethernet{SrcMAC: clientHop[:], DstMAC: dst}
	ls := []gopacket.SerializableLayer{eth}
	etype := layers.EthernetTypeIPv4
	if f.ep.Src.Is6() {
		etype = layers.EthernetTypeIPv6
	}
	if f.vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: 100, Type: etype})
	} else {
		eth.EthernetType = etype
	}
	var netl gopacket.NetworkLayer
	if f.ep.Src.Is4() {
		v4 := &layers.IPv4{Version: 4, TTL: ttl, Id: 0x1234, Protocol: layers.IPProtocol(f.proto),
			SrcIP: ip(f.ep.Src), DstIP: ip(f.ep.Dst),
			Flags: layers.IPv4Flag(f.fragOff >> 13), FragOffset: f.fragOff & 0x1fff}
		if f.ipOpts {
			v4.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
		}
		ls, netl = append(ls, v4), v4
	} else {
		v6 := &layers.IPv6{Version: 6, HopLimit: ttl, FlowLabel: 0x12345, TrafficClass: 0x20,
			NextHeader: layers.IPProtocol(f.proto), SrcIP: ip(f.ep.Src), DstIP: ip(f.ep.Dst)}
		if f.hopByHop {
			v6.NextHeader = layers.IPProtocolIPv6HopByHop
			v6.HopByHop = &layers.IPv6HopByHop{}
			v6.HopByHop.NextHeader = layers.IPProtocol(f.proto)
			v6.HopByHop.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
		}
		ls, netl = append(ls, v6), v6
	}
	if f.proto == header.ProtoTCP {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(f.ep.SrcPort), DstPort: layers.TCPPort(f.ep.DstPort),
			Seq: cmp.Or(f.seq, 1000), Ack: cmp.Or(f.ack, 2000), Window: 29200,
			FIN: f.flags&header.TCPFlagFIN != 0, SYN: f.flags&header.TCPFlagSYN != 0,
			RST: f.flags&header.TCPFlagRST != 0, PSH: f.flags&header.TCPFlagPSH != 0,
			ACK: f.flags&header.TCPFlagACK != 0}
		_ = tcp.SetNetworkLayerForChecksum(netl)
		ls = append(ls, tcp)
	} else {
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.ep.SrcPort), DstPort: layers.UDPPort(f.ep.DstPort)}
		_ = udp.SetNetworkLayerForChecksum(netl)
		ls = append(ls, udp)
	}
	ls = append(ls, gopacket.Payload(f.payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	l3 := 14
	if f.vlan {
		l3 = 18
	}
	if f.noUDPCk {
		hl := 40
		if f.ep.Src.Is4() {
			hl = int(b[l3]&15) * 4
		}
		b[l3+hl+6], b[l3+hl+7] = 0, 0
	}
	if f.v6Frag { // a first fragment: MF set, offset 0
		fh := []byte{b[l3+6], 0, 0, 1, 0, 0, 0x12, 0x34}
		b = append(b[:l3+40], append(fh, b[l3+40:]...)...)
		b[l3+6] = 44
		pl := int(b[l3+4])<<8 | int(b[l3+5]) + 8
		b[l3+4], b[l3+5] = byte(pl>>8), byte(pl)
	}
	return b
}

// expectFast is what a frame of a worker's connection leaves with: the
// IP packet as nat.RewriteAt rewrites it to `to`, TTL or hop limit minus
// one, and the next hop's MACs.
func expectFast(t testing.TB, in []byte, to nat.Endpoints, src, dst [6]byte) []byte {
	t.Helper()
	out := bytes.Clone(in)
	l3 := out[14:]
	if l3[0]>>4 == 4 {
		v4 := header.IPv4(l3[:header.IPv4(l3).TotalLen()])
		if err := nat.RewriteAt(v4, header.LocateIPv4(v4), &to); err != nil {
			t.Fatal(err)
		}
		v4.DecTTL()
	} else {
		v6 := header.IPv6(l3[:header.IPv6MinSize+int(header.IPv6(l3).PayloadLen())])
		if err := nat.RewriteAt(v6, header.LocateIPv6(v6), &to); err != nil {
			t.Fatal(err)
		}
		v6.SetHopLimit(v6.HopLimit() - 1)
	}
	copy(out[0:6], dst[:])
	copy(out[6:12], src[:])
	return out
}

// decodeVerified decodes an Ethernet frame with gopacket and requires its
// IPv4 header and TCP/UDP checksums to verify.
func decodeVerified(t testing.TB, b []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket cannot decode the frame: %v", el.Error())
	}
	var netl gopacket.NetworkLayer
	for _, l := range p.Layers() {
		switch x := l.(type) {
		case gopacket.NetworkLayer:
			netl = x
		case *layers.TCP:
			_ = x.SetNetworkLayerForChecksum(netl)
		case *layers.UDP:
			_ = x.SetNetworkLayerForChecksum(netl)
		}
	}
	if err, bad := p.VerifyChecksums(); err != nil || len(bad) != 0 {
		t.Fatalf("checksums: %v %v\n%v", err, bad, p)
	}
	return p
}

// run runs the program once on a copy of in.
func run(t testing.TB, f *Fast, in []byte) (uint32, []byte) {
	t.Helper()
	opts := ebpf.RunOptions{Data: bytes.Clone(in), DataOut: make([]byte, len(in)+256)}
	ret, err := f.Program().Run(&opts)
	if err != nil {
		t.Fatalf("BPF_PROG_RUN: %v", err)
	}
	return ret, opts.DataOut
}

func verdicts(t testing.TB, f *Fast) Verdicts {
	t.Helper()
	v, err := f.Verdicts()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
