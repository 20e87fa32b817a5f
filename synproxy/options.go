package synproxy

import (
	"encoding/binary"
	"errors"
)

// TCP option kinds and lengths the proxy reads or writes.
const (
	optEOL      = 0
	optNOP      = 1
	optMSS      = 2
	optWScale   = 3
	optSACKPerm = 4
	optSACK     = 5
	optTS       = 8

	lenMSS      = 4
	lenWScale   = 3
	lenSACKPerm = 2
	lenTS       = 10
)

// ErrOptions: a TCP option list that cannot be walked (a length below 2,
// an option running past the header, a known option of the wrong length).
var ErrOptions = errors.New("synproxy: malformed TCP options")

// Options are the handshake options of a SYN (or what a cookie kept of
// them).
type Options struct {
	MSS    uint16 // 0: none
	WScale int8   // −1: none
	SACK   bool   // SACK permitted
	TS     bool   // timestamps, with TSVal and TSEcr
	TSVal  uint32
	TSEcr  uint32
}

// ParseOptions reads the options area of a TCP header (the bytes after the
// fixed 20). Unknown options are skipped; a malformed list is ErrOptions.
func ParseOptions(opts []byte) (Options, error) {
	o := Options{WScale: -1}
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == optEOL {
			break
		}
		if kind == optNOP {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return o, ErrOptions
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return o, ErrOptions
		}
		v := opts[i : i+l]
		switch kind {
		case optMSS:
			if l != lenMSS {
				return o, ErrOptions
			}
			o.MSS = binary.BigEndian.Uint16(v[2:])
		case optWScale:
			if l != lenWScale {
				return o, ErrOptions
			}
			o.WScale = int8(min(v[2], 14)) // RFC 7323: larger values mean 14
		case optSACKPerm:
			if l != lenSACKPerm {
				return o, ErrOptions
			}
			o.SACK = true
		case optTS:
			if l != lenTS {
				return o, ErrOptions
			}
			o.TS = true
			o.TSVal = binary.BigEndian.Uint32(v[2:])
			o.TSEcr = binary.BigEndian.Uint32(v[6:])
		}
		i += l
	}
	return o, nil
}

// optionsLen returns the length of the options area WriteOptions writes
// for o (a multiple of 4).
func optionsLen(o *Options) int {
	n := 0
	if o.MSS != 0 {
		n += lenMSS
	}
	if o.SACK && o.TS {
		n += lenSACKPerm + lenTS // SACK_PERM, TS: 12
	} else {
		if o.SACK {
			n += 4 // NOP, NOP, SACK_PERM
		}
		if o.TS {
			n += 12 // NOP, NOP, TS
		}
	}
	if o.WScale >= 0 {
		n += 4 // NOP, WS
	}
	return n
}

// writeOptions writes o's options in the order Linux sends them (MSS,
// SACK_PERM with TS, NOP+WS), padded with NOPs to 4-byte words, and
// returns their length.
func writeOptions(b []byte, o *Options) int {
	n := 0
	if o.MSS != 0 {
		b[0], b[1] = optMSS, lenMSS
		binary.BigEndian.PutUint16(b[2:], o.MSS)
		n = lenMSS
	}
	if o.SACK && o.TS {
		b[n], b[n+1] = optSACKPerm, lenSACKPerm
		n += lenSACKPerm
		n += writeTS(b[n:], o)
	} else {
		if o.SACK {
			b[n], b[n+1], b[n+2], b[n+3] = optNOP, optNOP, optSACKPerm, lenSACKPerm
			n += 4
		}
		if o.TS {
			b[n], b[n+1] = optNOP, optNOP
			n += 2
			n += writeTS(b[n:], o)
		}
	}
	if o.WScale >= 0 {
		b[n], b[n+1], b[n+2], b[n+3] = optNOP, optWScale, lenWScale, byte(o.WScale)
		n += 4
	}
	return n
}

func writeTS(b []byte, o *Options) int {
	b[0], b[1] = optTS, lenTS
	binary.BigEndian.PutUint32(b[2:], o.TSVal)
	binary.BigEndian.PutUint32(b[6:], o.TSEcr)
	return lenTS
}
