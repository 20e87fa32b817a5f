package session

import (
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/header"
)

// lvsTable is the "normal" tcp_states table of Linux's ip_vs_proto_tcp.c,
// transcribed as text: per direction, one line per flag row; columns are the
// current state in LVS order.
const lvsTable = `
        NO ES SS SR FW TW CL CW LA LI SA
in   syn SR ES ES SR SR SR SR SR SR SR SR
in   fin CL CW SS TW TW TW CL CW LA LI TW
in   ack ES ES SS ES FW TW CL CW CL LI ES
in   rst CL CL CL SR CL CL CL CL LA LI SR
out  syn SS ES SS SR SS SS SS SS SS LI SR
out  fin TW FW SS TW FW TW CL TW LA LI TW
out  ack ES ES SS ES FW TW CL CW LA ES ES
out  rst CL CL SS CL CL TW CL CL CL CL CL
only syn SR ES ES SR SR SR SR SR SR SR SR
only fin CL FW SS TW FW TW CL CW LA LI TW
only ack ES ES SS ES FW TW CL CW CL LI ES
only rst CL CL CL SR CL CL CL CL LA LI CL
`

// gvsCells are the cells where GVS's table differs from lvsTable
// (state.go): a server's ACK does not establish a SYN_RECV conn.
var gvsCells = []struct {
	dir  Direction
	row  string
	from State
	to   State
}{
	{Out, "ack", StateSynRecv, StateSynRecv},
}

var shortNames = map[string]State{
	"NO": StateNone, "ES": StateEstablished, "SS": StateSynSent, "SR": StateSynRecv,
	"FW": StateFinWait, "TW": StateTimeWait, "CL": StateClose, "CW": StateCloseWait,
	"LA": StateLastAck, "LI": StateListen, "SA": StateSynAck,
}

// expectedTable parses lvsTable into want[dir][flag][state], with
// gvsCells applied.
func expectedTable(t *testing.T) map[Direction]map[string][]State {
	t.Helper()
	dirs := map[string]Direction{"in": In, "out": Out, "only": InputOnly}
	want := map[Direction]map[string][]State{}
	lines := strings.Split(strings.TrimSpace(lvsTable), "\n")
	for i, name := range strings.Fields(lines[0]) {
		if shortNames[name] != State(i) {
			t.Fatalf("column %d is %s", i, name)
		}
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		d := dirs[f[0]]
		if want[d] == nil {
			want[d] = map[string][]State{}
		}
		for _, n := range f[2:] {
			s, ok := shortNames[n]
			if !ok {
				t.Fatalf("bad state %q", n)
			}
			want[d][f[1]] = append(want[d][f[1]], s)
		}
		if len(want[d][f[1]]) != numTCP {
			t.Fatalf("row %q has %d states", line, len(want[d][f[1]]))
		}
	}
	for _, c := range gvsCells {
		if want[c.dir][c.row][c.from] == c.to {
			t.Fatalf("GVS cell %v %s %v → %v is LVS's own", c.dir, c.row, c.from, c.to)
		}
		want[c.dir][c.row][c.from] = c.to
	}
	return want
}

// TestTransitionTable checks every TCP state × direction × flags byte
// against the LVS table (with GVS's cells) and its precedence RST > SYN > FIN > ACK; a
// segment without any of them closes the conn.
func TestTransitionTable(t *testing.T) {
	want := expectedTable(t)
	for _, dir := range []Direction{In, Out, InputOnly} {
		for s := range State(numTCP) {
			for fl := range 256 {
				flags := uint8(fl)
				var exp State
				switch {
				case flags&header.TCPFlagRST != 0:
					exp = want[dir]["rst"][s]
				case flags&header.TCPFlagSYN != 0:
					exp = want[dir]["syn"][s]
				case flags&header.TCPFlagFIN != 0:
					exp = want[dir]["fin"][s]
				case flags&header.TCPFlagACK != 0:
					exp = want[dir]["ack"][s]
				default:
					exp = StateClose
				}
				c := Conn{Proto: header.ProtoTCP, State: s}
				got, ch := Transition(&c, dir, flags)
				if got != exp || c.State != exp {
					t.Fatalf("%v %v flags %#02x: got %v (conn %v), want %v", dir, s, flags, got, c.State, exp)
				}
				wantCh := Unchanged
				if s.Active() && !exp.Active() {
					wantCh = Deactivated
				} else if !s.Active() && exp.Active() {
					wantCh = Activated
				}
				if ch != wantCh {
					t.Fatalf("%v %v flags %#02x: change %v, want %v", dir, s, flags, ch, wantCh)
				}
			}
		}
	}
}

func TestNoOutputFlag(t *testing.T) {
	// with FlagNoOutput, In uses the input-only table (FIN on ES → FW,
	// where the input table says CW) until an Out packet clears the flag.
	c := Conn{Proto: header.ProtoTCP, State: StateEstablished, Flags: FlagNoOutput}
	if s, _ := Transition(&c, In, header.TCPFlagFIN|header.TCPFlagACK); s != StateFinWait || c.Flags&FlagNoOutput == 0 {
		t.Fatalf("In FIN with NoOutput: %v flags %b", s, c.Flags)
	}
	c.State = StateEstablished
	if s, _ := Transition(&c, Out, header.TCPFlagACK); s != StateEstablished || c.Flags&FlagNoOutput != 0 {
		t.Fatalf("Out ACK must clear NoOutput: %v flags %b", s, c.Flags)
	}
	if s, _ := Transition(&c, In, header.TCPFlagFIN|header.TCPFlagACK); s != StateCloseWait {
		t.Fatalf("In FIN after an output packet: %v, want CLOSE_WAIT", s)
	}
}

