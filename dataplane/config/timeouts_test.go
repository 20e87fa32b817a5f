package config

import (
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/session"
)

func TestIPVSTimeouts(t *testing.T) {
	c, err := Parse([]byte(good + `ipvs:
  timeouts: {established: 600s, syn_recv: 5s, fin_wait: 30s, time_wait: 10s, close: 3s, close_wait: 20s,
    last_ack: 15s, listen: 50s, synack: 40s, syn_sent: 25s, udp: 45s, none: 1s}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := session.Timeouts{Established: 600 * time.Second, SynRecv: 5 * time.Second, FinWait: 30 * time.Second,
		TimeWait: 10 * time.Second, Close: 3 * time.Second, CloseWait: 20 * time.Second, LastAck: 15 * time.Second,
		Listen: 50 * time.Second, SynAck: 40 * time.Second, SynSent: 25 * time.Second, UDP: 45 * time.Second, None: time.Second}
	if got := c.IPVS.SessionTimeouts(); got != want {
		t.Errorf("SessionTimeouts = %+v\nwant %+v", got, want)
	}
	c, err = Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.IPVS.SessionTimeouts(); got != (session.Timeouts{}) {
		t.Errorf("without ipvs.timeouts: %+v, want all zero (the defaults)", got)
	}
	for _, c := range []struct{ yaml, want string }{
		{"{synrecv: 5s}", "ipvs.timeouts.synrecv: not a connection state: use none, established, syn_sent, syn_recv"},
		{"{udp: -5s}", `"-5s" is not a duration`},
		{"{close: 0s}", "ipvs.timeouts.close: 0s: use a positive duration"},
		{"{time_wait: 10000h}", "ipvs.timeouts.time_wait: 10000h0m0s is too long: use at most"},
		{"{established: fifteen}", `"fifteen" is not a duration`},
	} {
		_, err := Parse([]byte(good + "ipvs:\n  timeouts: " + c.yaml + "\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.yaml, err, c.want)
		}
	}
}
