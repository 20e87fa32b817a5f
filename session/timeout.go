package session

import (
	"fmt"
	"strings"
	"time"
)

// Timeouts are the idle timeouts per state: a conn expires when it has
// seen no packet for the timeout of its current state. In a Table's
// Options, a zero field means the default.
type Timeouts struct {
	None        time.Duration
	Established time.Duration // ipvsadm --set tcp
	SynSent     time.Duration
	SynRecv     time.Duration
	FinWait     time.Duration // ipvsadm --set tcpfin
	TimeWait    time.Duration
	Close       time.Duration
	CloseWait   time.Duration
	LastAck     time.Duration
	Listen      time.Duration
	SynAck      time.Duration
	UDP         time.Duration // ipvsadm --set udp
}

// DefaultTimeouts returns the Linux IPVS defaults (tcp_timeouts and
// udp_timeouts in net/netfilter/ipvs): NONE 2s, ESTABLISHED 15m, SYN_SENT
// 2m, SYN_RECV 1m, FIN_WAIT 2m, TIME_WAIT 2m, CLOSE 10s, CLOSE_WAIT 1m,
// LAST_ACK 30s, LISTEN 2m, SYNACK 2m, UDP 5m. (DPVS ships shorter ones.)
func DefaultTimeouts() Timeouts {
	return Timeouts{
		None:        2 * time.Second,
		Established: 15 * time.Minute,
		SynSent:     2 * time.Minute,
		SynRecv:     1 * time.Minute,
		FinWait:     2 * time.Minute,
		TimeWait:    2 * time.Minute,
		Close:       10 * time.Second,
		CloseWait:   1 * time.Minute,
		LastAck:     30 * time.Second,
		Listen:      2 * time.Minute,
		SynAck:      2 * time.Minute,
		UDP:         5 * time.Minute,
	}
}

// WithIPVSAdm returns t changed as `ipvsadm --set tcp tcpfin udp` changes
// the kernel's: tcp sets Established, tcpfin FinWait, udp UDP, and a zero
// value leaves its timeout unchanged.
func (t Timeouts) WithIPVSAdm(tcp, tcpfin, udp time.Duration) Timeouts {
	if tcp != 0 {
		t.Established = tcp
	}
	if tcpfin != 0 {
		t.FinWait = tcpfin
	}
	if udp != 0 {
		t.UDP = udp
	}
	return t
}

// Merge returns t with the non-zero fields of ch: the API's and the
// configuration's "0 keeps the value".
func (t Timeouts) Merge(ch Timeouts) Timeouts {
	f := t.fields()
	for i, c := range ch.fields() {
		if *c.d != 0 {
			*f[i].d = *c.d
		}
	}
	return t
}

// TimeoutName returns the name of state s's timeout in configuration
// files: the LVS state name in lower case (established, syn_recv, udp …).
func TimeoutName(s State) string { return strings.ToLower(s.String()) }

// TimeoutNames returns every timeout name, in State order.
func TimeoutNames() []string {
	out := make([]string, numStates)
	for i := range out {
		out[i] = TimeoutName(State(i))
	}
	return out
}

// Field returns the timeout named name (see TimeoutName), or nil.
func (t *Timeouts) Field(name string) *time.Duration {
	for i, f := range t.fields() {
		if TimeoutName(State(i)) == name {
			return f.d
		}
	}
	return nil
}

// fields returns pointers to the timeouts indexed by State, with the
// field names for error messages.
func (t *Timeouts) fields() [numStates]struct {
	d    *time.Duration
	name string
} {
	return [numStates]struct {
		d    *time.Duration
		name string
	}{
		StateNone: {&t.None, "None"}, StateEstablished: {&t.Established, "Established"},
		StateSynSent: {&t.SynSent, "SynSent"}, StateSynRecv: {&t.SynRecv, "SynRecv"},
		StateFinWait: {&t.FinWait, "FinWait"}, StateTimeWait: {&t.TimeWait, "TimeWait"},
		StateClose: {&t.Close, "Close"}, StateCloseWait: {&t.CloseWait, "CloseWait"},
		StateLastAck: {&t.LastAck, "LastAck"}, StateListen: {&t.Listen, "Listen"},
		StateSynAck: {&t.SynAck, "SynAck"}, StateUDP: {&t.UDP, "UDP"},
	}
}

// For returns the timeout of state s (that of NONE for an unknown state).
func (t Timeouts) For(s State) time.Duration {
	if int(s) >= numStates {
		s = StateNone
	}
	return *t.fields()[s].d
}

// WithDefaults returns t with zero fields replaced by the defaults.
func (t Timeouts) WithDefaults() Timeouts { return t.withDefaults() }

// withDefaults returns t with zero fields replaced by the defaults.
func (t Timeouts) withDefaults() Timeouts {
	def := DefaultTimeouts()
	df := def.fields()
	for i, f := range t.fields() {
		if *f.d == 0 {
			*f.d = *df[i].d
		}
	}
	return t
}

// maxTimeoutTicks keeps expiry times within half the uint32 tick space, so
// that serial comparisons stay meaningful.
const maxTimeoutTicks = 1<<31 - 1

// MaxTimeout returns the longest timeout a table with the given tick takes.
func MaxTimeout(tick time.Duration) time.Duration { return maxTimeoutTicks * tick }

// ticks validates t (after defaults) against the tick length and converts
// it to ticks, rounding up. The error names the field and the fix.
func (t Timeouts) ticks(tick time.Duration) ([numStates]uint32, error) {
	var out [numStates]uint32
	t = t.withDefaults()
	for i, f := range t.fields() {
		d := *f.d
		if d < 0 {
			return out, fmt.Errorf("session: Timeouts.%s (%s) is %v: must be positive (0 means the default, %v)",
				f.name, TimeoutName(State(i)), d, DefaultTimeouts().For(State(i)))
		}
		n := (d + tick - 1) / tick
		if n > maxTimeoutTicks {
			return out, fmt.Errorf("session: Timeouts.%s (%s) is %v: must be at most %v at a tick of %v",
				f.name, TimeoutName(State(i)), d, time.Duration(maxTimeoutTicks)*tick, tick)
		}
		out[i] = uint32(n)
	}
	return out, nil
}

// Validate reports whether t is usable at the default tick, naming the
// first bad field.
func (t Timeouts) Validate() error {
	_, err := t.ticks(DefaultTick)
	return err
}