type step struct {
	dir    Direction
	flags  uint8
	state  State
	change Change
}

func TestTransitionSequences(t *testing.T) {
	const syn, ack, fin, rst, psh = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagFIN, header.TCPFlagRST, 0x08
	tests := []struct {
		name  string
		steps []step
	}{
		{"handshake", []step{
			{In, syn, StateSynRecv, Unchanged},
			{Out, syn | ack, StateSynRecv, Unchanged},
			{In, ack, StateEstablished, Activated},
			{In, psh | ack, StateEstablished, Unchanged},
			{Out, psh | ack, StateEstablished, Unchanged},
		}},
		{"client closes first", []step{
			{In, syn, StateSynRecv, Unchanged},
			{Out, syn | ack, StateSynRecv, Unchanged},
			{In, ack, StateEstablished, Activated},
			{In, fin | ack, StateCloseWait, Deactivated},
			{Out, ack, StateCloseWait, Unchanged},
			{Out, fin | ack, StateTimeWait, Unchanged},
			{In, ack, StateTimeWait, Unchanged},
		}},
		{"server closes first", []step{
			{In, syn, StateSynRecv, Unchanged},
			{In, ack, StateEstablished, Activated},
			{Out, fin | ack, StateFinWait, Deactivated},
			{In, ack, StateFinWait, Unchanged},
			{In, fin | ack, StateTimeWait, Unchanged},
			{Out, ack, StateTimeWait, Unchanged},
		}},
		{"client reset", []step{
			{In, syn, StateSynRecv, Unchanged},
			{In, ack, StateEstablished, Activated},
			{In, rst | ack, StateClose, Deactivated},
		}},
		{"server refuses", []step{
			{In, syn, StateSynRecv, Unchanged},
			{Out, rst | ack, StateClose, Unchanged},
		}},
		{"client RST in SYN_RECV is ignored, new SYN reopens a closed conn", []step{
			{In, syn, StateSynRecv, Unchanged},
			{In, rst, StateSynRecv, Unchanged},
			{Out, rst, StateClose, Unchanged},
			{In, syn, StateSynRecv, Unchanged},
		}},
		{"a server's ACK to a half-open conn does not establish it", []step{
			{In, syn, StateSynRecv, Unchanged},
			{Out, ack, StateSynRecv, Unchanged},
			{Out, syn | ack, StateSynRecv, Unchanged},
			{In, ack, StateEstablished, Activated},
		}},
		{"null flags close", []step{
			{In, syn, StateSynRecv, Unchanged},
			{In, ack, StateEstablished, Activated},
			{In, psh, StateClose, Deactivated},
		}},
		{"DR input only", []step{
			{InputOnly, syn, StateSynRecv, Unchanged},
			{InputOnly, ack, StateEstablished, Activated},
			{InputOnly, fin | ack, StateFinWait, Deactivated},
			{InputOnly, ack, StateFinWait, Unchanged},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Conn{Proto: header.ProtoTCP}
			for i, st := range tc.steps {
				s, ch := Transition(&c, st.dir, st.flags)
				if s != st.state || ch != st.change {
					t.Fatalf("step %d (%v %#02x): %v %v, want %v %v", i, st.dir, st.flags, s, ch, st.state, st.change)
				}
			}
		})
	}
}

func TestUDPAndUnknownStatesUnchanged(t *testing.T) {
	for _, s := range []State{StateUDP, 12, 200} {
		c := Conn{Proto: header.ProtoUDP, State: s}
		if got, ch := Transition(&c, In, header.TCPFlagSYN); got != s || ch != Unchanged {
			t.Errorf("state %d: %v %v", s, got, ch)
		}
	}
	c := Conn{Proto: header.ProtoTCP}
	if got, _ := Transition(&c, Direction(3), header.TCPFlagSYN); got != StateNone {
		t.Errorf("bad direction changed state to %v", got)
	}
}

func TestStateNames(t *testing.T) {
	want := []string{"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
		"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK", "UDP"}
	for i, n := range want {
		if got := State(i).String(); got != n {
			t.Errorf("State(%d) = %q, want %q", i, got, n)
		}
		if s, ok := ParseState(n); !ok || s != State(i) {
			t.Errorf("ParseState(%q) = %v %v", n, s, ok)
		}
	}
	if State(12).String() != "ERR!" {
		t.Error("unknown state name")
	}
	if _, ok := ParseState("BOGUS"); ok {
		t.Error("ParseState accepted BOGUS")
	}
	for s := range State(numStates) {
		if s.Active() != (s == StateEstablished) {
			t.Errorf("%v.Active() = %v", s, s.Active())
		}
	}
	if a, i := Activated.Deltas(); a != 1 || i != -1 {
		t.Error("Activated.Deltas")
	}
	if a, i := Deactivated.Deltas(); a != -1 || i != 1 {
		t.Error("Deactivated.Deltas")
	}
	if a, i := Unchanged.Deltas(); a != 0 || i != 0 {
		t.Error("Unchanged.Deltas")
	}
}
