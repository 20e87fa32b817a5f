package synproxy

import (
	"encoding/binary"

	"github.com/gvs-lb/gvs/header"
)

// ShiftIn adjusts a client→server segment of a proxied connection (tcp:
// the TCP header and payload): the acknowledgement number and every SACK
// block edge move up by seqDelta into the server's sequence space, the
// timestamp echo up by tsDelta into its clock, and the window is rescaled
// from the client's scale wsFrom to wsTo (the server's view; equal when
// both handshakes agreed on scaling). The checksum is updated
// incrementally. A malformed option list is ErrOptions, before anything
// changed.
func ShiftIn(tcp []byte, seqDelta, tsDelta uint32, wsFrom, wsTo uint8) error {
	t := header.TCP(tcp)
	if !t.IsValid() {
		return ErrOptions
	}
	opts := tcp[header.TCPMinSize:t.DataOffset()]
	if err := walk(opts, nil); err != nil {
		return err
	}
	ck := t.Checksum()
	if t.Flags()&header.TCPFlagACK != 0 && seqDelta != 0 {
		ck = put32(ck, tcp, 8, t.Ack()+seqDelta)
	}
	if wsFrom != wsTo {
		ck = put16(ck, tcp, 14, rescale(t.Window(), wsFrom, wsTo))
	}
	if len(opts) > 0 {
		ck = walkShift(tcp, opts, ck, seqDelta, tsDelta, 6) // SACK edges; TSecr
	}
	t.SetChecksum(ck)
	return nil
}

// ShiftOut adjusts a server→client segment of a proxied connection: the
// sequence number moves down by seqDelta into the client's view, the
// timestamp value down by tsDelta, and the window is rescaled from the
// server's scale wsFrom to the client's wsTo (rounded down, at most
// 65535). SACK blocks (the server acknowledging client data) stay.
func ShiftOut(tcp []byte, seqDelta, tsDelta uint32, wsFrom, wsTo uint8) error {
	t := header.TCP(tcp)
	if !t.IsValid() {
		return ErrOptions
	}
	opts := tcp[header.TCPMinSize:t.DataOffset()]
	if err := walk(opts, nil); err != nil {
		return err
	}
	ck := t.Checksum()
	if seqDelta != 0 {
		ck = put32(ck, tcp, 4, t.Seq()-seqDelta)
	}
	if wsFrom != wsTo {
		ck = put16(ck, tcp, 14, rescale(t.Window(), wsFrom, wsTo))
	}
	if len(opts) > 0 && tsDelta != 0 {
		ck = walkShift(tcp, opts, ck, 0, -tsDelta, 2) // TSval
	}
	t.SetChecksum(ck)
	return nil
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

// walkShift adds sackDelta to the SACK block edges and tsDelta to the
// timestamp field at tsField within the TS option (2: TSval, 6: TSecr), in
// the already checked list opts (a slice of tcp), and returns the updated
// checksum.
func walkShift(tcp, opts []byte, ck uint16, sackDelta, tsDelta uint32, tsField int) uint16 {
	base := header.TCPMinSize
	walk(opts, func(i int, kind byte, l int) {
		switch kind {
		case optSACK:
			if sackDelta == 0 {
				return
			}
			for e := i + 2; e+4 <= i+l; e += 4 {
				off := base + e
				ck = put32(ck, tcp, off, binary.BigEndian.Uint32(tcp[off:])+sackDelta)
			}
		case optTS:
			if tsDelta == 0 {
				return
			}
			off := base + i + tsField
			ck = put32(ck, tcp, off, binary.BigEndian.Uint32(tcp[off:])+tsDelta)
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

// rescale converts a window field from scale from to scale to, rounding
// down and saturating at 65535.
func rescale(w uint16, from, to uint8) uint16 {
	return uint16(min(uint64(w)<<from>>to, 0xffff))
}
