package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/internal/nsutil"
	"github.com/gvs-lb/gvs/internal/testenv"
)

// The aggressive client of the limit tests: an address of its own on the
// client's link, so the client's kernel answers for it (it resets the
// handshakes the real servers answer).
const aggressor = "10.1.0.5"

// synFrames are n SYNs from src to the VIP's port, one source port each:
// sent round robin, every one the dataplane refuses comes back as a new
// connection attempt, every one it admits has a connection afterwards
// (its repetitions are not new).
func synFrames(t *testing.T, l *Lab, src string, port uint16, n int) [][]byte {
	t.Helper()
	clientMAC, err := nsutil.InterfaceMAC(l.Env["CLIENT_NS"], l.Env["CLIENT_IF"])
	if err != nil {
		t.Fatal(err)
	}
	portMAC, _ := net.ParseMAC(l.Link(l.Env["LB_CLIENT_PORT"]).Mac)
	s, vip := netip.MustParseAddr(src), netip.MustParseAddr(l.Env["VIP"])
	var frames [][]byte
	for i := range n {
		eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: portMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s.AsSlice(), DstIP: vip.AsSlice()}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(20000 + i), DstPort: layers.TCPPort(port), SYN: true, Seq: uint32(i) * 7919, Window: 65535}
		tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, buf.Bytes())
	}
	return frames
}

// floodUntil sends frames round robin from the client's link until done
// reports true (checked between the actions' steps), running during() in
// the meantime; it returns when the sender has stopped.
func floodUntil(t *testing.T, l *Lab, frames [][]byte, during func(), done func() bool) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := onClientLink(l, func(fd int, sa unix.Sockaddr) error {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return nil
				default:
				}
				unix.Sendto(fd, frames[i%len(frames)], 0, sa) // ENOBUFS: the next one
			}
		})
		if err != nil {
			t.Errorf("flood: %v", err)
		}
	}()
	defer wg.Wait()
	defer close(stop)
	if during != nil {
		during()
	}
	testenv.Eventually(t, 30*time.Second, "the flood's refusals", done)
}

// admission returns the refusal counters of TCP VIP:port.
func (l *Lab) admission(t *testing.T, port uint32) *pb.AdmissionStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := l.api.ListServices(ctx, &pb.ListServicesRequest{Key: &pb.ServiceKey{Proto: "TCP", Addr: l.Env["VIP"], Port: port}})
	if err != nil || len(r.Services) != 1 {
		t.Fatalf("service TCP %s:%d: %v", l.Env["VIP"], port, err)
	}
	if a := r.Services[0].Admission; a != nil {
		return a
	}
	return &pb.AdmissionStats{}
}

// settled waits until the service's count of a reason has grown by as
// much as the workers' drop counter (both are bumped by the same packet;
// they are read one after the other).
func (l *Lab) settled(t *testing.T, what string, svc func(*pb.AdmissionStats) uint64, svcBefore *pb.AdmissionStats,
	counter string, before map[string]uint64) uint64 {
	t.Helper()
	var n uint64
	testenv.Eventually(t, 10*time.Second, what+" counted for the service as for the workers", func() bool {
		n = svc(l.admission(t, 80)) - svc(svcBefore)
		return n == l.Counters()[counter]-before[counter]
	})
	return n
}

