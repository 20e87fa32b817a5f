package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// udpConns returns ActiveConn + InActConn of the UDP service vip:port.
func (l *Lab) udpConns(vip string, port uint32) int {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := l.api.ListServices(ctx, &pb.ListServicesRequest{})
	if err != nil {
		l.t.Fatal(err)
	}
	n := 0
	for _, s := range r.GetServices() {
		if k := s.GetKey(); k.GetProto() == "UDP" && k.GetAddr() == vip && k.GetPort() == port {
			for _, d := range s.GetDests() {
				n += int(d.GetActive() + d.GetInactive())
			}
		}
	}
	return n
}

// TestListManyUDPConns is issue 11's case: 60,000 UDP connections through
// a FullNAT service (a listing of them is larger than gRPC's 4 MiB message
// limit, which used to make `ipvsadm -L -n -c` fail with "received message
// larger than max"). The listing streams: it succeeds and shows every
// connection once.
func TestListManyUDPConns(t *testing.T) {
	const n = 60_000
	l := fullNATLab(t)
	vip := l.Env["VIP"]
	l.Ipvsadm("-A", "-u", vip+":9000", "-s", "rr")
	l.Ipvsadm("-a", "-u", vip+":9000", "-r", l.Env["RS1_IP"]+":9000", "-b")
	l.Ipvsadm("-a", "-u", vip+":9000", "-r", l.Env["RS2_IP"]+":9000", "-b")
	l.Ipvsadm("--add-laddr", "-z", l.Env["LIP"], "-u", vip+":9000", "-F", l.Env["LB_RS_PORT"])

	// one datagram per client port 1024…61023, built here and sent through
	// the client namespace's routing (a raw IP socket)
	client, dst := netip.MustParseAddr(l.Env["CLIENT_IP"]), netip.MustParseAddr(vip)
	pkts := make([][]byte, n)
	for i := range pkts {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: client.AsSlice(), DstIP: dst.AsSlice()}
		u := &layers.UDP{SrcPort: layers.UDPPort(1024 + i), DstPort: 9000}
		u.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, u,
			gopacket.Payload("listing")); err != nil {
			t.Fatal(err)
		}
		pkts[i] = buf.Bytes()
	}
	send := func() { sendIPv4(t, l, dst, pkts) }
	// datagrams the dataplane's rings dropped are sent again: resending a
	// flow that has its connection only forwards it again
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%d UDP connections", n), func() bool {
		if l.udpConns(vip, 9000) >= n {
			return true
		}
		send()
		return false
	})

	start := time.Now()
	cmd := exec.Command(filepath.Join(l.root, "bin", "ipvsadm"), "-L", "-n", "-c")
	cmd.Env = append(cmd.Environ(), "GVS_DATAPLANE_SOCKET="+l.Env["DP_SOCKET"])
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("ipvsadm -L -n -c: %v: %s", err, stderr.String())
	}
	if len(out) <= 4<<20 {
		t.Errorf("the listing is %d bytes: not more than the 4 MiB the old single message could carry", len(out))
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if lines[0] != "IPVS connection entries" || !strings.HasPrefix(lines[1], "pro expire state") {
		t.Fatalf("header %q", lines[:2])
	}
	seen, wrong := make([]int, n), 0
	for _, ln := range lines[2:] {
		f := strings.Fields(ln)
		if len(f) != 7 || f[0] != "UDP" || f[4] != vip+":9000" {
			continue // another service's connection
		}
		ap, err := netip.ParseAddrPort(f[3])
		if p := int(ap.Port()) - 1024; err == nil && ap.Addr() == client && p >= 0 && p < n {
			seen[p]++
		} else if wrong++; wrong <= 5 {
			t.Errorf("line %q: not one of the test's clients", ln)
		}
	}
	for p, c := range seen {
		if c != 1 {
			if wrong++; wrong <= 5 {
				t.Errorf("client port %d listed %d times", 1024+p, c)
			}
		}
	}
	t.Logf("ipvsadm -L -n -c: %d lines, %d bytes in %v", len(lines), len(out), took.Round(time.Millisecond))
}
