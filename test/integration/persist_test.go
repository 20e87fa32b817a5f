package integration

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/internal/nsutil"
)

// clientFrom is an HTTP client in namespace ns whose connections leave
// from local (new connection per request, a new source port each).
func clientFrom(ns string, local netip.Addr) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := nsutil.Do(ns, func() (err error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local.AsSlice()}, Timeout: 5 * time.Second}
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

func serverOf(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Fields(string(b) + " ?")[0]
}

// TestPersistence: with -p on a two-worker dataplane, 200 connections of
// one client (as many source ports, spread over both workers by the NIC
// queues) all reach one real server; the template is listed as LVS lists
// it and counted by --persistent-conn; a quiesced real server keeps its
// persistent client while a new client goes elsewhere.
func TestPersistence(t *testing.T) {
	l := fullNATLab(t)
	vip := l.Env["VIP"]
	l.Ipvsadm("-E", "-t", vip+":80", "-s", "rr", "-p", "120")
	if out := l.Ipvsadm("-L", "-n", "-t", vip+":80"); !strings.Contains(out, "TCP  "+vip+":80 rr persistent 120\n") {
		t.Fatalf("listing:\n%s", out)
	}
	url := "http://" + vip + "/"
	clientIP := netip.MustParseAddr(l.Env["CLIENT_IP"])
	c := clientFrom(l.Env["CLIENT_NS"], clientIP)
	first := serverOf(t, c, url)
	for i := 1; i < 200; i++ {
		if s := serverOf(t, c, url); s != first {
			t.Fatalf("request %d served by %s, the client's first by %s", i, s, first)
		}
	}
	// the connections were made on both workers
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := l.api.ListConns(ctx, &pb.ListConnsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	perWorker := map[int32]int{}
	var tmpl []*pb.Conn
	for {
		page, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, cn := range page.GetConns() {
			if cn.GetTemplate() {
				tmpl = append(tmpl, cn)
			} else {
				perWorker[cn.GetWorker()]++
			}
		}
	}
	t.Logf("connections per worker: %v", perWorker)
	if len(perWorker) < 2 {
		t.Errorf("all 200 connections were made on one worker (%v): the test shows nothing about templates shared by workers", perWorker)
	}
	rsIP := map[string]string{"rs1": l.Env["RS1_IP"], "rs2": l.Env["RS2_IP"]}
	if len(tmpl) != 1 || tmpl[0].GetClient() != clientIP.String()+":0" || tmpl[0].GetDest() != rsIP[first]+":8080" || tmpl[0].GetState() != "NONE" {
		t.Errorf("templates %v, want one for %s:0 to %s:8080", tmpl, clientIP, rsIP[first])
	}
	// ipvsadm -L -n -c shows it in LVS's form
	found := false
	sc := bufio.NewScanner(strings.NewReader(l.Ipvsadm("-L", "-n", "-c")))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && f[2] == "NONE" && f[3] == clientIP.String()+":0" && f[len(f)-1] == rsIP[first]+":8080" {
			found = true
		}
	}
	if !found {
		t.Errorf("ipvsadm -L -n -c has no template line for %s", clientIP)
	}
	// --persistent-conn: PersistConn 1 on the client's real server
	sc = bufio.NewScanner(strings.NewReader(l.Ipvsadm("-L", "-n", "--persistent-conn")))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 6 && f[0] == "->" {
			want := "0"
			if f[1] == rsIP[first]+":8080" {
				want = "1"
			}
			if f[3] != want {
				t.Errorf("--persistent-conn line %q: PersistConn %s, want %s", sc.Text(), f[3], want)
			}
		}
	}

	// quiesce the client's real server: it keeps its persistent client
	l.Ipvsadm("-e", "-t", vip+":80", "-r", rsIP[first]+":8080", "-b", "-w", "0")
	for i := 0; i < 20; i++ {
		if s := serverOf(t, c, url); s != first {
			t.Fatalf("after quiescing %s, the persistent client went to %s", first, s)
		}
	}
	// a new client (a second address of the client namespace) goes elsewhere
	second := clientIP.Next()
	l.MustNS(l.Env["CLIENT_NS"], "ip", "addr", "add", second.String()+"/24", "dev", l.Env["CLIENT_IF"])
	c2 := clientFrom(l.Env["CLIENT_NS"], second)
	for i := 0; i < 20; i++ {
		if s := serverOf(t, c2, url); s == first {
			t.Fatalf("a new client was scheduled to the quiesced %s", first)
		}
	}
}