// perSourceUnderFlood floods the VIP from the aggressor while the client
// makes five requests (each must succeed: curlFrom fails the test
// otherwise), then checks that the aggressor got no more new connections
// than the limit allows in the windows the flood spanned.
func perSourceUnderFlood(t *testing.T, l *Lab, limit int) {
	client := l.Env["CLIENT_IP"]
	l.MustNS(l.Env["CLIENT_NS"], "ip", "addr", "add", aggressor+"/24", "dev", l.Env["CLIENT_IF"])
	l.curlFrom(client) // the client's neighbour entries, before the counting starts
	frames := synFrames(t, l, aggressor, 80, 4096)
	before, svcBefore := l.Counters(), l.admission(t, 80)
	start := time.Now()
	const requests = 5
	floodUntil(t, l, frames, func() {
		testenv.Eventually(t, 10*time.Second, "the flood refused", func() bool {
			return l.Counters()["drop_lb_source_limited"]-before["drop_lb_source_limited"] > 500
		})
		for range requests {
			l.curlFrom(client)
		}
	}, func() bool {
		// over two seconds: the flood spans several windows
		return time.Since(start) > 2*time.Second && l.Counters()["drop_lb_source_limited"]-before["drop_lb_source_limited"] > 5000
	})
	refused := l.settled(t, "source_limited", (*pb.AdmissionStats).GetSourceLimited, svcBefore, "drop_lb_source_limited", before)
	after := l.Counters()
	elapsed := time.Since(start)
	accepted := after["lb_new_conns"] - before["lb_new_conns"] - requests
	// each one-second window admits limit new connections per source (an
	// even share per worker), and the flood spanned at most this many
	windows := uint64(elapsed/time.Second) + 2
	t.Logf("aggressor: %d new connections admitted, %d refused in %s (limit %d/s); the client's %d requests all answered",
		accepted, refused, elapsed.Round(time.Millisecond), limit, requests)
	if accepted == 0 || accepted > uint64(limit)*windows {
		t.Errorf("the aggressor got %d new connections in %s: want 1 to %d (%d per second, %d windows)", accepted, elapsed, uint64(limit)*windows, limit, windows)
	}
	if a := l.admission(t, 80); a.GetRateLimited() != svcBefore.GetRateLimited() || a.GetDenied() != svcBefore.GetDenied() {
		t.Errorf("other refusals moved: %+v", a)
	}
}

// TestPerSourceLimitLab: ipvsadm --per-source-limit 20 caps one client
// flooding SYNs from its address (drop_lb_source_limited and the service's
// own count move together; the admitted connections stay within 20 per
// one-second window) while another client's requests all succeed.
func TestPerSourceLimitLab(t *testing.T) {
	l := fullNATLab(t)
	l.Ipvsadm("-E", "-t", l.Env["VIP"]+":80", "-s", "wrr", "--per-source-limit", "20")
	if out := l.Ipvsadm("-L", "-n", "-t", l.Env["VIP"]+":80"); !strings.Contains(out, "per-source-limit 20") {
		t.Fatalf("ipvsadm -L:\n%s", out)
	}
	perSourceUnderFlood(t, l, 20)
}

// TestConnRateLimitLab: ipvsadm --conn-rate-limit 50 caps the service's
// new connections under a SYN flood of over three seconds: the admitted
// count stays within one second's share at the start plus 50 per second
// of the flood, and above half the limit's rate, drop_lb_rate_limited and the service's own count move together,
// and ipvsadm -L --drops lists that count.
func TestConnRateLimitLab(t *testing.T) {
	l := fullNATLab(t)
	vip := l.Env["VIP"]
	const limit = 50
	l.Ipvsadm("-E", "-t", vip+":80", "-s", "wrr", "--conn-rate-limit", fmt.Sprint(limit))
	l.MustNS(l.Env["CLIENT_NS"], "ip", "addr", "add", aggressor+"/24", "dev", l.Env["CLIENT_IF"])
	frames := synFrames(t, l, aggressor, 80, 4096)
	before, svcBefore := l.Counters(), l.admission(t, 80)
	start := time.Now()
	floodUntil(t, l, frames, nil, func() bool {
		// over three seconds: the admitted count is then mostly the refill
		return time.Since(start) > 3*time.Second && l.Counters()["drop_lb_rate_limited"]-before["drop_lb_rate_limited"] > 20000
	})
	refused := l.settled(t, "rate_limited", (*pb.AdmissionStats).GetRateLimited, svcBefore, "drop_lb_rate_limited", before)
	after := l.Counters()
	elapsed := time.Since(start)
	accepted := after["lb_new_conns"] - before["lb_new_conns"]
	secs := elapsed.Seconds()
	t.Logf("%d new connections admitted, %d refused in %.2f s: %.1f/s against a limit of %d/s", accepted, refused, secs, float64(accepted)/secs, limit)
	// the buckets start full (one second's share) and refill at the limit;
	// +2: a token of rounding per worker
	if max := uint64(limit*(1+secs)) + 2; accepted > max {
		t.Errorf("%d new connections admitted in %.2f s, at most %d allowed", accepted, secs, max)
	}
	if min := uint64(limit * secs / 2); accepted < min {
		t.Errorf("%d new connections admitted in %.2f s under a flood: the limit of %d/s should admit at least %d", accepted, secs, limit, min)
	}
	out := l.Ipvsadm("-L", "-n", "--drops", "--exact")
	want := fmt.Sprintf("%-33s%9d%9d%9d%9d", "TCP  "+vip+":80", 0, 0, svcBefore.GetRateLimited()+refused, 0)
	if !strings.Contains(out, want+"\n") {
		t.Errorf("ipvsadm -L -n --drops --exact:\n%s\nwant the line\n%s", out, want)
	}
}

