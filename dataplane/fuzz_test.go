package dataplane

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/header"
)

// fuzzSeed is a frame and the port it arrives on.
type fuzzSeed struct {
	port  uint8
	frame []byte
}

// fuzzSeeds are frames for every path of the pipeline, each whole and cut
// short.
func fuzzSeeds(tb testing.TB) []fuzzSeed {
	vlanIP := netip.MustParseAddr("10.100.0.1")
	vlanPeer := netip.MustParseAddr("10.100.0.2")
	tagged := func(vid uint16, frame []byte) []byte {
		// insert an 802.1Q tag after the MAC addresses
		out := append([]byte(nil), frame[:12]...)
		out = binary.BigEndian.AppendUint16(out, header.EtherTypeVLAN)
		out = binary.BigEndian.AppendUint16(out, vid)
		return append(out, frame[12:]...)
	}
	dad := ndSolicit(tb, macClient, netip.IPv6Unspecified(), lbIP6)
	na := func(smac net.HardwareAddr, src, dst netip.Addr, opts layers.ICMPv6Options) []byte {
		ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipOf(src), DstIP: ipOf(dst)}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
		ic.SetNetworkLayerForChecksum(ip)
		return serialize(tb, &layers.Ethernet{SrcMAC: smac, DstMAC: macDP1, EthernetType: layers.EthernetTypeIPv6}, ip, ic,
			&layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: ipOf(src), Options: opts})
	}
	unreach := func() []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 1, Protocol: layers.IPProtocolICMPv4, SrcIP: ipOf(clientIP), DstIP: ipOf(rs1IP)}
		return serialize(tb, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDP0, EthernetType: layers.EthernetTypeIPv4}, ip,
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, 1)},
			gopacket.Payload(make([]byte, 28)))
	}
	big := make([]byte, 1600)
	frames := []fuzzSeed{
		{0, arpRequest(tb, macClient, clientIP, lbIP)},
		{0, arpRequest(tb, macClient, clientIP, netip.MustParseAddr("10.1.0.77"))},
		{1, serialize(tb,
			&layers.Ethernet{SrcMAC: macRS1, DstMAC: macDP1, EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: layers.ARPReply, SourceHwAddress: macRS1, SourceProtAddress: ipOf(rs1IP),
				DstHwAddress: macDP1, DstProtAddress: net.IPv4(10, 2, 0, 1).To4()})},
		{0, echo4(tb, macClient, macDP0, clientIP, lbIP, 64, []byte("ping"))},
		{0, echo4(tb, macClient, layers.EthernetBroadcast, clientIP, netip.MustParseAddr("10.1.0.255"), 64, nil)},
		{0, udp4(tb, macClient, macDP0, clientIP, rs1IP, 64, []byte("forward"))},
		{1, udp4(tb, macRS1, macDP1, rs1IP, clientIP, 64, []byte("back"))},
		{0, udp4(tb, macClient, macDP0, clientIP, rs1IP, 1, []byte("ttl"))},
		{0, udp4(tb, macClient, macDP0, clientIP, netip.MustParseAddr("192.0.2.1"), 64, nil)},
		{0, udp4(tb, macClient, macDP0, clientIP, rs1IP, 64, big)}, // DF, above the MTU
		{0, ndSolicit(tb, macClient, clientIP6, lbIP6)},
		{0, dad},
		{0, echo6(tb, macClient, macDP0, clientIP6, lbIP6, []byte("ping6"))},
		{0, udp6(tb, macClient, macDP0, clientIP6, rs1IP6, 64, []byte("forward6"))},
		{0, udp6(tb, macClient, macDP0, clientIP6, rs1IP6, 1, nil)},
		{1, udp6(tb, macRS1, macDP1, rs1IP6, clientIP6, 64, big)}, // above the MTU
		{1, na(macRS1, rs1IP6, netip.MustParseAddr("fd00:2::1"),
			layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: macRS1}})},
		{1, na(macRS1, rs1IP6, netip.MustParseAddr("ff02::1"), nil)},
		{0, unreach()},
		{0, tagged(100, arpRequest(tb, macClient, vlanPeer, vlanIP))},
		{0, tagged(100, echo4(tb, macClient, macDP0, vlanPeer, vlanIP, 64, []byte("vlan")))},
		{1, udp4(tb, macRS1, macDP1, rs1IP, vlanPeer, 64, []byte("to-vlan"))},
		{0, tagged(200, echo4(tb, macClient, macDP0, clientIP, lbIP, 64, nil))},
		{0, nil},
	}
	var out []fuzzSeed
	for _, f := range frames {
		out = append(out, f)
		for _, n := range []int{13, 14, 17, 18, 14 + 19, 14 + 39, len(f.frame) / 2, len(f.frame) - 1} {
			if n > 0 && n < len(f.frame) {
				out = append(out, fuzzSeed{f.port, f.frame[:n]})
			}
		}
	}
	return out
}

