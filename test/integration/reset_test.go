package integration

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/nsutil"
)

// TestExpireResetLab: a FullNAT connection between Linux's own TCP stacks
// that sits idle past GVS's ESTABLISHED timeout is reset at both ends: the
// real server's socket and the client's each read ECONNRESET, so the
// sequence numbers GVS put in its RSTs were the ones each stack expected
// (RFC 5961: any other would earn a challenge ACK and leave the
// connection open). Without the resets both reads would wait out their
// deadline.
func TestExpireResetLab(t *testing.T) {
	l := StartLab(t, "--driver", "afxdp")
	client, server := expireResetConn(t, l)
	exchange(t, client, server, "request of the client")
	exchange(t, server, client, "the server's longer answer to it")
	expireResetBoth(t, l, client, server)
}

// TestExpireResetLabXDP: as TestExpireResetLab, with the connection on the
// XDP fast path when it goes idle: the server's last segments went by the
// program, which noted their numbers, and the worker resets both ends with
// them. (Before the program noted them, GVS sent no reset for a connection
// whose server direction was offloaded; with the worker's own, older
// numbers the stacks would answer with challenge ACKs.)
func TestExpireResetLabXDP(t *testing.T) {
	t.Setenv("GVS_LAB_XDP_OFFLOAD", "on")
	l := StartLab(t, "--driver", "afxdp", "--workers", "1")
	client, server := expireResetConn(t, l)
	round := func(i int) {
		t.Helper()
		exchange(t, client, server, fmt.Sprintf("request %d", i))
		exchange(t, server, client, fmt.Sprintf("the answer to request %d", i))
	}
	// 12 rounds through the worker offload both directions (armed: after
	// 8 established segments each); a pause longer than the worker's
	// settle (4 ms) lets it write its marks, and the next segment of each
	// direction disarms the entry: from then on the program forwards it.
	// Rounds until one passes without the worker forwarding a server
	// segment, then the last round, also without
	for i := range 12 {
		round(i)
	}
	pauses := 0
	for fast := false; !fast; {
		if pauses++; pauses > 50 {
			t.Fatal("after 50 pauses the worker still forwarded every answer of the server: its direction never went fast")
		}
		time.Sleep(20 * time.Millisecond) // a pause in the traffic: the condition under test, not a wait for an event
		before := l.Counters()["lb_out"]
		round(100 + pauses)
		fast = l.Counters()["lb_out"] == before
	}
	t.Logf("the server's answers go by the fast path after %d pauses", pauses)
	before := l.Counters()["lb_out"]
	round(200)
	if n := l.Counters()["lb_out"] - before; n != 0 {
		t.Fatalf("the worker forwarded %d server segments of the last round, want none (the fast path's)", n)
	}
	listing := l.Ipvsadm("-L", "-n", "-c")
	if !strings.Contains(listing, " xdp\n") && !strings.Contains(listing, " xdp:out\n") {
		t.Fatalf("the connection's server direction is not on the fast path:\n%s", listing)
	}
	expireResetBoth(t, l, client, server)
}

// expireResetConn configures a FullNAT service with a 2 s ESTABLISHED
// timeout in lab l and returns a connection through it: the client's end
// and the real server's.
func expireResetConn(t *testing.T, l *Lab) (client, server net.Conn) {
	t.Helper()
	vip, rsIP := l.Env["VIP"], l.Env["RS1_IP"]
	ln, err := nsutil.Listen(l.Env["RS1_NS"], "tcp", rsIP+":7070")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	l.Ipvsadm("--set", "2", "0", "0") // ESTABLISHED: 2 s
	l.Ipvsadm("-A", "-t", vip+":70", "-s", "rr")
	l.Ipvsadm("-a", "-t", vip+":70", "-r", rsIP+":7070", "-b")
	l.Ipvsadm("--add-laddr", "-z", l.Env["LIP"], "-t", vip+":70", "-F", l.Env["LB_RS_PORT"])

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = nsutil.Dial(l.Env["CLIENT_NS"], "tcp", vip+":70", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	select {
	case server = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the real server accepted nothing")
	}
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// exchange writes msg on from and reads it whole on to.
func exchange(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	to.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(to, buf); err != nil || string(buf) != msg {
		t.Fatalf("%q arrived as %q: %v", msg, buf, err)
	}
}

// expireResetBoth waits for GVS to expire the idle connection (2 s) and
// checks that both ends read ECONNRESET, and GVS's counters.
func expireResetBoth(t *testing.T, l *Lab, client, server net.Conn) {
	t.Helper()
	// idle: GVS expires the connection after 2 s and resets both ends
	for name, c := range map[string]net.Conn{"real server": server, "client": client} {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s's read after the expiry: %v, want ECONNRESET", name, err)
		}
	}
	c := l.Counters()
	if c["lb_reset_server"] != 1 || c["lb_reset_client"] != 1 || c["lb_conns_expired"] != 1 {
		t.Errorf("lb_reset_server %d lb_reset_client %d lb_conns_expired %d, want 1 each",
			c["lb_reset_server"], c["lb_reset_client"], c["lb_conns_expired"])
	}
}
