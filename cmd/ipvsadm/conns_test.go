package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/ipvsadm"
)

// TestListManyConns: `ipvsadm -L -n -c` of more connections than one gRPC
// message may carry (issue 11: 64,508 UDP conns gave "received message
// larger than max (5382333 vs. 4194304)"). The listing streams in pages;
// every connection is printed once, in order, in the layout of a one-page
// listing.
func TestListManyConns(t *testing.T) {
	f, sock := startFake(t)
	const n = 100_000
	f.conns = make([]*pb.Conn, n)
	for i := range f.conns {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%60000))
		f.conns[i] = &pb.Conn{Proto: "UDP", State: "UDP", ExpireNs: 299e9, Client: client.String(),
			Virtual: "10.0.0.1:53", Local: fmt.Sprintf("10.0.0.200:%d", 1025+i%60000), Dest: "192.168.0.2:53"}
	}
	size := 0
	for _, c := range f.conns {
		size += len(c.GetClient()) + len(c.GetVirtual()) + len(c.GetLocal()) + len(c.GetDest()) + 20
	}
	if size <= 4<<20 {
		t.Fatalf("the test's conns take %d bytes, not more than gRPC's 4 MiB message limit", size)
	}
	f.connPage = 2048
	r := runCmd(t, sock, "", "-L -n -c")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	// the same bytes as printing the whole table at once
	if want := (ipvsadm.Lister{Format: ipvsadm.FmtNumeric}).Conns(f.conns); r.stdout != want {
		got := strings.Split(r.stdout, "\n")
		t.Fatalf("output differs from the one-page listing: %d lines, want %d; first lines %q",
			len(got), strings.Count(want, "\n")+1, got[:min(3, len(got))])
	}
	if lines := strings.Count(r.stdout, "\n"); lines != n+2 {
		t.Errorf("%d lines, want %d", lines, n+2)
	}
}

// TestListConnsEmpty: an empty table prints the header alone.
func TestListConnsEmpty(t *testing.T) {
	_, sock := startFake(t)
	r := runCmd(t, sock, "", "-L -n -c")
	want := "IPVS connection entries\npro expire state       source             virtual            destination\n"
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Fatalf("got %+v, want %q", r, want)
	}
}
