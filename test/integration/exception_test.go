package integration

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/nsutil"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// flood sends frames round robin from the client's interface as fast as
// an AF_PACKET socket takes them until stop is closed; it returns how many
// it sent.
func flood(t *testing.T, l *Lab, frames [][]byte, stop <-chan struct{}) *atomic.Uint64 {
	t.Helper()
	var sent atomic.Uint64
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
				if err := unix.Sendto(fd, frames[i%len(frames)], 0, sa); err == nil {
					sent.Add(1)
				}
			}
		})
		if err != nil {
			t.Errorf("flood: %v", err)
		}
	}()
	t.Cleanup(wg.Wait)
	return &sent
}

// TestExceptionPathUnderFlood: a flood to ports of the virtual address
// that have no service is dropped and counted by the dataplane, not
// punted; meanwhile the client still resolves the dataplane's and the
// kernel's addresses (ARP and ND: the kernel's through KNI), pings the
// dataplane and completes TCP exchanges with the kernel behind KNI.
func TestExceptionPathUnderFlood(t *testing.T) {
	l := fullNATLab(t)
	t.Run("cli_after_eval_env", func(t *testing.T) { testCLIsAfterEvalEnv(t, l) })
	clientMAC, err := nsutil.InterfaceMAC(l.Env["CLIENT_NS"], l.Env["CLIENT_IF"])
	if err != nil {
		t.Fatal(err)
	}
	portMAC, _ := net.ParseMAC(l.Link(l.Env["LB_CLIENT_PORT"]).Mac)
	client, vip := netip.MustParseAddr(l.Env["CLIENT_IP"]), netip.MustParseAddr(l.Env["VIP"])
	var frames [][]byte
	for i := 0; i < 64; i++ {
		eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: portMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, SrcIP: client.AsSlice(), DstIP: vip.AsSlice()}
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		var err error
		if i%2 == 0 {
			ip.Protocol = layers.IPProtocolUDP
			u := &layers.UDP{SrcPort: layers.UDPPort(20000 + i), DstPort: 81}
			u.SetNetworkLayerForChecksum(ip)
			err = gopacket.SerializeLayers(buf, opts, eth, ip, u, gopacket.Payload(make([]byte, 18)))
		} else {
			ip.Protocol = layers.IPProtocolTCP
			tcp := &layers.TCP{SrcPort: layers.TCPPort(20000 + i), DstPort: 443, SYN: true, Seq: uint32(i), Window: 1024}
			tcp.SetNetworkLayerForChecksum(ip)
			err = gopacket.SerializeLayers(buf, opts, eth, ip, tcp)
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, buf.Bytes())
	}
	before := l.Counters()
	stop := make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }) }
	sent := flood(t, l, frames, stop)
	defer halt()
	testenv.Eventually(t, 10*time.Second, "the flood reaching the dataplane", func() bool {
		return l.Counters()["drop_lb_no_service"]-before["drop_lb_no_service"] > 10000
	})

	// during the flood: forget the neighbours, so every exchange starts
	// with ARP or ND
	l.MustNS(l.Env["CLIENT_NS"], "ip", "neigh", "flush", "dev", l.Env["CLIENT_IF"])
	pingThroughFlood(t, l, false, l.Env["LB_IP"], 3)
	pingThroughFlood(t, l, true, l.Env["LB_IP6"], 3)
	for _, ip := range []string{l.Env["LB_MGMT_IP"], "[" + l.Env["LB_MGMT_IP6"] + "]"} {
		ln, err := nsutil.Listen(l.Env["LB_NS"], "tcp", ip+":2222")
		if err != nil {
			t.Fatal(err)
		}
		echoServer(t, ln)
		for i := 0; i < 5; i++ {
			echoRoundTrip(t, l.Env["CLIENT_NS"], ip+":2222", 20000)
		}
		ln.Close()
	}
	// and a FullNAT service still answers
	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 10*time.Second)
	get(t, c, "http://"+l.Env["VIP"]+":80/")

	halt()
	after := l.Counters()
	dropped := after["drop_lb_no_service"] - before["drop_lb_no_service"]
	punted := after["kni_punted"] - before["kni_punted"]
	t.Logf("flood: %d frames sent, %d dropped as drop_lb_no_service, %d punted to the kernel meanwhile", sent.Load(), dropped, punted)
	if punted > dropped/10 {
		t.Errorf("%d frames punted during a flood of %d to service-less ports: the flood reaches the kernel", punted, dropped)
	}
	for _, k := range []string{"drop_kni_control_rate_limit", "drop_kni_control_ring_full"} {
		if after[k] != before[k] {
			t.Errorf("%s grew by %d: control traffic to the kernel was lost", k, after[k]-before[k])
		}
	}
}

// pingThroughFlood pings dst from the client until n echo replies came
// back, within 15 s. The flood is offered as fast as the client can send,
// which on a shared machine can be more than the dataplane takes: the
// port's receive ring then drops frames before any software sees them, the
// flood's and a ping's alike, as a NIC's ring would. A lost request is
// sent again (and logged with the port's ring drops); a dataplane that
// does not answer under the flood still fails.
func pingThroughFlood(t *testing.T, l *Lab, v6 bool, dst string, n int) {
	t.Helper()
	port := l.Env["LB_CLIENT_PORT"]
	dropped := l.Link(port).GetStats().GetRxDropped()
	args := []string{"-c", fmt.Sprint(n), "-i", "0.2", "-w", "15", dst}
	if v6 {
		args = append([]string{"-6"}, args...)
	}
	out := l.MustNS(l.Env["CLIENT_NS"], "ping", args...)
	m := received.FindStringSubmatch(out)
	if m == nil || m[2] != fmt.Sprint(n) {
		t.Fatalf("ping %s during the flood: %s", dst, out)
	}
	if m[1] != m[2] {
		t.Logf("ping %s: %s requests for %s replies; %s dropped %d frames at its receive ring meanwhile",
			dst, m[1], m[2], port, l.Link(port).GetStats().GetRxDropped()-dropped)
	}
}

// testCLIsAfterEvalEnv: after `eval "$(scripts/lab.sh env)"` in a shell
// whose PATH lacks bin/, ipvsadm and dpip work as typed against the lab.
func testCLIsAfterEvalEnv(t *testing.T, l *Lab) {
	script := `eval "$(` + l.root + `/scripts/lab.sh env)" && cd / && ipvsadm -L -n && dpip link show`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "TCP  "+l.Env["VIP"]+":80 wrr") || !strings.Contains(string(out), l.Env["LB_CLIENT_PORT"]) {
		t.Errorf("listing after eval of the lab env:\n%s", out)
	}
}