// limitsConfig is a FullNAT service on VIP:80 over both real servers
// (no health checks) with a per-source limit and a deny list.
func limitsConfig(l *Lab, limit int, deny string) string {
	return fmt.Sprintf(`# gvs-controlplane config of TestLimitsControlPlane
dataplane: {socket: %[1]s, poll_interval: 200ms}
log: {level: info, format: json}
http: {listen: "%[2]s"}
virtual_servers:
  - name: web
    vip: %[3]s
    port: 80
    lb_algo: wrr
    per_source_limit: %[4]d
    deny_list: [%[5]s]
    local_addresses: [{ip: %[6]s, interface: %[7]s}]
    real_servers:
      - {ip: %[8]s, port: 8080, weight: 1}
      - {ip: %[9]s, port: 8080, weight: 1}
`, l.Env["DP_SOCKET"], cpListen, l.Env["VIP"], limit, deny, l.Env["LIP"], l.Env["LB_RS_PORT"], l.Env["RS1_IP"], l.Env["RS2_IP"])
}

// TestLimitsControlPlane: the same through gvs-controlplane's file:
// per_source_limit caps the flooding client while the other's requests
// succeed, deny_list refuses its client, and /metrics reports both
// refusals per service as the dataplane counts them.
func TestLimitsControlPlane(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	for i := 1; i <= 2; i++ {
		ns, ip := l.Env[fmt.Sprintf("RS%d_NS", i)], l.Env[fmt.Sprintf("RS%d_IP", i)]
		l.startTestsrv(ns, fmt.Sprintf("rs%d", i), "--http", ip+":8080")
		waitTCP(t, ns, ip+":8080")
	}
	const denied = "10.1.0.6"
	l.startControlPlane(limitsConfig(l, 20, denied))
	testenv.Eventually(t, 10*time.Second, "the configured service", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := l.api.ListServices(ctx, &pb.ListServicesRequest{})
		return err == nil && len(r.Services) == 1 && r.Services[0].PerSourceRateLimit == 20 &&
			len(r.Services[0].Deny) == 1 && r.Services[0].Deny[0] == denied+"/32" && len(r.Services[0].Dests) == 2
	})
	if out := l.Ipvsadm("--get-blklst"); !strings.Contains(out, denied) {
		t.Errorf("--get-blklst:\n%s", out)
	}

	// the denied client: its SYNs are dropped (curl gives up)
	l.MustNS(l.Env["CLIENT_NS"], "ip", "addr", "add", denied+"/24", "dev", l.Env["CLIENT_IF"])
	if out, err := l.NS(l.Env["CLIENT_NS"], "curl", "-s", "--max-time", "2", "--interface", denied, "http://"+l.Env["VIP"]+"/"); err == nil {
		t.Fatalf("the denied client got an answer: %q", out)
	}
	if a := l.admission(t, 80); a.GetDenied() == 0 {
		t.Errorf("nothing counted as denied: %+v", a)
	}

	perSourceUnderFlood(t, l, 20)

	a := l.admission(t, 80)
	for _, r := range []struct {
		reason string
		want   uint64
	}{{"source_limited", a.GetSourceLimited()}, {"denied", a.GetDenied()}, {"rate_limited", 0}} {
		v, ok := series(l.scrape(t), "gvs_service_refused_total", map[string]string{"vip": l.Env["VIP"], "port": "80", "reason": r.reason})
		if !ok || uint64(v) != r.want {
			t.Errorf("gvs_service_refused_total{reason=%q} = %v (found %v), the dataplane counts %d", r.reason, v, ok, r.want)
		}
	}
}
