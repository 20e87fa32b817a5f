//go:build linux

package afxdp

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/afxdp/xdpfast"
	"github.com/gvs-lb/gvs/header"
	"github.com/gvs-lb/gvs/nat"
)

// TestOffload: a port opened with XDPOffload on attaches the XDP fast
// path in each mode veth supports. Frames of an offloaded connection come
// back out of the port to the peer rewritten (addresses, ports, TTL, MACs,
// valid checksums) without reaching the AF_XDP socket, and the entry
// counts them; frames of other flows still reach the socket unchanged.
func TestOffload(t *testing.T) {
	for _, mode := range []string{"generic", "native"} {
		t.Run(mode, func(t *testing.T) {
			l := newLab(t, 1)
			if mode == "native" {
				// a veth takes frames redirected to it in native mode only
				// when its peer runs NAPI: GRO on, or an XDP program
				run(t, "ip", "netns", "exec", l.ns, "ethtool", "-K", labPeer, "gro", "on")
			}
			p := l.open(t, port.Config{Name: "dp0", Device: labDev, XDPMode: mode, ZeroCopy: "off", XDPOffload: "on", XDPOffloadEntries: 64})
			if on, why := p.Offload(); !on || p.Fast() == nil || p.AttachMode() != mode {
				t.Fatalf("offload %v (%s), attach mode %s", on, why, p.AttachMode())
			}
			q := p.XSKQueue(0)
			peer := l.packet(t, labPeer)
			client := netip.MustParseAddr("198.18.0.1")
			vip := netip.MustParseAddr("198.18.0.2")
			to := nat.Endpoints{Src: netip.MustParseAddr("10.0.0.5"), Dst: netip.MustParseAddr("10.0.1.20"), SrcPort: 1029, DstPort: 8080}
			const sport = 3000
			r := xdpfast.Rewrite{Src: to.Src, Dst: to.Dst, SrcPort: to.SrcPort, DstPort: to.DstPort,
				SrcMAC: [6]byte(p.MAC()), DstMAC: [6]byte(peer.mac), Ifindex: p.Ifindex(), MTU: p.MTU()}
			key := xdpfast.Key{Proto: header.ProtoUDP, Src: client, Dst: vip, SrcPort: sport, DstPort: 9}
			if err := p.Fast().Add(key, r); err != nil {
				t.Fatal(err)
			}

			// offloaded: back to the peer rewritten
			marker := []byte("gvsxdp-fast-" + mode)
			const n = 32
			var want [][]byte
			for i := range n {
				f := udpFrame(t, peer.mac, p.MAC(), sport, marker, i, 10+i*22)
				peer.send(t, f)
				want = append(want, rewritten(t, f, to, p.MAC(), peer.mac))
			}
			got := peer.recv(t, marker, n, nil)
			if len(got) != n {
				t.Fatalf("peer received %d of %d offloaded frames", len(got), n)
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("frame %d:\n got  %x\n want %x", i, got[i], want[i])
				}
				pkt := gopacket.NewPacket(got[i], layers.LayerTypeEthernet, gopacket.Default)
				ip4 := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
				_ = udp.SetNetworkLayerForChecksum(ip4)
				if err, bad := pkt.VerifyChecksums(); err != nil || len(bad) != 0 {
					t.Fatalf("frame %d checksums: %v %v", i, err, bad)
				}
				if !ip4.SrcIP.Equal(to.Src.AsSlice()) || !ip4.DstIP.Equal(to.Dst.AsSlice()) || ip4.TTL != 63 ||
					uint16(udp.SrcPort) != to.SrcPort || uint16(udp.DstPort) != to.DstPort {
					t.Fatalf("frame %d: %v:%d -> %v:%d TTL %d", i, ip4.SrcIP, udp.SrcPort, ip4.DstIP, udp.DstPort, ip4.TTL)
				}
			}
			e, err := p.Fast().Lookup(key)
			if err != nil || e.Packets != n {
				t.Fatalf("entry: %+v %v, want %d packets", e, err, n)
			}

			// not offloaded: to the AF_XDP socket, as without the fast path
			marker = []byte("gvsxdp-slow-" + mode)
			var sent [][]byte
			for i := range n {
				f := udpFrame(t, peer.mac, p.MAC(), sport+1, marker, i, 10)
				sent = append(sent, f)
				peer.send(t, f)
			}
			res := rxUntil(t, []*Queue{q}, marker, n)
			if len(res.frames) != n {
				t.Fatalf("socket received %d of %d frames without an entry", len(res.frames), n)
			}
			for i := range sent {
				if !bytes.Equal(res.frames[i], sent[i]) {
					t.Fatalf("frame %d changed on the way to the socket", i)
				}
			}
			v, err := p.Fast().Verdicts()
			if err != nil || v[xdpfast.VerdictFast] != n || v[xdpfast.VerdictMiss] < n {
				t.Fatalf("verdicts %v %v: want %d xdp_fast, at least %d xdp_miss", v, err, n, n)
			}
			// and as dpip -s link show lists them
			xs := xstats(t, p)
			if xs["gvs_xdp_fast"] != n || xs["gvs_xdp_miss"] < n || xs["gvs_xdp_armed"] != 0 || len(xs) != 6+xdpfast.NumVerdicts {
				t.Fatalf("XStats %v: want gvs_xdp_fast %d, gvs_xdp_miss at least %d, the 6 socket counters and every verdict", xs, n, n)
			}
		})
	}
}

// TestOffloadSwitch: off keeps the plain program and says so; a bad word
// is refused.
func TestOffloadSwitch(t *testing.T) {
	l := newLab(t, 1)
	p := l.open(t, port.Config{Name: "dp0", Device: labDev, ZeroCopy: "off"})
	if on, why := p.Offload(); on || p.Fast() != nil || why != "off in the configuration (ipvs.xdp_offload)" {
		t.Fatalf("offload %v (%q)", on, why)
	}
	if _, err := Open(port.Config{Name: "dp1", Device: labPeer, ZeroCopy: "off", XDPOffload: "yes"}); err == nil {
		t.Fatal("XDPOffload yes accepted")
	}
}

// rewritten is frame as the fast path sends it: nat.RewriteAt's rewrite,
// TTL minus one, the given MACs.
func rewritten(t testing.TB, frame []byte, to nat.Endpoints, src, dst []byte) []byte {
	t.Helper()
	out := bytes.Clone(frame)
	ip := header.IPv4(out[14:])
	ip = ip[:ip.TotalLen()]
	if err := nat.RewriteAt(ip, header.LocateIPv4(ip), &to); err != nil {
		t.Fatal(err)
	}
	ip.DecTTL()
	copy(out, dst)
	copy(out[6:], src)
	return out
}