// frameProblem returns what gopacket finds wrong with a frame: a decoding
// error or a checksum that does not verify; "" if nothing.
func frameProblem(frame []byte) string {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	// gopacket guesses application protocols from port numbers; a payload
	// that is not what the port suggests is no fault of the headers
	if el := p.ErrorLayer(); el != nil && p.TransportLayer() == nil {
		return fmt.Sprintf("decode: %v", el.Error())
	}
	for _, l := range p.Layers() {
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok && p.NetworkLayer() != nil {
			c.SetNetworkLayerForChecksum(p.NetworkLayer())
		}
	}
	err, bad := p.VerifyChecksums()
	if err != nil {
		return err.Error()
	}
	if len(bad) > 0 {
		return fmt.Sprintf("%s checksum %#x, correct %#x", bad[0].Layer.LayerType(), bad[0].Actual, bad[0].Correct)
	}
	return ""
}

// l3Of returns the network header of a frame and its EtherType.
func l3Of(frame []byte) ([]byte, uint16) {
	if len(frame) < header.EthernetMinSize {
		return nil, 0
	}
	et := header.Ethernet(frame).Type()
	if et == header.EtherTypeVLAN {
		if len(frame) < header.EthernetMinSize+header.VLANSize {
			return nil, 0
		}
		return frame[header.EthernetMinSize+header.VLANSize:], binary.BigEndian.Uint16(frame[16:])
	}
	return frame[header.EthernetMinSize:], et
}

// ipPayload returns the payload of a valid IPv4 or IPv6 packet, or nil.
func ipPayload(frame []byte) []byte {
	l3, et := l3Of(frame)
	switch et {
	case header.EtherTypeIPv4:
		if ip := header.IPv4(l3); ip.Validate() == header.Valid {
			return ip.Payload()
		}
	case header.EtherTypeIPv6:
		if ip := header.IPv6(l3); ip.Validate() == header.Valid {
			return ip.Payload()
		}
	}
	return nil
}

