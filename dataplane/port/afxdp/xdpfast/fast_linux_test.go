//go:build linux

package xdpfast

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
)

// TestFastHit: a packet of an offloaded connection, in either direction,
// IPv4 and IPv6, TCP and UDP, leaves the program redirected, rewritten
// byte for byte as nat.RewriteAt rewrites it (plus TTL and MACs), with
// checksums gopacket verifies; the entry counts it and stamps its time.
func TestFastHit(t *testing.T) {
	payload := []byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n")
	for _, fam := range []struct {
		name string
		k    fnatConn
	}{{"ipv4", conn4}, {"ipv6", conn6}} {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			for _, dir := range []string{"in", "out"} {
				for _, noCk := range []bool{false, true} {
					if noCk && proto != header.ProtoUDP {
						continue
					}
					name := fam.name + "/" + map[uint8]string{6: "tcp", 17: "udp"}[proto] + "/" + dir
					if noCk {
						name += "/no-udp-checksum"
					}
					t.Run(name, func(t *testing.T) {
						f := loadTest(t, Options{MaxConns: 16})
						offload(t, f, proto, fam.k, 1500)
						ep, to, src, dst := fam.k.clientSent(), fam.k.toServer(), egressPort, serverHop
						if dir == "out" {
							ep, to, src, dst = fam.k.serverSent(), fam.k.toClient(), portMAC, clientHop
						}
						in := frame{ep: ep, proto: proto, flags: header.TCPFlagACK | header.TCPFlagPSH, payload: payload, noUDPCk: noCk}.build(t)
						before := Now()
						ret, out := run(t, f, in)
						after := Now()
						if ret != xdpRedirect {
							t.Fatalf("action %d, want XDP_REDIRECT (%d); verdicts %v", ret, xdpRedirect, verdicts(t, f))
						}
						want := expectFast(t, in, to, src, dst)
						if !bytes.Equal(out, want) {
							t.Fatalf("frame\n got  %x\n want %x", out, want)
						}
						p := decodeVerified(t, out)
						eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
						if !bytes.Equal(eth.SrcMAC, src[:]) || !bytes.Equal(eth.DstMAC, dst[:]) {
							t.Errorf("MACs %v -> %v, want %x -> %x", eth.SrcMAC, eth.DstMAC, src, dst)
						}
						var ipLen int
						switch n := p.NetworkLayer().(type) {
						case *layers.IPv4:
							ipLen = int(n.Length)
							if !n.SrcIP.Equal(ip(to.Src)) || !n.DstIP.Equal(ip(to.Dst)) || n.TTL != 63 {
								t.Errorf("IPv4 %v -> %v TTL %d, want %v -> %v TTL 63", n.SrcIP, n.DstIP, n.TTL, to.Src, to.Dst)
							}
						case *layers.IPv6:
							ipLen = 40 + int(n.Length)
							if !n.SrcIP.Equal(ip(to.Src)) || !n.DstIP.Equal(ip(to.Dst)) || n.HopLimit != 63 || n.FlowLabel != 0x12345 {
								t.Errorf("IPv6 %v -> %v hop limit %d, want %v -> %v hop limit 63", n.SrcIP, n.DstIP, n.HopLimit, to.Src, to.Dst)
							}
						}
						switch l := p.TransportLayer().(type) {
						case *layers.TCP:
							if uint16(l.SrcPort) != to.SrcPort || uint16(l.DstPort) != to.DstPort || l.Seq != 1000 || l.Ack != 2000 || !bytes.Equal(l.Payload, payload) {
								t.Errorf("TCP %d -> %d seq %d ack %d, want %d -> %d", l.SrcPort, l.DstPort, l.Seq, l.Ack, to.SrcPort, to.DstPort)
							}
						case *layers.UDP:
							if uint16(l.SrcPort) != to.SrcPort || uint16(l.DstPort) != to.DstPort || !bytes.Equal(l.Payload, payload) {
								t.Errorf("UDP %d -> %d, want %d -> %d", l.SrcPort, l.DstPort, to.SrcPort, to.DstPort)
							}
							if noCk && l.Checksum != 0 {
								t.Errorf("UDP checksum %#04x, want 0 (none) kept", l.Checksum)
							}
						}
						e, err := f.Lookup(keyOf(proto, ep))
						if err != nil {
							t.Fatal(err)
						}
						if e.Packets != 1 || e.Bytes != uint64(ipLen) || e.LastSeen < before || e.LastSeen > after {
							t.Errorf("entry packets %d bytes %d last seen %v, want 1, %d, within [%v, %v]", e.Packets, e.Bytes, e.LastSeen, ipLen, before, after)
						}
						v := verdicts(t, f)
						if v[VerdictFast] != 1 || sum(v) != 1 {
							t.Errorf("verdicts %v, want one xdp_fast", v)
						}
						// the other direction's entry is untouched
						odd := fam.k.serverSent()
						if dir == "out" {
							odd = fam.k.clientSent()
						}
						if o, err := f.Lookup(keyOf(proto, odd)); err != nil || o.Packets != 0 || o.LastSeen != 0 {
							t.Errorf("other direction: %+v %v, want no packets", o, err)
						}
					})
				}
			}
		}
	}
}

