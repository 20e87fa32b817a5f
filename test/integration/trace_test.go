package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// dpipTrace is a running bin/dpip trace --json.
type dpipTrace struct {
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	records chan *pb.TraceRecord
	done    chan error
}

// startTrace runs dpip trace --json ARGS and returns once it reports the
// trace armed.
func (l *Lab) startTrace(args ...string) *dpipTrace {
	l.t.Helper()
	tr := &dpipTrace{records: make(chan *pb.TraceRecord, 16), done: make(chan error, 1)}
	tr.cmd = exec.Command(filepath.Join(l.root, "bin", "dpip"), append([]string{"-S", l.Env["DP_SOCKET"], "trace", "--json"}, args...)...)
	errR, errW := io.Pipe()
	outR, outW := io.Pipe()
	tr.cmd.Stderr, tr.cmd.Stdout = errW, outW
	if err := tr.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	armed := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errR)
		first := true
		for sc.Scan() {
			tr.stderr.WriteString(sc.Text() + "\n")
			if first && strings.HasPrefix(sc.Text(), "tracing ") {
				first = false
				close(armed)
			}
		}
	}()
	go func() {
		dec := json.NewDecoder(outR)
		for {
			r := new(pb.TraceRecord)
			if dec.Decode(r) != nil {
				close(tr.records)
				return
			}
			tr.records <- r
		}
	}()
	go func() { err := tr.cmd.Wait(); errW.Close(); outW.Close(); tr.done <- err }()
	l.t.Cleanup(func() { tr.cmd.Process.Kill() })
	select {
	case <-armed:
	case err := <-tr.done:
		l.t.Fatalf("dpip trace %v ended before arming: %v\n%s", args, err, tr.stderr.String())
	case <-time.After(20 * time.Second):
		l.t.Fatalf("dpip trace %v did not arm", args)
	}
	return tr
}

func stagesOf(r *pb.TraceRecord) string {
	var s []string
	for _, st := range r.Stages {
		s = append(s, st.Stage)
	}
	return strings.Join(s, " ")
}

func stageVerdict(r *pb.TraceRecord, stage string) string {
	for _, st := range r.Stages {
		if st.Stage == stage {
			return st.Verdict
		}
	}
	return ""
}

