package synproxy

import (
	"encoding/binary"

	"github.com/gvs-lb/gvs/header"
)

// Delta is what a translated segment gets added to its fields (mod 2^32)
// and how its window is rescaled. A connection whose two sides see
// different sequence spaces (the SYN proxy's two handshakes, a proxy
// protocol header only the server sees) has one Delta per direction.
type Delta struct {
	Seq   uint32 // to the sequence number
	Ack   uint32 // to the acknowledgement number (segments with ACK)
	SACK  uint32 // to every SACK block edge
	TSVal uint32 // to the timestamp value
	TSEcr uint32 // to the timestamp echo
	// WSFrom and WSTo rescale the window field from one scale to the other
	// (rounded down, at most 65535); equal: left alone.
	WSFrom, WSTo uint8
}

// Apply adds d to the segment tcp (the TCP header and payload), updating
// the checksum incrementally. A malformed option list is ErrOptions,
// before anything changed.
func Apply(tcp []byte, d *Delta) error {
	t := header.TCP(tcp)
	if !t.IsValid() {
		return ErrOptions
	}
	opts := tcp[header.TCPMinSize:t.DataOffset()]
	if err := walk(opts, nil); err != nil {
		return err
	}
	ck := t.Checksum()
	if d.Seq != 0 {
		ck = put32(ck, tcp, 4, t.Seq()+d.Seq)
	}
	if t.Flags()&header.TCPFlagACK != 0 && d.Ack != 0 {
		ck = put32(ck, tcp, 8, t.Ack()+d.Ack)
	}
	if d.WSFrom != d.WSTo {
		ck = put16(ck, tcp, 14, Rescale(t.Window(), d.WSFrom, d.WSTo))
	}
	if len(opts) > 0 && (d.SACK|d.TSVal|d.TSEcr) != 0 {
		ck = walkShift(tcp, opts, ck, d)
	}
	t.SetChecksum(ck)
	return nil
}

// ShiftIn adjusts a client→server segment of a SYN-proxied connection:
// the acknowledgement number and every SACK block edge move up by
// seqDelta into the server's sequence space, the timestamp echo up by
// tsDelta into its clock, and the window is rescaled from the client's
// scale wsFrom to wsTo (the server's view; equal when both handshakes
// agreed on scaling).
func ShiftIn(tcp []byte, seqDelta, tsDelta uint32, wsFrom, wsTo uint8) error {
	return Apply(tcp, &Delta{Ack: seqDelta, SACK: seqDelta, TSEcr: tsDelta, WSFrom: wsFrom, WSTo: wsTo})
}

// ShiftOut adjusts a server→client segment of a SYN-proxied connection:
// the sequence number moves down by seqDelta into the client's view, the
// timestamp value down by tsDelta, and the window is rescaled from the
// server's scale wsFrom to the client's wsTo. SACK blocks (the server
// acknowledging client data) stay.
func ShiftOut(tcp []byte, seqDelta, tsDelta uint32, wsFrom, wsTo uint8) error {
	return Apply(tcp, &Delta{Seq: -seqDelta, TSVal: -tsDelta, WSFrom: wsFrom, WSTo: wsTo})
}

// walk checks an option list, calling fn(offset, kind, length) for each
// option with a length byte.
func walk(opts []byte, fn func(i int, kind byte, l int)) error {
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == optEOL {
			return nil
		}
		if kind == optNOP {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return ErrOptions
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return ErrOptions
		}
		switch kind {
		case optTS:
			if l != lenTS {
				return ErrOptions
			}
		case optSACK:
			if (l-2)%8 != 0 {
				return ErrOptions
			}
		}
		if fn != nil {
			fn(i, kind, l)
		}
		i += l
	}
	return nil
}

// walkShift applies d's SACK and timestamp deltas to the already checked
// option list opts (a slice of tcp) and returns the updated checksum.
func walkShift(tcp, opts []byte, ck uint16, d *Delta) uint16 {
	base := header.TCPMinSize
	walk(opts, func(i int, kind byte, l int) {
		switch kind {
		case optSACK:
			if d.SACK == 0 {
				return
			}
			for e := i + 2; e+4 <= i+l; e += 4 {
				off := base + e
				ck = put32(ck, tcp, off, binary.BigEndian.Uint32(tcp[off:])+d.SACK)
			}
		case optTS:
			if d.TSVal != 0 {
				off := base + i + 2
				ck = put32(ck, tcp, off, binary.BigEndian.Uint32(tcp[off:])+d.TSVal)
			}
			if d.TSEcr != 0 {
				off := base + i + 6
				ck = put32(ck, tcp, off, binary.BigEndian.Uint32(tcp[off:])+d.TSEcr)
			}
		}
	})
	return ck
}

// put32 writes v at tcp[off:] (any alignment) and returns the checksum
// updated for the change (RFC 1624, byte by byte with each byte's place in
// its 16-bit word).
func put32(ck uint16, tcp []byte, off int, v uint32) uint16 {
	var nb [4]byte
	binary.BigEndian.PutUint32(nb[:], v)
	return replace(ck, tcp, off, nb[:])
}

func put16(ck uint16, tcp []byte, off int, v uint16) uint16 {
	var nb [2]byte
	binary.BigEndian.PutUint16(nb[:], v)
	return replace(ck, tcp, off, nb[:])
}

func replace(ck uint16, tcp []byte, off int, nb []byte) uint16 {
	sum := uint64(^ck)
	for j, v := range nb {
		p := off + j
		o := tcp[p]
		if p&1 == 0 {
			sum += uint64(^(uint16(o) << 8)) + uint64(uint16(v)<<8)
		} else {
			sum += uint64(^uint16(o)) + uint64(v)
		}
		tcp[p] = v
	}
	return ^header.Fold(sum)
}

// Rescale converts a window field from scale from to scale to, rounding
// down and saturating at 65535.
func Rescale(w uint16, from, to uint8) uint16 {
	return uint16(min(uint64(w)<<from>>to, 0xffff))
}
