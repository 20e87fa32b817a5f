package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/internal/nsutil"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// TestFoundation runs the foundation checks on each driver, one lab each.
func TestFoundation(t *testing.T) {
	for _, drv := range drivers() {
		t.Run(drv, func(t *testing.T) {
			l := StartLab(t, "--driver", drv)
			t.Run("ping", func(t *testing.T) { testPing(t, l) })
			t.Run("neighbours", func(t *testing.T) { testClientNeighbours(t, l) })
			t.Run("kni_tcp", func(t *testing.T) { testKNITCP(t, l) })
			t.Run("forward_http", func(t *testing.T) { testForwardHTTP(t, l) })
			t.Run("malformed", func(t *testing.T) { testMalformed(t, l) })
		})
	}
	// two workers, each owning one queue of every (two-queue) veth
	t.Run("afxdp-2workers", func(t *testing.T) {
		l := StartLab(t, "--driver", "afxdp", "--workers", "2")
		t.Run("ping", func(t *testing.T) { testPing(t, l) })
		t.Run("kni_tcp", func(t *testing.T) { testKNITCP(t, l) })
		t.Run("forward_http", func(t *testing.T) { testForwardHTTP(t, l) })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := l.api.ListWorkers(ctx, &pb.Empty{})
		if err != nil || len(r.Workers) != 2 {
			t.Fatalf("workers: %v %v", r, err)
		}
		for _, w := range r.Workers {
			if w.Loops == 0 {
				t.Errorf("worker %d never ran", w.Id)
			}
		}
	})
}

var received = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func ping(t *testing.T, l *Lab, ns string, v6 bool, dst string, n int) {
	t.Helper()
	args := []string{"-c", fmt.Sprint(n), "-i", "0.2", "-W", "2", dst}
	if v6 {
		args = append([]string{"-6"}, args...)
	}
	out := l.MustNS(ns, "ping", args...)
	m := received.FindStringSubmatch(out)
	if m == nil || m[2] != fmt.Sprint(n) {
		t.Fatalf("ping %s: %s", dst, out)
	}
}

func testPing(t *testing.T, l *Lab) {
	before := l.Counters()["echo_replied"]
	ping(t, l, l.Env["CLIENT_NS"], false, l.Env["LB_IP"], 3)
	ping(t, l, l.Env["CLIENT_NS"], true, l.Env["LB_IP6"], 3)
	if got := l.Counters()["echo_replied"] - before; got < 6 {
		t.Errorf("echo_replied grew by %d, want >= 6 (answered by the dataplane, not the kernel)", got)
	}
	// and the real servers ping GVS's other side
	ping(t, l, l.Env["RS1_NS"], false, l.Env["LB_RS_IP"], 2)
	ping(t, l, l.Env["RS1_NS"], true, l.Env["LB_RS_IP6"], 2)
}

func testClientNeighbours(t *testing.T, l *Lab) {
	mac := l.Link(l.Env["LB_CLIENT_PORT"]).Mac
	for _, ip := range []string{l.Env["LB_IP"], l.Env["LB_IP6"]} {
		out := l.MustNS(l.Env["CLIENT_NS"], "ip", "neigh", "show", ip)
		if !strings.Contains(out, "lladdr "+mac) || strings.Contains(out, "FAILED") || strings.Contains(out, "INCOMPLETE") {
			t.Errorf("client neighbour entry for %s = %q, want lladdr %s", ip, out, mac)
		}
	}
	// GVS learnt the client too
	out := l.Dpip("neigh", "show")
	if !strings.Contains(out, l.Env["CLIENT_IP"]) || !strings.Contains(out, l.Env["CLIENT_IP6"]) {
		t.Errorf("dpip neigh show lacks the client:\n%s", out)
	}
}

// echoServer accepts one connection at a time and echoes lines back,
// prefixed with the peer's address.
func echoServer(t *testing.T, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64*1024)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						c.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
}

func echoRoundTrip(t *testing.T, ns, addr string, size int) {
	t.Helper()
	c, err := nsutil.Dial(ns, "tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ns, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte("gvs-kni-"), size/8)
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo via %s: %v", addr, err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo via %s corrupted", addr)
	}
}

