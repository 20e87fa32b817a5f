package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// Every scheduler ipvsadm -h names (and twos, conhash) goes to the
// dataplane as given, and comes back in -L and -S byte for byte as
// ipvsadm 1.31 prints them (conhash with DPVS's hash target).
func TestSchedulerNames(t *testing.T) {
	f, sock := startFake(t)
	help := runCmd(t, sock, "", "-h").stdout
	i := strings.Index(help, "one of ")
	if i < 0 {
		t.Fatalf("ipvsadm -h names no schedulers:\n%s", help)
	}
	list := help[i+len("one of "):]
	list = list[:strings.IndexByte(list, ',')]
	names := append(strings.Split(list, "|"), "twos", "conhash")
	if len(names) != 15 {
		t.Fatalf("schedulers %v", names)
	}
	var wantL, wantS strings.Builder
	f.services = nil
	for _, n := range names {
		f.reset()
		r := runCmd(t, sock, "", "-A -t 10.0.0.1:80 -s "+n)
		want := &pb.Service{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.1", Port: 80}, Sched: n}
		if r.code != 0 || r.stderr != "" || len(f.calls) != 1 || f.calls[0] != "AddService" || !proto.Equal(f.requests[0], want) {
			t.Errorf("-s %s: %+v, calls %v %v", n, r, f.calls, f.requests)
		}
		port := uint32(1000 + len(f.services))
		f.services = append(f.services, &pb.Service{Key: &pb.ServiceKey{Proto: "TCP", Addr: "10.0.0.1", Port: port}, Sched: n,
			Dests: []*pb.Dest{{Addr: "192.168.0.2", Port: 80, Weight: 1, Fwd: "FullNat"}}})
		extra := ""
		if n == "conhash" {
			extra = " sip"
		}
		p := itoa(int(port))
		wantL.WriteString("TCP  10.0.0.1:" + p + " " + n + extra + "\n  -> 192.168.0.2:80               FullNat 1      0          0         \n")
		wantS.WriteString("-A -t 10.0.0.1:" + p + " -s " + n + "\n-a -t 10.0.0.1:" + p + " -r 192.168.0.2:80 -b -w 1\n")
	}
	r := runCmd(t, sock, "", "-L -n")
	head := "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
	if r.code != 0 || r.stdout != head+wantL.String() {
		t.Errorf("-L -n: %+v\nwant:\n%s", r, head+wantL.String())
	}
	if r := runCmd(t, sock, "", "-S -n"); r.code != 0 || r.stdout != wantS.String() {
		t.Errorf("-S -n: %+v\nwant:\n%s", r, wantS.String())
	}
	// -R of that text adds every one of them again
	f.reset()
	if r := runCmd(t, sock, wantS.String(), "-R"); r.code != 0 || r.stderr != "" {
		t.Fatalf("-R: %+v", r)
	}
	got := 0
	for i, c := range f.calls {
		if c == "AddService" {
			if s := f.requests[i].(*pb.Service); s.GetSched() != names[got] {
				t.Errorf("-R: service %d with %s, want %s", got, s.GetSched(), names[got])
			}
			got++
		}
	}
	if got != len(names) {
		t.Errorf("-R: %d services added, want %d", got, len(names))
	}
	// DPVS's conhash hash target reaches the dataplane as a scheduler flag
	f.reset()
	r = runCmd(t, sock, "", "-A -u 10.0.0.1:443 -s conhash --hash-target qid")
	want := &pb.Service{Key: &pb.ServiceKey{Proto: "UDP", Addr: "10.0.0.1", Port: 443}, Sched: "conhash", SchedFlags: []string{"qid"}}
	if r.code != 0 || len(f.requests) != 1 || !proto.Equal(f.requests[0], want) {
		t.Errorf("--hash-target qid: %+v %v", r, f.requests)
	}
	if r := runCmd(t, sock, "", "-A -t 10.0.0.1:443 -s conhash --hash-target qid"); r.code != 2 || r.stderr != "qid hash can only be set in udp service\n" {
		t.Errorf("qid on TCP: %+v", r)
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
