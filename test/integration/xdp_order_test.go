package integration

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// unlimitedOutOfOrder runs an unlimited iperf3 stream (secs seconds) from
// the client to the VIP's port 5201 while tcpdump records the segments
// arriving at rs1, and returns what tshark counts as out of order among
// them, with the sender's retransmissions and the Mbit/s received. The
// fast path must not reorder when a connection moves onto it: segments
// still queued for the worker used to be overtaken by the program.
func unlimitedOutOfOrder(t *testing.T, l *Lab, secs string) (ooo, retr int, mbits float64) {
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
	out, err := exec.Command("ip", "netns", "exec", l.Env["CLIENT_NS"], "iperf3", "-c", l.Env["VIP"], "-p", "5201", "-t", secs, "-J").CombinedOutput()
	if err != nil {
		t.Fatalf("iperf3 unlimited through the VIP: %v\n%.2000s", err, out)
	}
	var res struct {
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("iperf3 output: %v", err)
	}
	dump.Process.Signal(syscall.SIGINT) // tcpdump writes what it has and exits
	dump.Wait()
	got, err := exec.Command("tshark", "-r", pcap, "-Y", "tcp.analysis.out_of_order && tcp.dstport == 5201", "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	return strings.Count(string(got), "\n"), res.End.SumSent.Retransmits, res.End.SumReceived.BitsPerSecond / 1e6
}
