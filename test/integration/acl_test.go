package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
)

// TestDenyAllowLists: the lab client is denied (ipvsadm --add-blklst), its
// requests fail and drop_lb_denied counts them; removed, they work again;
// an allow list without the client refuses it (drop_lb_not_allowed), one
// with it admits it. --get-blklst lists the entry in DPVS's format.
func TestDenyAllowLists(t *testing.T) {
	l := fullNATLab(t)
	vip, client := l.Env["VIP"], l.Env["CLIENT_IP"]
	svc := vip + ":80"
	url := "http://" + svc + "/"
	// a refused connection is a SYN without answer: the client gives up
	// after its own timeout, which bounds the test, not what it asserts
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := nsutil.Do(l.Env["CLIENT_NS"], func() (err error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: netip.MustParseAddr(client).AsSlice()}}
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}}
	get := func() error {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("before any list: %v", err)
	}

	l.Ipvsadm("--add-blklst", "-t", svc, "-k", client)
	want := fmt.Sprintf("%-8s %-30s %-30s\n%-8s %-30s %-30s\n", "PROTO", "VIP:VPORT", "BLACKLIST", "TCP", svc, client)
	if out := l.Ipvsadm("--get-blklst"); out != want {
		t.Fatalf("--get-blklst:\n%q\nwant\n%q", out, want)
	}
	before := l.Counters()["drop_lb_denied"]
	if err := get(); err == nil {
		t.Fatal("a denied client got an answer")
	}
	if n := l.Counters()["drop_lb_denied"]; n <= before {
		t.Fatalf("drop_lb_denied %d, was %d", n, before)
	}
	l.Ipvsadm("--del-blklst", "-t", svc, "-k", client)
	if err := get(); err != nil {
		t.Fatalf("after --del-blklst: %v", err)
	}

	l.Ipvsadm("--add-whtlst", "-t", svc, "-2", "192.0.2.0/24")
	before = l.Counters()["drop_lb_not_allowed"]
	if err := get(); err == nil {
		t.Fatal("a client outside the allow list got an answer")
	}
	if n := l.Counters()["drop_lb_not_allowed"]; n <= before {
		t.Fatalf("drop_lb_not_allowed %d, was %d", n, before)
	}
	p := netip.PrefixFrom(netip.MustParseAddr(client), 24).Masked().String()
	l.Ipvsadm("--add-whtlst", "-t", svc, "-2", p)
	if err := get(); err != nil {
		t.Fatalf("client in the allow list: %v", err)
	}
	if out := l.Ipvsadm("--get-whtlst", "-t", svc); !strings.Contains(out, p) || !strings.Contains(out, "192.0.2.0/24") {
		t.Fatalf("--get-whtlst:\n%s", out)
	}
}