// TestTraceFullNAT: dpip trace follows an HTTP exchange through FullNAT.
// The client's SYN is parsed, misses the connection table, is scheduled
// onto a real server, rewritten to the local address, routed, resolved
// and transmitted; that real server is the one that answers the request
// and the one ipvsadm -L -n -c lists for the connection; the real server's
// SYN-ACK hits the connection in the out direction on the worker owning
// its local port (after a hand-over when another worker received it). A
// second client's SYN is left out by the filter.
func TestTraceFullNAT(t *testing.T) {
	l := fullNATLab(t)
	client, vip, lip := l.Env["CLIENT_IP"], l.Env["VIP"], l.Env["LIP"]
	client2 := "10.1.0.4"
	l.MustNS(l.Env["CLIENT_NS"], "ip", "addr", "add", client2+"/24", "dev", l.Env["CLIENT_IF"])
	// a few exchanges first, so that the neighbours are mostly resolved
	for i := 0; i < 6; i++ {
		l.curlFrom(client)
		l.curlFrom(client2)
	}
	// the SYN from client (not client2), and SYN-ACKs from the real servers
	tr := l.startTrace("-c", "8", "tcp[tcpflags] & tcp-syn != 0 and (src host "+client+" and dst port 80 or src port 8080)")
	out, err := exec.Command(filepath.Join(l.root, "bin", "dpip"), "-S", l.Env["DP_SOCKET"], "trace", "-c", "1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another trace is running") {
		t.Errorf("second trace: %v\n%s", err, out)
	}
	server, peer := l.curlFrom(client)
	l.curlFrom(client2)
	rs := l.Env["RS1_IP"] + ":8080"
	if server == "rs2" {
		rs = l.Env["RS2_IP"] + ":8080"
	}

	var syn, synAck *pb.TraceRecord
	var all []*pb.TraceRecord
	timeout := time.After(20 * time.Second)
	for syn == nil || synAck == nil {
		select {
		case r, ok := <-tr.records:
			if !ok {
				t.Fatalf("dpip trace ended after %d records: %v\n%s", len(all), <-tr.done, tr.stderr.String())
			}
			all = append(all, r)
			switch {
			case strings.HasPrefix(r.Packet, "IP "+client+":") && strings.Contains(r.Packet, "TCP [S]"):
				syn = r
			case strings.Contains(r.Packet, " > "+peer+": TCP [S.]") && strings.HasPrefix(stageVerdict(r, "lookup"), "hit out"):
				synAck = r
			}
		case <-timeout:
			t.Fatalf("no SYN and SYN-ACK traced in 20 s; got %d records\n%s", len(all), tr.stderr.String())
		}
	}
	tr.cmd.Process.Signal(syscall.SIGINT)
	if err := <-tr.done; err != nil {
		t.Errorf("dpip trace: %v\n%s", err, tr.stderr.String())
	}
	for r := range tr.records {
		all = append(all, r)
	}
	for _, r := range all {
		if strings.HasPrefix(r.Packet, "IP "+client2+":") {
			t.Errorf("a packet of %s was traced: %s", client2, r.Packet)
		}
	}

	// the first packet to a real server waits for its neighbour: its trace
	// ends held; later ones are transmitted
	held := strings.HasSuffix(stageVerdict(syn, "neighbour"), "unresolved: held, resolution sent")
	if got := stagesOf(syn); !held && got != "parse lookup schedule rewrite route neighbour transmit" ||
		held && got != "parse lookup schedule rewrite route neighbour" {
		t.Errorf("SYN stages %q (neighbour %q)", got, stageVerdict(syn, "neighbour"))
	}
	if syn.Port != "dp0" || stageVerdict(syn, "lookup") != "miss" || stageVerdict(syn, "parse") != "IPv4 on dp0" {
		t.Errorf("SYN received on %s, parse %q, lookup %q", syn.Port, stageVerdict(syn, "parse"), stageVerdict(syn, "lookup"))
	}
	if syn.RealServer != rs {
		t.Errorf("trace scheduled the SYN onto %s, but %s answered", syn.RealServer, server)
	}
	if want := "in: " + peer + " > " + rs; stageVerdict(syn, "rewrite") != want {
		t.Errorf("SYN rewrite %q, want %q (the real server saw %s)", stageVerdict(syn, "rewrite"), want, peer)
	}
	if v := stageVerdict(syn, "transmit"); !held && !strings.HasPrefix(v, "port "+l.Env["LB_RS_PORT"]+" queue ") {
		t.Errorf("SYN transmit %q, want the real servers' port %s", v, l.Env["LB_RS_PORT"])
	}
	if !strings.HasPrefix(peer, lip+":") {
		t.Errorf("the real server's peer %s is not the local address %s", peer, lip)
	}
	// the connection as ipvsadm lists it
	cport := strings.TrimPrefix(strings.Fields(syn.Packet)[1], client+":")
	// pro expire state source virtual [local] destination
	var listed, local string
	listing := l.Ipvsadm("-L", "-n", "-c")
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[3] == client+":"+cport && f[4] == vip+":80" {
			listed = f[len(f)-1]
			if len(f) == 7 {
				local = f[5]
			}
		}
	}
	if listed != syn.RealServer || local != "" && local != peer {
		t.Errorf("ipvsadm -L -n -c lists %s:%s through %s to %s, the trace says %s through %s:\n%s", client, cport, local, listed,
			syn.RealServer, peer, listing)
	}
	// the client's neighbour entry is fresh (its SYN just came in)
	if got := stagesOf(synAck); got != "parse lookup rewrite route neighbour transmit" {
		t.Errorf("SYN-ACK stages %q", got)
	}
	if synAck.RealServer != rs || !strings.HasPrefix(synAck.Packet, "IP "+rs+" > "+peer+":") {
		t.Errorf("SYN-ACK %s: real server %s, want %s to %s", synAck.Packet, synAck.RealServer, rs, peer)
	}
	if want := "out: " + vip + ":80 > " + client + ":" + cport; stageVerdict(synAck, "rewrite") != want {
		t.Errorf("SYN-ACK rewrite %q, want %q", stageVerdict(synAck, "rewrite"), want)
	}
	for _, r := range all {
		if r.FromWorker >= 0 && !strings.HasPrefix(stagesOf(r), "parse lookup rewrite route neighbour") {
			t.Errorf("handed-over packet %s: %q", r.Packet, stagesOf(r))
		}
		if stagesOf(r) == "parse lookup redirect" && !strings.HasPrefix(stageVerdict(r, "redirect"), "to worker ") {
			t.Errorf("redirect verdict %q", stageVerdict(r, "redirect"))
		}
		t.Logf("traced: worker %d port %s from %d: %s: %s", r.Worker, r.Port, r.FromWorker, r.Packet, stagesOf(r))
	}
}
