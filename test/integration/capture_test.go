package integration

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// dpipCapture is a running bin/dpip capture.
type dpipCapture struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// startCapture runs dpip capture ARGS and returns once it reports the
// capture running.
func (l *Lab) startCapture(args ...string) *dpipCapture {
	l.t.Helper()
	c := &dpipCapture{done: make(chan error, 1)}
	c.cmd = exec.Command(filepath.Join(l.root, "bin", "dpip"), append([]string{"-S", l.Env["DP_SOCKET"], "capture"}, args...)...)
	pr, pw := io.Pipe()
	c.cmd.Stderr = pw
	if err := c.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		first := true
		for sc.Scan() {
			c.stderr.WriteString(sc.Text() + "\n")
			if first && strings.HasPrefix(sc.Text(), "capturing on ") {
				first = false
				close(started)
			}
		}
	}()
	go func() { err := c.cmd.Wait(); pw.Close(); c.done <- err }()
	l.t.Cleanup(func() { c.cmd.Process.Kill() })
	select {
	case <-started:
	case err := <-c.done:
		l.t.Fatalf("dpip capture %v ended before capturing: %v\n%s", args, err, c.stderr.String())
	case <-time.After(20 * time.Second):
		l.t.Fatalf("dpip capture %v did not start", args)
	}
	return c
}

// interrupt stops the capture as Ctrl-C does and returns what it printed.
func (c *dpipCapture) interrupt(t *testing.T) string {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("dpip capture after Ctrl-C: %v\n%s", err, c.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("dpip capture ignored Ctrl-C")
	}
	return c.stderr.String()
}

type capPkt struct {
	comment      string // "dp0 rx worker 1"
	src, dst     net.IP
	sport, dport uint16
	syn, ack     bool
	payload      string
}

// readCapture decodes what a pcapng file holds so far (a file still being
// written may end in a partial block).
func readCapture(path string) []capPkt {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		return nil
	}
	var out []capPkt
	for {
		data, _, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			return out
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil || len(opts.Comments) != 1 {
			continue
		}
		out = append(out, capPkt{comment: opts.Comments[0], src: ip.SrcIP, dst: ip.DstIP, sport: uint16(tcp.SrcPort), dport: uint16(tcp.DstPort),
			syn: tcp.SYN, ack: tcp.ACK, payload: string(tcp.Payload)})
	}
}

func (l *Lab) curlFrom(src string) (server, peer string) {
	l.t.Helper()
	out := l.MustNS(l.Env["CLIENT_NS"], "curl", "-s", "--max-time", "5", "--interface", src, "http://"+l.Env["VIP"]+"/")
	f := strings.Fields(out) // "rs1 peer=10.2.0.100:1025"
	if len(f) != 2 {
		l.t.Fatalf("curl from %s: %q", src, out)
	}
	return f[0], strings.TrimPrefix(f[1], "peer=")
}

