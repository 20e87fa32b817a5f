package session

// The LVS connection state machine (net/netfilter/ipvs/ip_vs_proto_tcp.c,
// the "normal" table, not the secure_tcp one): the next TCP state is looked
// up by direction (input, output, input-only), by the segment's flags with
// the precedence RST > SYN > FIN > ACK, and by the current state. A segment
// with none of these flags moves the conn to CLOSE, as in LVS. UDP conns
// have the single state "UDP" (LVS IP_VS_UDP_S_NORMAL) and never change it.
//
// One cell differs from LVS: a real server's ACK (output, no SYN, FIN or
// RST) leaves a SYN_RECV conn in SYN_RECV, where LVS makes it ESTABLISHED.
// Only the client's ACK completes the handshake. In a real handshake the
// client's ACK is the one that does it; a server sends a bare ACK to a
// SYN_RECV conn when the conn's local address and port (FullNAT) or the
// client's (NAT) still name an old half-open connection at the server,
// whose answer to the new SYN is an ACK for the old one. Under a SYN
// flood from spoofed sources that is most reused local ports, and with
// LVS's cell each such conn of the flood became ESTABLISHED: no longer
// evictable (pressure.go) and kept for the ESTABLISHED timeout, so the
// flood filled the table with them.

import "github.com/gvs-lb/gvs/header"

// State is a connection's protocol state.
type State uint8

// States, in LVS order (IP_VS_TCP_S_*), then UDP.
const (
	StateNone State = iota
	StateEstablished
	StateSynSent
	StateSynRecv
	StateFinWait
	StateTimeWait
	StateClose
	StateCloseWait
	StateLastAck
	StateListen
	StateSynAck
	StateUDP

	numStates = iota
	numTCP    = int(StateUDP) // TCP states are [0, numTCP)
)

var stateNames = [numStates]string{
	"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK", "UDP",
}

// String returns the state's name as ipvsadm -lc prints it.
func (s State) String() string {
	if int(s) < numStates {
		return stateNames[s]
	}
	return "ERR!"
}

// ParseState returns the state named name (as String prints it).
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name {
			return State(i), true
		}
	}
	return 0, false
}

// Active reports whether a conn in state s counts in its destination's
// ActiveConn; every other conn counts in InActConn. Only ESTABLISHED is
// active, as in classic LVS and DPVS (Linux since 4.6 also counts SYN_SENT,
// SYN_RECV and SYNACK as active). UDP conns are inactive, as in LVS where
// they never leave their initial inactive state.
func (s State) Active() bool { return s == StateEstablished }

// Direction is the direction of a packet relative to its conn.
type Direction uint8

const (
	In        Direction = iota // client → real server (matched the in key)
	Out                        // real server → client (matched the out key)
	InputOnly                  // client → real server when replies bypass the balancer (DR, tunnel)
)

func (d Direction) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	case InputOnly:
		return "input-only"
	}
	return "invalid"
}

// Change is what a state transition means for the destination counters.
type Change int8

const (
	Unchanged   Change = 0  // counters unchanged
	Activated   Change = 1  // InActConn−1, ActiveConn+1
	Deactivated Change = -1 // ActiveConn−1, InActConn+1
)

// Deltas returns the increments to apply to the destination's ActiveConn
// and InActConn.
func (ch Change) Deltas() (active, inactive int) { return int(ch), -int(ch) }

// flag rows of the transition table, in LVS order
const (
	rowSyn = iota
	rowFin
	rowAck
	rowRst
	numRows
)

const (
	sNO = StateNone
	sES = StateEstablished
	sSS = StateSynSent
	sSR = StateSynRecv
	sFW = StateFinWait
	sTW = StateTimeWait
	sCL = StateClose
	sCW = StateCloseWait
	sLA = StateLastAck
	sLI = StateListen
	sSA = StateSynAck
)

// tcpNext[direction][row][state] is the next state.
var tcpNext = [3][numRows][numTCP]State{
	In: {
		//          sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
		rowSyn: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		rowFin: {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW},
		rowAck: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		rowRst: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR},
	},
	Out: {
		rowSyn: {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR},
		rowFin: {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
		rowAck: {sES, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sES, sES}, // sSR: LVS has sES (see the top)
		rowRst: {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
	},
	InputOnly: {
		rowSyn: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		rowFin: {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
		rowAck: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		rowRst: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
	},
}

// Transition applies one TCP segment with header flags tcpFlags, seen in
// direction dir, to c.State, and returns the new state and what it means
// for the destination counters. It does not change c's expiry: call
// Table.Touch afterwards, or use Table.Update which does both. UDP conns,
// unknown states and unknown directions are left unchanged.
func Transition(c *Conn, dir Direction, tcpFlags uint8) (State, Change) {
	if int(c.State) >= numTCP || dir > InputOnly {
		return c.State, Unchanged
	}
	if c.Flags&FlagNoOutput != 0 {
		if dir == Out {
			c.Flags &^= FlagNoOutput
		} else {
			dir = InputOnly
		}
	}
	next := StateClose // LVS: a segment without RST/SYN/FIN/ACK closes
	switch {
	case tcpFlags&header.TCPFlagRST != 0:
		next = tcpNext[dir][rowRst][c.State]
	case tcpFlags&header.TCPFlagSYN != 0:
		next = tcpNext[dir][rowSyn][c.State]
	case tcpFlags&header.TCPFlagFIN != 0:
		next = tcpNext[dir][rowFin][c.State]
	case tcpFlags&header.TCPFlagACK != 0:
		next = tcpNext[dir][rowAck][c.State]
	}
	ch := Unchanged
	if was, is := c.State.Active(), next.Active(); was != is {
		ch = Deactivated
		if is {
			ch = Activated
		}
	}
	c.State = next
	return next, ch
}
