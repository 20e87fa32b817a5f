package integration

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"google.golang.org/protobuf/proto"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// TestLocalPortsPerRealServer is issue 17's measurement: more UDP flows
// (66,000) to two real servers than one local address has ports (64,512)
// all get connections through that one local address, because every real
// server has a port space of its own on it; the port gauges show it.
func TestLocalPortsPerRealServer(t *testing.T) {
	const perService = 33_000 // two services: 66,000 flows, 33,000 per real server
	l := StartLab(t, "--driver", "afxdp", "--workers", "1")
	vip, lip := l.Env["VIP"], l.Env["LIP"]
	for _, port := range []string{"9000", "9001"} {
		l.Ipvsadm("-A", "-u", vip+":"+port, "-s", "rr")
		l.Ipvsadm("-a", "-u", vip+":"+port, "-r", l.Env["RS1_IP"]+":9000", "-b")
		l.Ipvsadm("-a", "-u", vip+":"+port, "-r", l.Env["RS2_IP"]+":9000", "-b")
		l.Ipvsadm("--add-laddr", "-z", lip, "-u", vip+":"+port, "-F", l.Env["LB_RS_PORT"])
	}
	client, dst := netip.MustParseAddr(l.Env["CLIENT_IP"]), netip.MustParseAddr(vip)
	var pkts [][]byte
	for _, vport := range []uint16{9000, 9001} {
		for i := 0; i < perService; i++ {
			ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: client.AsSlice(), DstIP: dst.AsSlice()}
			u := &layers.UDP{SrcPort: layers.UDPPort(1024 + i), DstPort: layers.UDPPort(vport)}
			u.SetNetworkLayerForChecksum(ip)
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, u,
				gopacket.Payload("ports")); err != nil {
				t.Fatal(err)
			}
			pkts = append(pkts, buf.Bytes())
		}
	}
	send := func() { sendIPv4(t, l, dst, pkts) }
	// datagrams dropped on the way are sent again: a flow that has its
	// connection is only forwarded again
	testenv.Eventually(t, 40*time.Second, fmt.Sprintf("%d UDP connections", 2*perService), func() bool {
		if l.udpConns(vip, 9000)+l.udpConns(vip, 9001) >= 2*perService || l.Counters()["drop_lb_no_port"] > 0 {
			return true
		}
		send()
		return false
	})
	if n := l.Counters()["drop_lb_no_port"]; n != 0 {
		t.Fatalf("drop_lb_no_port = %d with %d connections", n, l.udpConns(vip, 9000)+l.udpConns(vip, 9001))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, err := l.api.GetLBUsage(ctx, &pb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	var got *pb.LAddrPorts
	for _, la := range u.GetWorkers()[0].GetLaddrs() {
		if la.Addr == lip {
			got = la
		}
	}
	want := &pb.LAddrPorts{Addr: lip, InUse: 2 * perService, BusiestInUse: perService, BusiestFree: 64512 - perService,
		PortsPerServer: 64512, Servers: 2}
	if !proto.Equal(got, want) {
		t.Errorf("local address usage %v, want %v", got, want)
	}
	if w := u.GetWorkers()[0]; w.Conns < 2*perService {
		t.Errorf("worker 0 table: %d connections", w.Conns)
	}
}
