package integration

import (
	"errors"
	"io"
	"net"
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
	vip, rsIP := l.Env["VIP"], l.Env["RS1_IP"]
	ln, err := nsutil.Listen(l.Env["RS1_NS"], "tcp", rsIP+":7070")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
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
	client, err := nsutil.Dial(l.Env["CLIENT_NS"], "tcp", vip+":70", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var server net.Conn
	select {
	case server = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the real server accepted nothing")
	}
	if server == nil {
		t.Fatal("accept failed")
	}
	defer server.Close()
	// data both ways, so that both ends' numbers have moved past the handshake
	exchange := func(from, to net.Conn, msg string) {
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
	exchange(client, server, "request of the client")
	exchange(server, client, "the server's longer answer to it")

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
