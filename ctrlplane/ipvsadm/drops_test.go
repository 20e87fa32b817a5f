package ipvsadm

import (
	"strings"
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// TestDropsListing: -L --drops prints each service's refusal counters in
// --stats's columns and number format (--exact too), no real-server lines,
// 0 for a service without admission counters.
func TestDropsListing(t *testing.T) {
	svcs := []*pb.Service{
		{Key: key("TCP", "10.0.0.1", 80), Sched: "rr",
			Admission: &pb.AdmissionStats{Denied: 12, NotAllowed: 3, RateLimited: 123456789, SourceLimited: 4},
			Dests:     []*pb.Dest{{Addr: "192.168.0.1", Port: 80, Fwd: "FullNat", Weight: 1}}},
		{Key: key("UDP", "10.0.0.1", 53), Sched: "rr"},
	}
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port              Denied NotAllow  RateLim   SrcLim\n" +
		"TCP  10.0.0.1:80                        12        3  123456K        4\n" +
		"UDP  10.0.0.1:53                         0        0        0        0\n"
	if got := (Lister{Format: FmtNumeric | FmtDrops}).ListAll(4096, svcs); got != want {
		t.Errorf("-L -n --drops:\n%s\nwant:\n%s", got, want)
	}
	got := Lister{Format: FmtNumeric | FmtDrops | FmtExact}.ListAll(4096, svcs)
	if !strings.Contains(got, "TCP  10.0.0.1:80                        12        3 123456789        4\n") {
		t.Errorf("-L -n --drops --exact:\n%s", got)
	}

	c, err := Parse(args("-L -n --drops"), ParseOptions{})
	if err != nil || c.Cmd != CmdList || c.Format&FmtDrops == 0 {
		t.Fatalf("-L -n --drops: %+v %v", c, err)
	}
	if _, err := Parse(args("-A -t 10.0.0.1:80 --drops"), ParseOptions{}); err == nil {
		t.Error("-A --drops accepted")
	}
}
