package sched

import "encoding/binary"

// QUIC connection IDs for conhash's qid hash target.
//
//	Long header (RFC 9000 §17.2), first byte 1Fxx xxxx:
//	+-+-+-+-+-+-+-+-+---------------+-----------+----------------------+
//	|1|1|T T|X X X X| Version (32)  | DCID Len  | DCID (0..160) ...    |
//	+-+-+-+-+-+-+-+-+---------------+-----------+----------------------+
//	Short header (RFC 9000 §17.3), first byte 01xx xxxx, and Google QUIC's
//	public header with flag 0x08 (an 8-byte connection ID follows):
//	+-+-+-+-+-+-+-+-+------------------------------------+
//	|0|1|S|R|R|K|P P| DCID (length known to the server)  |
//	+-+-+-+-+-+-+-+-+------------------------------------+
//
// A short header does not carry its DCID length: as DPVS does, GVS takes
// the 8 bytes after the first byte, the length real servers commonly use.

const (
	quicLongHeader = 0x80
	quicFixedBit   = 0x40
	quicGQUICCID8  = 0x08 // Google QUIC public flag: 8-byte connection ID
	quicMaxCIDLen  = 20   // RFC 9000: a connection ID is at most 20 bytes
	quicShortCID   = 8
)

// quicDCID returns the destination connection ID at the start of a UDP
// payload, or nil if the payload holds none (too short, a zero-length or
// over-long ID, neither a QUIC long header nor a short header with an 8-byte
// ID). The result aliases p.
func quicDCID(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	if p[0]&quicLongHeader != 0 {
		if len(p) < 6 { // first byte, version, DCID length
			return nil
		}
		n := int(p[5])
		if n == 0 || n > quicMaxCIDLen || len(p) < 6+n {
			return nil
		}
		return p[6 : 6+n]
	}
	if p[0]&(quicFixedBit|quicGQUICCID8) == 0 || len(p) < 1+quicShortCID {
		return nil
	}
	return p[1 : 1+quicShortCID]
}

// hashBytes hashes a connection ID (at most quicMaxCIDLen bytes) with a seed,
// deterministically, without allocating.
func hashBytes(seed uint64, b []byte) uint64 {
	h := seed ^ uint64(len(b))
	for len(b) >= 8 {
		h = mix64(h ^ binary.BigEndian.Uint64(b))
		b = b[8:]
	}
	var last uint64
	for _, c := range b {
		last = last<<8 | uint64(c)
	}
	return mix64(h ^ last ^ 0xff<<56)
}
