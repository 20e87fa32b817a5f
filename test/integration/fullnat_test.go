package integration

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/nsutil"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// Ipvsadm runs bin/ipvsadm against the lab's dataplane.
func (l *Lab) Ipvsadm(args ...string) string {
	l.t.Helper()
	cmd := exec.Command(filepath.Join(l.root, "bin", "ipvsadm"), args...)
	cmd.Env = append(cmd.Environ(), "GVS_DATAPLANE_SOCKET="+l.Env["DP_SOCKET"])
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("ipvsadm %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// startTestsrv runs gvs-testsrv in a namespace until the test ends.
func (l *Lab) startTestsrv(ns, name string, args ...string) {
	l.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, filepath.Join(l.root, "bin", "gvs-testsrv"), "--name", name}, args...)...)
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { cancel(); cmd.Wait() })
}

// waitTCP waits until addr accepts connections from namespace ns.
func waitTCP(t *testing.T, ns, addr string) {
	testenv.Eventually(t, 5*time.Second, addr+" listening", func() bool {
		c, err := nsutil.Dial(ns, "tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// fullNATLab brings up two workers on afxdp with rs1 and rs2 serving HTTP
// and a FullNAT service configured with ipvsadm exactly as operators do.
func fullNATLab(t *testing.T) *Lab {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2")
	for i := 1; i <= 2; i++ {
		ns, ip := l.Env[fmt.Sprintf("RS%d_NS", i)], l.Env[fmt.Sprintf("RS%d_IP", i)]
		l.startTestsrv(ns, fmt.Sprintf("rs%d", i), "--http", ip+":8080", "--udp-echo", ip+":9000")
		waitTCP(t, ns, ip+":8080")
	}
	vip, lip, port := l.Env["VIP"], l.Env["LIP"], l.Env["LB_RS_PORT"]
	l.Ipvsadm("-A", "-t", vip+":80", "-s", "wrr")
	l.Ipvsadm("-a", "-t", vip+":80", "-r", l.Env["RS1_IP"]+":8080", "-b", "-w", "1")
	l.Ipvsadm("-a", "-t", vip+":80", "-r", l.Env["RS2_IP"]+":8080", "-b", "-w", "3")
	l.Ipvsadm("--add-laddr", "-z", lip, "-t", vip+":80", "-F", port)
	return l
}

func get(t *testing.T, c *http.Client, url string) (server, peer string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	// "rs1 peer=10.2.0.100:1025\n"
	f := strings.Fields(string(b))
	if len(f) != 2 {
		t.Fatalf("answer %q", b)
	}
	return f[0], strings.TrimPrefix(f[1], "peer=")
}

// TestFullNAT: weighted spread of 1000 requests, local addresses as the
// real servers' peers, TOA on the wire, a long stream alongside, UDP, the
// hand-over between workers, and the connection listing.
func TestFullNAT(t *testing.T) {
	l := fullNATLab(t)
	vip := l.Env["VIP"]
	// a long-lived stream (iperf3) through its own FullNAT service
	iperfService(t, l)
	var iperfOut []byte
	var iperfErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		iperfOut, iperfErr = exec.Command("ip", "netns", "exec", l.Env["CLIENT_NS"], "iperf3", "-c", vip, "-p", "5201",
			"-t", "8", "-b", "50M", "-J").CombinedOutput()
	}()

	// TOA: capture what rs1 receives while the requests run
	toa := captureTOA(t, l, l.Env["RS1_NS"], 8080)

	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	count := map[string]int{}
	for i := 0; i < 1000; i++ {
		server, peer := get(t, c, "http://"+vip+"/")
		count[server]++
		if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr().String() != l.Env["LIP"] {
			t.Fatalf("real server saw peer %s, want the local address %s", peer, l.Env["LIP"])
		}
	}
	// wrr 1:3 is exact per worker; allow for the two workers' phases
	if count["rs1"]+count["rs2"] != 1000 || count["rs1"] < 230 || count["rs1"] > 270 {
		t.Errorf("spread %v, want rs1 250±20 and rs2 750±20 (weights 1:3)", count)
	}
	t.Logf("spread over weights 1:3: %v", count)

	got := toa()
	if len(got) == 0 {
		t.Fatal("rs1 never saw a TOA option")
	}
	for _, ap := range got {
		if ap.Addr().String() != l.Env["CLIENT_IP"] {
			t.Fatalf("TOA carries %s, want the client %s", ap, l.Env["CLIENT_IP"])
		}
	}

	wg.Wait()
	if iperfErr != nil {
		t.Fatalf("iperf3 through the VIP failed while connections came and went: %v\n%s", iperfErr, iperfOut)
	}
	if !strings.Contains(string(iperfOut), `"bytes"`) {
		t.Errorf("iperf3 output without results: %.1500s", iperfOut)
	}

	ctr := l.Counters()
	if ctr["lb_redirected_out"] == 0 || ctr["lb_redirected_in"] != ctr["lb_redirected_out"] {
		t.Errorf("hand-over between workers: out %d in %d", ctr["lb_redirected_out"], ctr["lb_redirected_in"])
	}
	t.Logf("new conns %d, redirected %d, toa %d", ctr["lb_new_conns"], ctr["lb_redirected_out"], ctr["lb_toa_added"])

	// veth has no n-tuple filters: detected and reported, not fatal
	if info := l.Dpip("info"); !strings.Contains(info, "flow steering: software redirect") || !strings.Contains(info, "n-tuple") {
		t.Errorf("dpip info does not report the software fallback:\n%s", info)
	}

	// the listing shows the service and its counters
	out := l.Ipvsadm("-L", "-n")
	if !strings.Contains(out, "TCP  "+vip+":80 wrr") || !strings.Contains(out, "FullNat 3") {
		t.Errorf("ipvsadm -L -n:\n%s", out)
	}
	conns := l.Ipvsadm("-L", "-n", "-c")
	if !strings.Contains(conns, "IPVS connection entries") || !strings.Contains(conns, l.Env["CLIENT_IP"]) {
		t.Errorf("ipvsadm -L -n -c:\n%s", conns)
	}

	// UDP request/response through a UDP service
	l.Ipvsadm("-A", "-u", vip+":9000", "-s", "rr")
	l.Ipvsadm("-a", "-u", vip+":9000", "-r", l.Env["RS1_IP"]+":9000", "-b")
	l.Ipvsadm("-a", "-u", vip+":9000", "-r", l.Env["RS2_IP"]+":9000", "-b")
	l.Ipvsadm("--add-laddr", "-z", l.Env["LIP"], "-u", vip+":9000", "-F", l.Env["LB_RS_PORT"])
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		pc, err := nsutil.ListenPacket(l.Env["CLIENT_NS"], "udp", l.Env["CLIENT_IP"]+":0")
		if err != nil {
			t.Fatal(err)
		}
		raddr := &net.UDPAddr{IP: net.ParseIP(vip), Port: 9000}
		msg := fmt.Sprintf("question %d", i)
		var answer string
		for try := 0; try < 5 && answer == ""; try++ {
			pc.WriteTo([]byte(msg), raddr)
			pc.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 1500)
			if n, from, err := pc.ReadFrom(buf); err == nil && from.String() == raddr.String() {
				answer = string(buf[:n])
			}
		}
		pc.Close()
		name, rest, _ := strings.Cut(answer, " ")
		if rest != msg {
			t.Fatalf("UDP answer %q to %q", answer, msg)
		}
		seen[name]++
	}
	if seen["rs1"] == 0 || seen["rs2"] == 0 {
		t.Errorf("UDP answers %v: both real servers should answer", seen)
	}
}

// captureTOA reads TCP segments (IPv4, or IPv6 without extension
// headers) arriving at ns's eth0 for port and returns a function that
// stops and returns the client addresses found in TOA options.
func captureTOA(t *testing.T, l *Lab, ns string, port uint16) func() []netip.AddrPort {
	var fd int
	err := nsutil.Do(ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Usec: 100000}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var mu sync.Mutex
	var found []netip.AddrPort
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil || n < 14+20+20 {
				continue
			}
			ip := buf[14:n]
			var tcp []byte
			switch et := binary.BigEndian.Uint16(buf[12:]); {
			case et == 0x0800 && ip[9] == 6:
				tcp = ip[int(ip[0]&15)*4:]
			case et == 0x86dd && len(ip) >= 60 && ip[6] == 6:
				tcp = ip[40:]
			default:
				continue
			}
			if binary.BigEndian.Uint16(tcp[2:]) != port {
				continue
			}
			doff := int(tcp[12]>>4) * 4
			opts := tcp[20:doff]
			for len(opts) > 0 {
				k := opts[0]
				if k == 0 {
					break
				}
				if k == 1 {
					opts = opts[1:]
					continue
				}
				if len(opts) < 2 || int(opts[1]) < 2 || int(opts[1]) > len(opts) {
					break
				}
				if k == 254 && opts[1] == 8 {
					a := netip.AddrFrom4([4]byte(opts[4:8]))
					mu.Lock()
					found = append(found, netip.AddrPortFrom(a, binary.BigEndian.Uint16(opts[2:4])))
					mu.Unlock()
				}
				if k == 254 && opts[1] == 20 { // an IPv6 client (NAT64)
					a := netip.AddrFrom16([16]byte(opts[4:20]))
					mu.Lock()
					found = append(found, netip.AddrPortFrom(a, binary.BigEndian.Uint16(opts[2:4])))
					mu.Unlock()
				}
				opts = opts[opts[1]:]
			}
		}
	}()
	return func() []netip.AddrPort {
		close(stop)
		<-done
		unix.Close(fd)
		mu.Lock()
		defer mu.Unlock()
		return found
	}
}

