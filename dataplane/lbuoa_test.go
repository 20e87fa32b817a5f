package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

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
