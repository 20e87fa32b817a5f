package nat

import "github.com/gvs-lb/gvs/header"

// TCP option kinds ClampMSS walks.
const (
	tcpOptEOL    = 0
	tcpOptNOP    = 1
	tcpOptMSS    = 2
	tcpOptMSSLen = 4
)

// ClampMSS lowers the MSS option of a TCP SYN or SYN-ACK in packet l3 to
// max when it is larger, updating the TCP checksum incrementally, and reports
// whether it changed anything. Packets that are not TCP SYNs, that carry no
// MSS option or whose options are malformed are left alone (false). The
// option may sit at any offset, aligned or not.
//
// Intended use with TOA. The TOA option makes every client→server segment it
// is inserted into 8 (IPv4 client) or 20 (IPv6 client) bytes longer. A
// client sizes its segments by the MSS the real server advertises in its
// SYN-ACK, counting its own options within it, so a full-size segment would
// no longer fit the path to the server after insertion. When TOA is enabled
// for a service, the out direction clamps the real server's SYN-ACK:
//
//	ClampMSS(synAck, serverMSS - uint16(TOALen(client)))   // what DPVS does
//	ClampMSS(synAck, uint16(mtuToServer - ipHdr - 20 - TOALen(client)))
//
// (the first form needs the advertised value, the second only the route
// MTU). A SYN proxy answering the client itself must advertise the same
// reduced value.
//
// The client's SYN (in direction) is not clamped for TOA: its MSS governs
// the segments the server sends to the client, and the out direction of
// FullNAT never grows a packet, so lowering it would only cost throughput.
// Clamp it only for reasons of its own (a smaller MTU towards the servers
// than the client believes, encapsulation), with the same function.
func ClampMSS(l3 []byte, max uint16) bool {
	loc, err := locate(l3)
	if err != nil || loc.proto != header.ProtoTCP {
		return false
	}
	tcp := header.TCP(l3[loc.l4:loc.end])
	if !tcp.IsValid() || tcp.Flags()&header.TCPFlagSYN == 0 {
		return false
	}
	changed := false
	hl := tcp.DataOffset()
	for i := header.TCPMinSize; i < hl; {
		switch tcp[i] {
		case tcpOptEOL:
			return changed
		case tcpOptNOP:
			i++
			continue
		}
		if i+1 >= hl {
			return changed
		}
		l := int(tcp[i+1])
		if l < 2 || i+l > hl {
			return changed // malformed: stop, as receivers do
		}
		if tcp[i] == tcpOptMSS && l == tcpOptMSSLen {
			off := i + 2
			if old := be16(tcp[off:]); old > max {
				var acc uint64
				if off%2 == 0 {
					acc = diff16(acc, old, max)
				} else {
					acc = diff16Odd(acc, old, max)
				}
				put16(tcp[off:], max)
				tcp.SetChecksum(apply(tcp.Checksum(), acc))
				changed = true
			}
		}
		i += l
	}
	return changed
}