// TestQuiesce: weight 0 drains a destination without breaking its open
// connections.
func TestQuiesce(t *testing.T) {
	l := fullNATLab(t)
	vip := l.Env["VIP"]
	// one keep-alive connection
	tr := &http.Transport{MaxConnsPerHost: 1, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nsutil.Dial(l.Env["CLIENT_NS"], network, addr, 5*time.Second)
	}}
	keep := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	first, firstPeer := get(t, keep, "http://"+vip+"/")
	rsIP := map[string]string{"rs1": l.Env["RS1_IP"], "rs2": l.Env["RS2_IP"]}
	other := map[string]string{"rs1": "rs2", "rs2": "rs1"}[first]
	l.Ipvsadm("-e", "-t", vip+":80", "-r", rsIP[first]+":8080", "-b", "-w", "0")
	fresh := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	for i := 0; i < 20; i++ {
		if s, _ := get(t, fresh, "http://"+vip+"/"); s != other {
			t.Fatalf("new connection went to quiesced %s", s)
		}
	}
	for i := 0; i < 5; i++ {
		s, peer := get(t, keep, "http://"+vip+"/")
		if s != first || peer != firstPeer {
			t.Fatalf("open connection moved: %s %s, was %s %s", s, peer, first, firstPeer)
		}
	}
	out := l.Ipvsadm("-L", "-n")
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 6 && f[1] == rsIP[first]+":8080" {
			if f[3] != "0" || f[4] != "1" {
				t.Errorf("quiesced destination line %q: want weight 0 and its one open connection active", sc.Text())
			}
		}
	}
}