// TestCaptureFullNAT: dpip capture on both ports sees a FullNAT HTTP
// exchange untranslated where it arrives and translated where it leaves
// (client→VIP received on the client port, local address→real server
// sent on the server port, and the reverse), gopacket and tshark read the
// file, a second capture is refused meanwhile, and a filter on one client
// leaves out another client's exchange.
func TestCaptureFullNAT(t *testing.T) {
	l := fullNATLab(t)
	client, vip, lip := l.Env["CLIENT_IP"], l.Env["VIP"], l.Env["LIP"]
	client2 := "10.1.0.4"
	l.MustNS(l.Env["CLIENT_NS"], "ip", "addr", "add", client2+"/24", "dev", l.Env["CLIENT_IF"])
	dir := t.TempDir()

	file := filepath.Join(dir, "fullnat.pcapng")
	c := l.startCapture("-w", file, "tcp", "port", "80", "or", "tcp", "port", "8080")
	out, err := exec.Command(filepath.Join(l.root, "bin", "dpip"), "-S", l.Env["DP_SOCKET"], "capture", "-c", "1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "a capture is already running") {
		t.Errorf("second capture: %v\n%s", err, out)
	}
	server, peer := l.curlFrom(client)
	rs := l.Env["RS1_IP"]
	if server == "rs2" {
		rs = l.Env["RS2_IP"]
	}
	lport := peer[strings.LastIndex(peer, ":")+1:]
	// the four legs, each with its handshake packet and its HTTP payload
	type leg struct {
		name, comment, src, dst string
		syn                     bool // SYN (false: SYN-ACK)
		payload                 string
	}
	legs := []leg{
		{"client→VIP on dp0 rx", "dp0 rx", client, vip, true, "GET / HTTP/1.1"},
		{"laddr→real server on dp1 tx", "dp1 tx", lip, rs, true, "GET / HTTP/1.1"},
		{"real server→laddr on dp1 rx", "dp1 rx", rs, lip, false, server + " peer=" + peer},
		{"VIP→client on dp0 tx", "dp0 tx", vip, client, false, server + " peer=" + peer},
	}
	missing := func(pkts []capPkt) []string {
		var miss []string
		for _, g := range legs {
			var hs, data bool
			for _, p := range pkts {
				if !strings.HasPrefix(p.comment, g.comment+" worker ") || p.src.String() != g.src || p.dst.String() != g.dst {
					continue
				}
				if g.src == lip && itoa(p.sport) != lport || g.dst == lip && itoa(p.dport) != lport {
					continue // another connection's local port
				}
				hs = hs || p.syn && p.ack != g.syn
				data = data || strings.Contains(p.payload, g.payload)
			}
			if !hs || !data {
				miss = append(miss, g.name)
			}
		}
		return miss
	}
	testenv.Eventually(t, 10*time.Second, "the four legs of the exchange in the capture file", func() bool {
		return len(missing(readCapture(file))) == 0
	})
	stats := c.interrupt(t)
	if !strings.Contains(stats, " packets captured\n0 packets dropped by the capture ring\n0 packets rate-limited\n") {
		t.Errorf("capture's counts:\n%s", stats)
	}
	pkts := readCapture(file)
	if m := missing(pkts); len(m) > 0 {
		t.Errorf("after Ctrl-C the file lacks %v", m)
	}
	for _, p := range pkts {
		if (p.sport != 80 && p.dport != 80 && p.sport != 8080 && p.dport != 8080) || !strings.Contains(p.comment, " worker ") {
			t.Errorf("packet outside the filter or without its worker: %+v", p)
		}
	}
	ts, err := exec.Command("tshark", "-r", file, "-T", "fields", "-e", "frame.comment", "-e", "ip.src", "-e", "ip.dst").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, ts)
	}
	lines := strings.Split(strings.TrimSpace(string(ts)), "\n")
	if len(lines) != len(pkts) {
		t.Errorf("tshark read %d packets, gopacket %d", len(lines), len(pkts))
	}
	for _, want := range []string{"dp0 rx worker \\d\t" + client + "\t" + vip, "dp1 tx worker \\d\t" + lip + "\t" + rs,
		"dp1 rx worker \\d\t" + rs + "\t" + lip, "dp0 tx worker \\d\t" + vip + "\t" + client} {
		if !containsLine(lines, want) {
			t.Errorf("tshark shows no %q:\n%s", want, ts)
		}
	}

	// one client of two: the filter leaves the other out
	file2 := filepath.Join(dir, "client2.pcapng")
	c = l.startCapture("dev", l.Env["LB_CLIENT_PORT"], "rx", "-w", file2, "src", "host", client2)
	l.curlFrom(client) // completes before client2's exchange starts
	l.curlFrom(client2)
	testenv.Eventually(t, 10*time.Second, "client2's request in the capture file", func() bool {
		for _, p := range readCapture(file2) {
			if strings.Contains(p.payload, "GET / HTTP/1.1") {
				return true
			}
		}
		return false
	})
	c.interrupt(t)
	pkts = readCapture(file2)
	for _, p := range pkts {
		if p.src.String() != client2 || p.dst.String() != vip || !strings.HasPrefix(p.comment, "dp0 rx worker ") {
			t.Errorf("the filter on %s let through %+v", client2, p)
		}
	}
	t.Logf("%d packets of client %s captured, none of %s", len(pkts), client2, client)
}

func itoa(v uint16) string { return strconv.Itoa(int(v)) }

func containsLine(lines []string, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, l := range lines {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}
