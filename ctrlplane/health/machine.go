package health

// Machine is the rise/fall state of one check. A check that is up goes down
// after Fall consecutive failures; a check that is down comes up after Rise
// consecutive successes. A result agreeing with the current state resets
// the count, so isolated failures (or successes) never flip a check.
//
// keepalived's words map onto it as follows: retry N is Fall = N+1 (the
// first failure plus N retries), delay_before_retry is the pace while a
// transition is pending (Pending), and keepalived's immediate recovery is
// Rise = 1. alpha starts a check down.
type Machine struct {
	rise, fall int
	up         bool
	streak     int // consecutive results contrary to up
}

// NewMachine returns a machine in state up with the given counts (< 1 is 1).
func NewMachine(rise, fall int, up bool) Machine {
	return Machine{rise: max(rise, 1), fall: max(fall, 1), up: up}
}

// Observe records one result and reports whether the state changed.
func (m *Machine) Observe(ok bool) bool {
	if ok == m.up {
		m.streak = 0
		return false
	}
	m.streak++
	need := m.rise
	if m.up {
		need = m.fall
	}
	if m.streak < need {
		return false
	}
	m.up, m.streak = ok, 0
	return true
}

// Up reports the current state.
func (m *Machine) Up() bool { return m.up }

// Pending reports whether a transition is under way: results contrary to
// the state have been seen but not yet enough of them.
func (m *Machine) Pending() bool { return m.streak > 0 }