// TestRSSPortSelectionReported: veth has no RSS key to read; asking for
// RSS-aware ports is reported as unavailable and forwarding still works.
func TestRSSPortSelectionReported(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp", "--workers", "2", "--port-selection", "rss")
	l.startTestsrv(l.Env["RS1_NS"], "rs1", "--http", l.Env["RS1_IP"]+":8080")
	waitTCP(t, l.Env["RS1_NS"], l.Env["RS1_IP"]+":8080")
	vip := l.Env["VIP"]
	l.Ipvsadm("-A", "-t", vip+":80", "-s", "rr")
	l.Ipvsadm("-a", "-t", vip+":80", "-r", l.Env["RS1_IP"]+":8080", "-b")
	l.Ipvsadm("--add-laddr", "-z", l.Env["LIP"], "-t", vip+":80", "-F", l.Env["LB_RS_PORT"])
	if info := l.Dpip("info"); !strings.Contains(info, "RSS-aware ports unavailable") {
		t.Errorf("dpip info:\n%s", info)
	}
	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	for i := 0; i < 20; i++ {
		if s, _ := get(t, c, "http://"+vip+"/"); s != "rs1" {
			t.Fatalf("answer from %s", s)
		}
	}
}

// statsLine returns the five numbers of the ipvsadm --stats/--rate line
// that starts with prefix.
func statsLine(t *testing.T, out, prefix string) [5]uint64 {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 7 && f[0]+" "+f[1] == prefix || len(f) == 7 && f[0] == "->" && "-> "+f[1] == prefix {
			var v [5]uint64
			for i := range v {
				fmt.Sscan(f[2+i], &v[i])
			}
			return v
		}
	}
	t.Fatalf("no line %q in:\n%s", prefix, out)
	return [5]uint64{}
}