func testKNITCP(t *testing.T, l *Lab) {
	// client → management address (kernel behind KNI)
	for _, ip := range []string{l.Env["LB_MGMT_IP"], "[" + l.Env["LB_MGMT_IP6"] + "]"} {
		ln, err := nsutil.Listen(l.Env["LB_NS"], "tcp", ip+":2222")
		if err != nil {
			t.Fatal(err)
		}
		echoServer(t, ln)
		echoRoundTrip(t, l.Env["CLIENT_NS"], ip+":2222", 200000)
		ln.Close()
	}
	// the kernel of gvs-lb → client, out through KNI and the port
	ln, err := nsutil.Listen(l.Env["CLIENT_NS"], "tcp", l.Env["CLIENT_IP"]+":2223")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, ln)
	echoRoundTrip(t, l.Env["LB_NS"], l.Env["CLIENT_IP"]+":2223", 200000)
	c := l.Counters()
	if c["kni_punted"] == 0 || c["kni_sent"] == 0 {
		t.Errorf("KNI counters punted=%d sent=%d", c["kni_punted"], c["kni_sent"])
	}
}

func testForwardHTTP(t *testing.T, l *Lab) {
	for _, v := range []struct{ rs, client string }{
		{l.Env["RS1_IP"], l.Env["CLIENT_IP"]},
		{"[" + l.Env["RS1_IP6"] + "]", l.Env["CLIENT_IP6"]},
	} {
		ln, err := nsutil.Listen(l.Env["RS1_NS"], "tcp", v.rs+":8080")
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Repeat("real server one\n", 4096) // several segments each way
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			w.Header().Set("X-Peer", host)
			io.WriteString(w, body)
		})}
		go srv.Serve(ln)
		before := l.Counters()["forwarded"]
		cl := nsutil.HTTPClient(l.Env["CLIENT_NS"], 10*time.Second)
		for i := 0; i < 5; i++ {
			resp, err := cl.Get("http://" + v.rs + ":8080/")
			if err != nil {
				srv.Close()
				t.Fatalf("GET via GVS: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != body {
				t.Fatalf("status %d, %d bytes", resp.StatusCode, len(b))
			}
			if peer := resp.Header.Get("X-Peer"); peer != v.client {
				t.Errorf("server saw %s, want the client %s (routing keeps addresses)", peer, v.client)
			}
		}
		srv.Close()
		if got := l.Counters()["forwarded"] - before; got < 20 {
			t.Errorf("forwarded grew by %d", got)
		}
	}
}

