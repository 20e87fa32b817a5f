package session

import (
	"testing"
	"time"
)

func TestTimeoutNamesAndMerge(t *testing.T) {
	want := []string{"none", "established", "syn_sent", "syn_recv", "fin_wait", "time_wait",
		"close", "close_wait", "last_ack", "listen", "synack", "udp"}
	names := TimeoutNames()
	if len(names) != len(want) {
		t.Fatalf("names %v", names)
	}
	def := DefaultTimeouts()
	var ch Timeouts
	for i, n := range want {
		if names[i] != n {
			t.Errorf("state %d: name %q, want %q", i, names[i], n)
		}
		f := ch.Field(n)
		if f == nil {
			t.Fatalf("Field(%q) = nil", n)
		}
		*f = time.Duration(i+1) * time.Second
	}
	if ch.Field("fin") != nil {
		t.Error("Field of an unknown name")
	}
	if got := def.Merge(ch); got != ch {
		t.Errorf("Merge of all fields = %+v, want %+v", got, ch)
	}
	for i := range want {
		if got := ch.For(State(i)); got != time.Duration(i+1)*time.Second {
			t.Errorf("state %v: %v", State(i), got)
		}
	}
	one := def.Merge(Timeouts{SynRecv: 7 * time.Second})
	exp := def
	exp.SynRecv = 7 * time.Second
	if one != exp {
		t.Errorf("Merge of SynRecv = %+v", one)
	}
}