func sum(v Verdicts) (n uint64) {
	for _, c := range v {
		n += c
	}
	return n
}

// TestFastSlowPath: frames the workers must see, and frames without an
// entry, leave the program unchanged with the action of the program
// without the fast path, counted by reason; entries count nothing for them.
func TestFastSlowPath(t *testing.T) {
	k4, k6 := conn4, conn6
	big := make([]byte, 1400)
	cases := []struct {
		name  string
		fr    frame
		proto uint8 // of the offloaded connection
		want  Verdict
		setup func(t *testing.T, f *Fast)
	}{
		{"miss ipv4 tcp", frame{ep: nat.Endpoints{Src: k4.c, Dst: k4.v, SrcPort: cport + 1, DstPort: vport}, proto: header.ProtoTCP, flags: header.TCPFlagACK}, header.ProtoTCP, VerdictMiss, nil},
		{"miss ipv6 udp", frame{ep: nat.Endpoints{Src: k6.c, Dst: k6.v, SrcPort: cport, DstPort: vport + 1}, proto: header.ProtoUDP}, header.ProtoUDP, VerdictMiss, nil},
		{"miss other protocol", frame{ep: k4.clientSent(), proto: header.ProtoUDP}, header.ProtoTCP, VerdictMiss, nil},
		{"syn ipv4", frame{ep: k4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagSYN}, header.ProtoTCP, VerdictTCPCtl, nil},
		{"fin ipv6", frame{ep: k6.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagFIN | header.TCPFlagACK}, header.ProtoTCP, VerdictTCPCtl, nil},
		{"rst ipv4 out", frame{ep: k4.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagRST}, header.ProtoTCP, VerdictTCPCtl, nil},
		{"ipv4 first fragment", frame{ep: k4.clientSent(), proto: header.ProtoUDP, fragOff: 0x2000, payload: big[:64]}, header.ProtoUDP, VerdictFrag, nil},
		{"ipv4 later fragment", frame{ep: k4.clientSent(), proto: header.ProtoUDP, fragOff: 0x0010, payload: big[:64]}, header.ProtoUDP, VerdictFrag, nil},
		{"ipv6 fragment header", frame{ep: k6.clientSent(), proto: header.ProtoUDP, v6Frag: true, payload: big[:64]}, header.ProtoUDP, VerdictFrag, nil},
		{"ipv4 options", frame{ep: k4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, ipOpts: true}, header.ProtoTCP, VerdictIPOpts, nil},
		{"ipv6 hop-by-hop", frame{ep: k6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, hopByHop: true}, header.ProtoTCP, VerdictIPOpts, nil},
		{"ipv4 ttl 1", frame{ep: k4.clientSent(), proto: header.ProtoUDP, ttl: 1}, header.ProtoUDP, VerdictTTL, nil},
		{"ipv6 hop limit 1", frame{ep: k6.serverSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, ttl: 1}, header.ProtoTCP, VerdictTTL, nil},
		{"ipv4 over mtu", frame{ep: k4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, payload: big}, header.ProtoTCP, VerdictMTU, nil},
		{"ipv6 over mtu", frame{ep: k6.serverSent(), proto: header.ProtoUDP, payload: big}, header.ProtoUDP, VerdictMTU, nil},
		{"vlan tagged", frame{ep: k4.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK, vlan: true}, header.ProtoTCP, VerdictOther, nil},
		{"broadcast", frame{ep: k4.clientSent(), proto: header.ProtoUDP, dstMAC: layers.EthernetBroadcast}, header.ProtoUDP, VerdictOther, nil},
		{"slow entry", frame{ep: k4.clientSent(), proto: header.ProtoUDP}, header.ProtoUDP, VerdictSlow, func(t *testing.T, f *Fast) {
			e, err := f.Lookup(keyOf(header.ProtoUDP, k4.clientSent()))
			if err != nil {
				t.Fatal(err)
			}
			e.Slow = true
			if err := f.Add(keyOf(header.ProtoUDP, k4.clientSent()), e.Rewrite); err != nil {
				t.Fatal(err)
			}
		}},
		{"egress not added", frame{ep: k6.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK}, header.ProtoTCP, VerdictNoEgress, func(t *testing.T, f *Fast) {
			if err := f.DeleteEgress(loIfindex); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := loadTest(t, Options{MaxConns: 16})
			// entries sized for 1400-byte packets to fail the MTU test
			offload(t, f, c.proto, conn4, 1000)
			offload(t, f, c.proto, conn6, 1000)
			if c.setup != nil {
				c.setup(t, f)
			}
			in := c.fr.build(t)
			ret, out := run(t, f, in)
			if ret != xdpPass {
				t.Fatalf("action %d, want the AF_XDP socket's fallback XDP_PASS (%d)", ret, xdpPass)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("frame changed\n got  %x\n want %x", out, in)
			}
			v := verdicts(t, f)
			if v[c.want] != 1 || sum(v) != 1 {
				t.Fatalf("verdicts %v, want one %s", v, c.want)
			}
			for _, k := range []fnatConn{conn4, conn6} {
				for _, ep := range []nat.Endpoints{k.clientSent(), k.serverSent()} {
					if e, err := f.Lookup(keyOf(c.proto, ep)); err != nil || e.Packets != 0 || e.LastSeen != 0 {
						t.Errorf("entry %v: %+v %v, want no packets", ep, e, err)
					}
				}
			}
		})
	}
}