// checkTransmitted checks a frame the dataplane sent on port p in answer
// to input: what the dataplane writes itself must be right whatever the
// input, and a frame gopacket reads cleanly must not come out broken.
func checkTransmitted(t *testing.T, p int, input, frame []byte, inputClean bool) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("input % x\nsent on port %d: % x\n%s", input, p, frame, fmt.Sprintf(format, args...))
	}
	if inputClean {
		if s := frameProblem(frame); s != "" {
			fail("gopacket: %s (the input had no such problem)", s)
		}
	}
	l3, et := l3Of(frame)
	if l3 == nil {
		fail("runt")
	}
	if src := header.Ethernet(frame).Src(); src != header.MAC(portMACs[p]) {
		fail("source MAC %s is not the port's", src)
	}
	switch et {
	case header.EtherTypeARP:
		a := header.ARP(l3)
		if !a.IsValid() || a.Op() != header.ARPRequest && a.Op() != header.ARPReply {
			fail("not a valid ARP request or reply")
		}
		if a.SenderMAC() != header.MAC(portMACs[p]) {
			fail("ARP sender %s is not the port's MAC", a.SenderMAC())
		}
	case header.EtherTypeIPv4:
		ip := header.IPv4(l3)
		if v := ip.Validate(); v != header.Valid || int(ip.TotalLen()) != len(l3) {
			fail("IPv4 %v, total length %d in %d bytes", v, ip.TotalLen(), len(l3))
		}
		// ICMP the dataplane wrote (echo replies, errors) has a valid checksum;
		// forwarded ICMP is passed on as it came.
		if m := ip.Payload(); ip.Protocol() == header.ProtoICMP && !ip.IsFragment() && !bytes.Equal(m, ipPayload(input)) {
			if len(m) < header.ICMPv4MinSize || !header.ICMPv4(m).ChecksumValid() {
				fail("ICMP checksum invalid")
			}
		}
	case header.EtherTypeIPv6:
		ip := header.IPv6(l3)
		if v := ip.Validate(); v != header.Valid || header.IPv6MinSize+int(ip.PayloadLen()) != len(l3) {
			fail("IPv6 %v, payload length %d in %d bytes", v, ip.PayloadLen(), len(l3))
		}
		if m := ip.Payload(); ip.NextHeader() == header.ProtoICMPv6 && !bytes.Equal(m, ipPayload(input)) {
			if !header.ICMPv6ChecksumValid(m, ip.Src(), ip.Dst()) {
				fail("ICMPv6 checksum invalid")
			}
		}
	default:
		fail("EtherType %#04x", et)
	}
}

var portMACs = []net.HardwareAddr{macDP0, macDP1}

// FuzzInput feeds arbitrary frames to the worker. Beyond not panicking, it
// checks that every buffer goes back to its pool, that the tx counter
// matches what left, and what the transmitted frames look like
// (checkTransmitted).
func FuzzInput(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.port, s.frame)
	}
	td := newTestDP(f)
	if err := td.d.AddVLAN("dp0.100", "dp0", 100); err != nil {
		f.Fatal(err)
	}
	for _, a := range []string{"10.100.0.1/24", "fd00:100::1/64"} {
		if err := td.d.AddAddr(netip.MustParsePrefix(a), "dp0.100"); err != nil {
			f.Fatal(err)
		}
	}
	// the client side resolved, rs1 not: forwarding both sends and holds
	for _, a := range []netip.Addr{clientIP, clientIP6} {
		if err := td.d.AddNeigh(a, header.MAC(macClient), "dp0"); err != nil {
			f.Fatal(err)
		}
	}
	if err := td.d.AddNeigh(netip.MustParseAddr("10.100.0.2"), header.MAC(macClient), "dp0.100"); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, port uint8, frame []byte) {
		td.t = t
		p := int(port % 2)
		inputClean := len(frame) >= header.EthernetMinSize && frameProblem(frame) == ""
		td.w.ctr.publish()
		txBefore := td.counter(CtrTxPackets)
		td.inject(p, frame)
		td.step()
		outs := [][][]byte{td.out(0), td.out(1)}
		td.w.dropHeld()
		for i, port := range td.ports {
			if pool := port.MemQueue(0).Pool(); pool.Free() != pool.Size() {
				t.Fatalf("port %d: %d of %d buffers free after % x", i, pool.Free(), pool.Size(), frame)
			}
		}
		n := len(outs[0]) + len(outs[1])
		if tx := td.counter(CtrTxPackets) - txBefore; tx != uint64(n) {
			t.Fatalf("tx_packets += %d, %d frames sent", tx, n)
		}
		// one answer (reply, error or forwarded packet) and maybe one probe
		if n > 2 {
			t.Fatalf("%d frames sent for one input", n)
		}
		for op, frames := range outs {
			for _, o := range frames {
				checkTransmitted(t, op, frame, o, inputClean)
			}
		}
		// Forget what this input taught the dataplane, so that inputs stay
		// independent.
		for _, nb := range td.d.Neighbours() {
			if nb.State != NeighStatic {
				td.d.DelNeigh(nb.Addr)
			}
		}
	})
}
