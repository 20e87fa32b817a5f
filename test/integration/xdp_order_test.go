package integration

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// unlimitedOutOfOrder runs an unlimited iperf3 stream (secs seconds) from
// the client to the VIP's port 5201 while tcpdump records the segments
// arriving at rs1, and returns how many of them arrived after a segment
// the client sent later (reorderedIDs), with the sender's retransmissions and the Mbit/s received. The
// fast path must not reorder when a connection moves onto it: segments
// still queued for the worker used to be overtaken by the program.
// during, when not nil, runs while the stream does, until its channel
// closes.
func unlimitedOutOfOrder(t *testing.T, l *Lab, secs string, during func(stop <-chan struct{})) (ooo, retr int, mbits float64) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is missing (apt-get install tshark)")
	}
	pcap := filepath.Join(t.TempDir(), "rs1.pcap")
	dump := exec.Command("ip", "netns", "exec", l.Env["RS1_NS"], "tcpdump", "-U", "-n", "-i", "eth0", "-s", "96", "-w", pcap, "tcp port 5201")
	stderr, err := dump.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dump.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	defer dump.Process.Kill()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "listening on") { // capturing from here on
	}
	go func() {
		for sc.Scan() {
		}
	}()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		if during != nil {
			during(stop)
		}
	}()
	out, err := exec.Command("ip", "netns", "exec", l.Env["CLIENT_NS"], "iperf3", "-c", l.Env["VIP"], "-p", "5201", "-t", secs, "-J").CombinedOutput()
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("iperf3 unlimited through the VIP: %v\n%.2000s", err, out)
	}
	var res iperfReport
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("iperf3 output: %v", err)
	}
	dump.Process.Signal(syscall.SIGINT) // tcpdump writes what it has and exits
	dump.Wait()
	got, err := exec.Command("tshark", "-r", pcap, "-Y", "tcp.dstport == 5201 && tcp.len > 0", "-T", "fields", "-e", "tcp.srcport", "-e", "ip.id").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	return reorderedIDs(t, string(got)), int(res.End.SumSent.Retransmits), res.End.SumReceived.BitsPerSecond / 1e6
}

// reorderedIDs counts the segments in fields (tshark's tcp.srcport and
// ip.id, one segment a line, in arrival order) that arrive after a
// segment of the same connection the client sent later. Linux numbers the
// segments of a connection with consecutive IP IDs (retransmissions
// included: they take new ones), so an ID behind the connection's one
// before it, in 16-bit serial arithmetic, is a segment overtaken on the
// way. Losses and retransmissions are not reordering and do not count
// (tshark's out-of-order analysis counts some fast retransmissions).
func reorderedIDs(t *testing.T, fields string) int {
	t.Helper()
	var n, seen int
	last := map[string]uint16{}
	for _, line := range strings.Split(strings.TrimSpace(fields), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("tshark line %q", line)
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 16)
		if err != nil {
			t.Fatalf("ip.id %q", f[1])
		}
		id := uint16(v)
		prev, ok := last[f[0]]
		switch {
		case !ok || int16(id-prev) > 0:
			last[f[0]] = id
		default:
			n++
		}
		seen++
	}
	if seen < 100 {
		t.Fatalf("only %d data segments captured at rs1", seen)
	}
	return n
}