// TestFastShort: frames cut anywhere in their headers go to the workers
// unchanged (xdp_short, or xdp_other for a cut that removes the IP type).
func TestFastShort(t *testing.T) {
	f := loadTest(t, Options{MaxConns: 16})
	offload(t, f, header.ProtoTCP, conn4, 1500)
	offload(t, f, header.ProtoTCP, conn6, 1500)
	for _, k := range []fnatConn{conn4, conn6} {
		full := frame{ep: k.clientSent(), proto: header.ProtoTCP, flags: header.TCPFlagACK}.build(t)
		hdrs := 14 + 20 + 20
		if k.c.Is6() {
			hdrs = 14 + 40 + 20
		}
		for n := 14; n < hdrs; n++ {
			ret, out := run(t, f, full[:n])
			if ret != xdpPass || !bytes.Equal(out, full[:n]) {
				t.Fatalf("%v cut to %d bytes: action %d, changed %v", k.c, n, ret, !bytes.Equal(out, full[:n]))
			}
		}
	}
	v := verdicts(t, f)
	if v[VerdictFast] != 0 || v[VerdictShort] == 0 || v[VerdictShort]+v[VerdictOther] != sum(v) {
		t.Fatalf("verdicts %v, want only xdp_short (and xdp_other)", v)
	}
}

// TestFastChecksumsRandom: random addresses, ports, payloads and starting
// checksums (including the 0x0000/0xffff corners a one's-complement update
// can meet) give the bytes nat.RewriteAt gives.
func TestFastChecksumsRandom(t *testing.T) {
	f := loadTest(t, Options{MaxConns: 16})
	rng := rand.New(rand.NewPCG(14, 1))
	addr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
	}
	for i := range 300 {
		v6 := i%2 == 1
		proto := uint8(header.ProtoTCP)
		if i%4 >= 2 {
			proto = header.ProtoUDP
		}
		ep := nat.Endpoints{Src: addr(v6), Dst: addr(v6), SrcPort: uint16(rng.Uint32()), DstPort: uint16(rng.Uint32())}
		to := nat.Endpoints{Src: addr(v6), Dst: addr(v6), SrcPort: uint16(rng.Uint32()), DstPort: uint16(rng.Uint32())}
		payload := make([]byte, rng.IntN(64))
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		in := frame{ep: ep, proto: proto, flags: header.TCPFlagACK, payload: payload, ttl: uint8(2 + rng.IntN(254))}.build(t)
		if i%16 == 15 { // tweak the payload so the transport checksum becomes 0xffff or 0x0000
			setTransportChecksum(in, 0xffff)
		}
		k := keyOf(proto, ep)
		if err := f.Add(k, Rewrite{Src: to.Src, Dst: to.Dst, SrcPort: to.SrcPort, DstPort: to.DstPort,
			SrcMAC: egressPort, DstMAC: serverHop, Ifindex: loIfindex, MTU: 9000}); err != nil {
			t.Fatal(err)
		}
		ret, out := run(t, f, in)
		if ret != xdpRedirect {
			t.Fatalf("%d: action %d", i, ret)
		}
		if want := expectFast(t, in, to, egressPort, serverHop); !bytes.Equal(out, want) {
			t.Fatalf("%d %v -> %v:\n got  %x\n want %x", i, ep, to, out, want)
		}
		decodeVerified(t, out)
		if err := f.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
}