// onClientLink runs send in the client's namespace with an AF_PACKET
// socket on its interface and the address that sends on it.
func onClientLink(l *Lab, send func(fd int, sa unix.Sockaddr) error) error {
	return nsutil.Do(l.Env["CLIENT_NS"], func() error {
		ifi, err := net.InterfaceByName(l.Env["CLIENT_IF"])
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return send(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
}

// sendIPv4 writes IPv4 packets (headers included) from the client's
// namespace towards dst through its routing table (a raw socket).
func sendIPv4(t *testing.T, l *Lab, dst netip.Addr, pkts [][]byte) {
	t.Helper()
	err := nsutil.Do(l.Env["CLIENT_NS"], func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrInet4{Addr: dst.As4()}
		for _, p := range pkts {
			if err := unix.Sendto(fd, p, 0, sa); err != nil && err != unix.ENOBUFS {
				return fmt.Errorf("send: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rawSend writes frames on the client's interface with an AF_PACKET socket.
func rawSend(t *testing.T, l *Lab, frames [][]byte) {
	t.Helper()
	err := onClientLink(l, func(fd int, sa unix.Sockaddr) error {
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("send %d bytes: %w", len(f), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func testMalformed(t *testing.T, l *Lab) {
	clientIf, err := nsutil.InterfaceMAC(l.Env["CLIENT_NS"], l.Env["CLIENT_IF"])
	if err != nil {
		t.Fatal(err)
	}
	lbMAC, _ := net.ParseMAC(l.Link(l.Env["LB_CLIENT_PORT"]).Mac)
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4,
		SrcIP: net.ParseIP(l.Env["CLIENT_IP"]).To4(), DstIP: net.ParseIP(l.Env["LB_IP"]).To4()}
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: clientIf, DstMAC: lbMAC, EthernetType: layers.EthernetTypeIPv4}, ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1},
		gopacket.Payload(bytes.Repeat([]byte{0xab}, 40)))
	good := buf.Bytes()
	mut := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name    string
		frame   []byte
		counter string
	}{
		{"truncated ip", good[:14+10], "drop_ipv4_too_short"},
		{"bad ihl", mut(func(b []byte) []byte { b[14] = 0x44; return b }), "drop_ipv4_bad_header_len"},
		{"bad total length", mut(func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 1400); return b }), "drop_ipv4_bad_total_len"},
		{"bad header checksum", mut(func(b []byte) []byte { b[22] ^= 0x5a; return b }), "drop_ipv4_bad_checksum"},
		{"bad version", mut(func(b []byte) []byte { b[14] = 0x75; return b }), "drop_ipv4_bad_version"},
		{"garbage ipv6", append(append([]byte(nil), good[:12]...), append([]byte{0x86, 0xdd}, bytes.Repeat([]byte{0xee}, 20)...)...), "drop_ipv6_too_short"},
		{"truncated arp", append(append([]byte(nil), good[:12]...), 0x08, 0x06, 0, 1, 8, 0), "drop_arp_invalid"},
	}
	before := l.Counters()
	var frames [][]byte
	for _, c := range cases {
		for i := 0; i < 10; i++ {
			frames = append(frames, c.frame)
		}
	}
	rawSend(t, l, frames)
	testenv.Eventually(t, 5*time.Second, "drop counters", func() bool {
		now := l.Counters()
		for _, c := range cases {
			if now[c.counter]-before[c.counter] < 10 {
				return false
			}
		}
		return true
	})
	// the worker is alive and answering
	ping(t, l, l.Env["CLIENT_NS"], false, l.Env["LB_IP"], 2)
	out := l.Dpip("worker", "show")
	if !strings.Contains(out, "drop_ipv4_bad_checksum") {
		t.Errorf("dpip worker show does not name the drops:\n%s", out)
	}
	// the worker's busy time counts the iterations that handled these
	var busy float64
	for _, m := range regexp.MustCompile(`busy ([0-9.]+)s`).FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		busy += v
	}
	if busy <= 0 {
		t.Errorf("dpip worker show gives no busy time after the workers handled packets:\n%s", out)
	}
}

// TestRuntimeChanges: dpip changes take effect while the workers run.
func TestRuntimeChanges(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp")
	client := l.Env["CLIENT_NS"]
	// a new address on dp0 answers pings at once
	if _, err := l.NS(client, "ping", "-c", "1", "-W", "1", "10.1.0.50"); err == nil {
		t.Fatal("10.1.0.50 answered before it was added")
	}
	l.Dpip("addr", "add", "10.1.0.50/32", "dev", "dp0")
	ping(t, l, client, false, "10.1.0.50", 2)
	l.Dpip("addr", "del", "10.1.0.50/32", "dev", "dp0")
	testenv.Eventually(t, 5*time.Second, "the deleted address to stop answering", func() bool {
		_, err := l.NS(client, "ping", "-c", "1", "-W", "1", "10.1.0.50")
		return err != nil
	})
	// a static route towards a network behind rs1
	l.MustNS(l.Env["RS1_NS"], "ip", "addr", "add", "10.9.0.1/32", "dev", "lo")
	l.MustNS(client, "ip", "route", "add", "10.9.0.0/24", "via", l.Env["LB_IP"])
	if _, err := l.NS(client, "ping", "-c", "1", "-W", "1", "10.9.0.1"); err == nil {
		t.Fatal("10.9.0.1 reachable before the route was added")
	}
	l.Dpip("route", "add", "10.9.0.0/24", "via", l.Env["RS1_IP"], "dev", l.Env["LB_RS_PORT"])
	ping(t, l, client, false, "10.9.0.1", 2)
	if out := l.Dpip("route", "show"); !strings.Contains(out, "inet 10.9.0.0/24 via "+l.Env["RS1_IP"]) {
		t.Errorf("route show:\n%s", out)
	}
}

// TestKNIMulticast: multicast (an OSPF hello to 224.0.0.5) reaches the
// kernel behind KNI.
func TestKNIMulticast(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp")
	kniIf := l.Env["LB_CLIENT_KNI"]
	var fd int
	err := nsutil.Do(l.Env["LB_NS"], func() error {
		ifi, err := net.InterfaceByName(kniIf)
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
	defer unix.Close(fd)
	clientMAC, err := nsutil.InterfaceMAC(l.Env["CLIENT_NS"], l.Env["CLIENT_IF"])
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("gvs-ospf-hello-probe")
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: clientMAC, DstMAC: net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 5}, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 1, Protocol: 89, SrcIP: net.ParseIP(l.Env["CLIENT_IP"]).To4(), DstIP: net.IPv4(224, 0, 0, 5).To4()},
		gopacket.Payload(payload))
	frame := buf.Bytes()
	tv := unix.Timeval{Sec: 0, Usec: 200000}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	rb := make([]byte, 2048)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rawSend(t, l, [][]byte{frame})
		for i := 0; i < 5; i++ {
			n, _, err := unix.Recvfrom(fd, rb, 0)
			if err != nil {
				break
			}
			if bytes.Contains(rb[:n], payload) {
				return
			}
		}
	}
	t.Fatal("the multicast frame never reached the KNI device")
}