// TestIpvsadmStatsAndRate: --stats counts what the test sent, --rate
// shows the rate, -Z zeroes.
func TestIpvsadmStatsAndRate(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp")
	l.startTestsrv(l.Env["RS1_NS"], "rs1", "--http", l.Env["RS1_IP"]+":8080")
	waitTCP(t, l.Env["RS1_NS"], l.Env["RS1_IP"]+":8080")
	vip := l.Env["VIP"]
	l.Ipvsadm("-A", "-t", vip+":80", "-s", "rr")
	l.Ipvsadm("-a", "-t", vip+":80", "-r", l.Env["RS1_IP"]+":8080", "-b")
	l.Ipvsadm("--add-laddr", "-z", l.Env["LIP"], "-t", vip+":80", "-F", l.Env["LB_RS_PORT"])
	c := nsutil.HTTPClient(l.Env["CLIENT_NS"], 5*time.Second)
	const n = 60
	start := time.Now()
	for i := 0; i < n; i++ {
		get(t, c, "http://"+vip+"/")
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 80 * time.Millisecond))) // ~12 conn/s for ~5 s
	}
	svc := "TCP " + vip + ":80"
	st := statsLine(t, l.Ipvsadm("-L", "-n", "--stats", "--exact"), svc)
	dst := statsLine(t, l.Ipvsadm("-L", "-n", "--stats", "--exact"), "-> "+l.Env["RS1_IP"]+":8080")
	// each connection: at least SYN, ACK, request in; SYN-ACK, response out
	if st[0] != n || st[1] < 3*n || st[2] < 2*n || st[3] < st[1]*40 || st[4] < st[2]*40 || st != dst {
		t.Errorf("stats conns/inpkts/outpkts/inbytes/outbytes = %v (dest %v) for %d connections", st, dst, n)
	}
	rate := statsLine(t, l.Ipvsadm("-L", "-n", "--rate"), svc)
	if rate[0] == 0 || rate[1] == 0 || rate[2] == 0 || rate[3] == 0 {
		t.Errorf("--rate %v after ~12 connections/s for 5 s", rate)
	}
	l.Ipvsadm("-Z", "-t", vip+":80")
	if z := statsLine(t, l.Ipvsadm("-L", "-n", "--stats"), svc); z != [5]uint64{} {
		t.Errorf("after -Z: %v", z)
	}
	get(t, c, "http://"+vip+"/")
	if z := statsLine(t, l.Ipvsadm("-L", "-n", "--stats"), svc); z[0] != 1 {
		t.Errorf("after -Z and one connection: %v", z)
	}

	// -S | -R round trip through a cleared table
	l.Ipvsadm("-A", "-u", vip+":9000", "-s", "mh")
	l.Ipvsadm("-a", "-u", vip+":9000", "-r", l.Env["RS2_IP"]+":9001", "-b", "-w", "5", "-x", "100", "-y", "50")
	saved := l.Ipvsadm("-S", "-n")
	l.Ipvsadm("-C")
	if out := l.Ipvsadm("-L", "-n"); strings.Contains(out, vip) {
		t.Fatalf("-C left services:\n%s", out)
	}
	cmd := exec.Command(filepath.Join(l.root, "bin", "ipvsadm"), "-R")
	cmd.Env = append(cmd.Environ(), "GVS_DATAPLANE_SOCKET="+l.Env["DP_SOCKET"])
	cmd.Stdin = strings.NewReader(saved)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ipvsadm -R: %v\n%s", err, out)
	}
	if again := l.Ipvsadm("-S", "-n"); again != saved {
		t.Errorf("-S after -R:\n%s\nwant:\n%s", again, saved)
	}
	if !strings.Contains(saved, "-x 100 -y 50") || !strings.Contains(saved, "-P") {
		t.Errorf("-S lacks thresholds or local addresses:\n%s", saved)
	}
	get(t, c, "http://"+vip+"/") // and the restored service serves
}
