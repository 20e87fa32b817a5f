package dataplane

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

// setDF sets an IPv4 frame's don't-fragment bit and fixes its checksum.
func setDF(f []byte) []byte {
	ip := header.IPv4(f[14:])
	ip[6] |= 0x40
	ip.SetChecksum(0)
	ip.SetChecksum(^header.Checksum(ip[:20], 0))
	return f
}

// TestLBTooBig: a connection's packet that the egress MTU cannot take
// after translation gets the error a router sends, about the packet as
// its sender sent it: fragmentation-needed with the egress MTU (IPv4 with
// DF), packet-too-big (IPv6); without DF it is only dropped. Both
// directions.
func TestLBTooBig(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		c := newTOAConn(t, v6, 41000)
		c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: c.sseq, ackn: c.cseq}), 0) // TOA confirmed: nothing grows
		big := make([]byte, 1500)                                                    // + IP and TCP headers: over 1500
		in := c.ack(nil, big)
		if !v6 {
			in = setDF(in)
		}
		c.td.inject(0, in)
		c.td.stepAll()
		if n := len(c.td.outAll(1)); n != 0 {
			t.Fatalf("v6=%v: %d frames to the server", v6, n)
		}
		back := c.td.outAll(0)
		if len(back) != 1 || c.td.sum(CtrDropMTUExceeded) != 1 {
			t.Fatalf("v6=%v: %d frames back, drop_mtu_exceeded %d", v6, len(back), c.td.sum(CtrDropMTUExceeded))
		}
		p := decode(t, back[0])
		quoted := in[14:]
		if v6 {
			ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			m := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
			if !ip.DstIP.Equal(ipOf(c.client.Addr())) || m.TypeCode.Type() != layers.ICMPv6TypePacketTooBig || binary.BigEndian.Uint32(m.Payload) != 1500 {
				t.Fatalf("ICMPv6 %v to %s MTU %d", m.TypeCode, ip.DstIP, binary.BigEndian.Uint32(m.Payload))
			}
			q := m.Payload[4:]
			want := append([]byte(nil), quoted[:len(q)]...)
			if !bytes.Equal(q, want) {
				t.Error("the quote is not the client's packet as it sent it")
			}
			continue
		}
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		m := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if !ip.DstIP.Equal(ipOf(c.client.Addr())) || m.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || m.Seq != 1500 {
			t.Fatalf("ICMP %v to %s MTU %d", m.TypeCode, ip.DstIP, m.Seq)
		}
		q := m.Payload
		wantQ := quoted[:len(q)]
		if !bytes.Equal(q[:20], wantQ[:20]) || !bytes.Equal(q[20:], wantQ[20:]) {
			t.Errorf("the quote is not the client's packet:\n% x\n% x", q[:40], wantQ[:40])
		}
		// without DF: dropped, no error
		c.td.inject(0, c.ack(nil, big))
		c.td.stepAll()
		if n := len(c.td.outAll(0)) + len(c.td.outAll(1)); n != 0 || c.td.sum(CtrDropMTUExceeded) != 2 {
			t.Errorf("without DF: %d frames, drop_mtu_exceeded %d", n, c.td.sum(CtrDropMTUExceeded))
		}
		// the server's side: its too big packet gets the error, quoting L→D
		c.td.inject(1, setDF(c.serverSeg(tcpSeg{ack: true, seq: c.sseq, ackn: c.cseq, payload: big})))
		c.td.stepAll()
		back = c.td.outAll(1)
		if len(back) != 1 {
			t.Fatalf("server side: %d errors", len(back))
		}
		p = decode(t, back[0])
		if ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !ip.DstIP.Equal(ipOf(c.rs.Addr())) {
			t.Errorf("server side error to %s", ip.DstIP)
		}
		inner := gopacket.NewPacket(p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).Payload, layers.LayerTypeIPv4, gopacket.Default)
		if iip, ok := inner.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !ok || !iip.SrcIP.Equal(ipOf(c.rs.Addr())) || !iip.DstIP.Equal(ipOf(c.local.Addr())) {
			t.Errorf("server side quote: %v", inner)
		}
	}
}

// TestLBICMPMTUReduced: a fragmentation-needed from the servers' side
// reaches the client with the MTU less the TOA GVS still adds to its
// segments; once the TOA is confirmed, unchanged.
func TestLBICMPMTUReduced(t *testing.T) {
	c := newTOAConn(t, false, 41100)
	quoted := tcpFrame(t, tcpSeg{src: c.local, dst: c.rs, smac: macDP1, dmac: macRS1, ack: true, seq: c.cseq})[header.EthernetMinSize:]
	mk := func() []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: ipOf(c.rs.Addr()), DstIP: ipOf(lip)}
		return serialize(t, &layers.Ethernet{SrcMAC: macRS1, DstMAC: macDP1, EthernetType: layers.EthernetTypeIPv4}, ip,
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}, gopacket.Payload(quoted[:28]))
	}
	mtuOf := func(f []byte) uint16 {
		p := decode(t, f)
		return p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).Seq
	}
	c.td.inject(1, mk())
	c.td.stepAll()
	out := c.td.outAll(0)
	if len(out) != 1 || mtuOf(out[0]) != 1392 {
		t.Fatalf("before the TOA is confirmed: %d frames, MTU %d, want 1392", len(out), func() uint16 {
			if len(out) == 1 {
				return mtuOf(out[0])
			}
			return 0
		}())
	}
	c.td.one(t, 1, c.serverSeg(tcpSeg{ack: true, seq: c.sseq, ackn: c.cseq}), 0) // confirms
	c.td.inject(1, mk())
	c.td.stepAll()
	if out := c.td.outAll(0); len(out) != 1 || mtuOf(out[0]) != 1400 {
		t.Fatalf("after: %d frames", len(out))
	}
}