// setTransportChecksum changes the last two bytes of an unpadded TCP/UDP
// payload so that the transport checksum field becomes ck, keeping it
// valid: the field and the data move by the same one's-complement amount.
func setTransportChecksum(frame []byte, ck uint16) {
	l3 := frame[14:]
	var l4 []byte
	var off int
	if l3[0]>>4 == 4 {
		l4 = l3[20:header.IPv4(l3).TotalLen()]
	} else {
		l4 = l3[40 : 40+header.IPv6(l3).PayloadLen()]
	}
	if l3[0]>>4 == 4 && l3[9] == header.ProtoUDP || l3[0]>>4 == 6 && l3[6] == header.ProtoUDP {
		off = 6
	} else {
		off = 16
	}
	hl := 8
	if off == 16 {
		hl = int(l4[12]>>4) * 4
	}
	if len(l4)-hl < 2 || (len(l4)-hl)%2 != 0 {
		return
	}
	old := uint16(l4[off])<<8 | uint16(l4[off+1])
	w := len(l4) - 2
	data := uint16(l4[w])<<8 | uint16(l4[w+1])
	// checksum = ~sum; to move it from old to ck, the sum moves by old-ck
	s := uint32(data) + uint32(old) + uint32(^ck)
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	l4[w], l4[w+1] = byte(s>>8), byte(s)
	l4[off], l4[off+1] = byte(ck>>8), byte(ck)
}

// TestAdd: entries are validated with errors that say what is wrong; a
// full map and a missing entry have sentinel errors.
func TestAdd(t *testing.T) {
	f := loadTest(t, Options{MaxConns: 2})
	k := keyOf(header.ProtoTCP, conn4.clientSent())
	ok := Rewrite{Src: conn4.l, Dst: conn4.d, SrcPort: lport, DstPort: dport, Ifindex: loIfindex, MTU: 1500}
	for _, c := range []struct {
		name string
		k    Key
		r    func(r *Rewrite)
	}{
		{"icmp", Key{Proto: 1, Src: conn4.c, Dst: conn4.v}, func(*Rewrite) {}},
		{"mixed key", Key{Proto: header.ProtoTCP, Src: conn4.c, Dst: conn6.v}, func(*Rewrite) {}},
		{"nat64", k, func(r *Rewrite) { r.Src, r.Dst = conn6.l, conn6.d }},
		{"no ifindex", k, func(r *Rewrite) { r.Ifindex = 0 }},
		{"mtu", k, func(r *Rewrite) { r.MTU = 40 }},
	} {
		r := ok
		c.r(&r)
		if err := f.Add(c.k, r); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if _, err := f.Lookup(k); !errors.Is(err, ErrNotExist) {
		t.Fatalf("lookup of a refused entry: %v, want ErrNotExist", err)
	}
	// IPv4-mapped addresses are the IPv4 connection's
	mapped := k
	mapped.Src, mapped.Dst = netip.AddrFrom16(conn4.c.As16()), netip.AddrFrom16(conn4.v.As16())
	if err := f.Add(mapped, ok); err != nil {
		t.Fatal(err)
	}
	e, err := f.Lookup(k)
	if err != nil || e.Rewrite != ok {
		t.Fatalf("lookup: %+v %v, want %+v", e.Rewrite, err, ok)
	}
	if err := f.Add(keyOf(header.ProtoTCP, conn4.serverSent()), ok); err != nil {
		t.Fatal(err)
	}
	if err := f.Add(keyOf(header.ProtoUDP, conn4.serverSent()), ok); !errors.Is(err, ErrFull) {
		t.Fatalf("third entry in a map of two: %v, want ErrFull", err)
	}
	if n, err := f.Len(); err != nil || n != 2 {
		t.Fatalf("Len %d %v, want 2", n, err)
	}
	if err := f.Delete(k); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete(k); !errors.Is(err, ErrNotExist) {
		t.Fatalf("second delete: %v, want ErrNotExist", err)
	}
}
