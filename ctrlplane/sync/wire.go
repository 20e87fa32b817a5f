// Package sync is GVS's session sync between load-balancer nodes: the
// control plane drains its dataplane's connection events, multicasts them
// to the peers in authenticated datagrams, installs what the peers send
// into its dataplane, keeps a bounded table of all synced connections (its
// own too, to re-install them after a local dataplane restart) and serves
// bulk transfers to nodes that join. docs/sync.md is the operator's and
// the wire format's reference.
package sync

// The wire format, version 1 (docs/sync.md has the diagram). A datagram is
//
//	header (32 bytes) | records … | HMAC-SHA256 tag (32 bytes)
//
// header: magic "GS", version 1, type, record count (u16), reserved (u16),
// sender id (u32), sequence (u64), timestamp in unix ms (u64), body
// length (u32, the bytes of records). All integers big-endian. The tag is
// HMAC-SHA256 with the cluster's shared key over everything before it.
//
// A connection record is 16 bytes of fixed fields followed by the four
// addresses (client, virtual, local, real server), each 4 bytes (IPv4) or
// 16 (IPv6) as the record's family flags say:
//
//	flags (u8) | protocol (u8) | state (u8) | reserved (u8) | timeout s (u32) |
//	client port | virtual port | local port | real server port (u16 each)
//
// and, on a SYN-proxied TCP connection (flag RecAdjusted), 12 bytes of its
// translation after the addresses:
//
//	sequence delta (u32) | timestamp delta (u32) | in scales (u8) |
//	out scales (u8) | proxy protocol shift (u8, 0-107) | flags (u8: bit 0
//	the SYN proxy made the handshakes; others 0)
//
// (a scale byte is from<<4 | to, each 0-14). A node that predates the flag
// refuses the whole datagram as malformed: upgrade every node before
// enabling the SYN proxy on synced services.
//
// Parse checks everything before it returns: the length, the magic, the
// version, the tag (in constant time), the body length, every record's
// size and fields. Decoding is allocation-free into a caller's slice.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"net/netip"
	"time"
)

// Version is the wire format version this code speaks.
const Version = 1

// Message types.
const (
	TypeConns       = 1 // connection records
	TypeBulkRequest = 2 // "send me your tables" (no records)
	TypeBulkEnd     = 3 // the end of a bulk answer to Target (no records)
)

const (
	magic0, magic1 = 'G', 'S'
	HeaderLen      = 32
	TagLen         = sha256.Size
	recFixed       = 16
	// MaxDatagram is the largest datagram sent: fits a 1500-byte MTU with
	// IPv4/IPv6 and UDP headers.
	MaxDatagram = 1400
	// MinKeyLen is the shortest shared key accepted.
	MinKeyLen = 16
)

// Record flags.
const (
	RecClientIPv6 = 1 << 0 // client and virtual addresses are IPv6
	RecServerIPv6 = 1 << 1 // local and real server addresses are IPv6
	RecDelete     = 1 << 2 // the connection is gone
	RecSynced     = 1 << 3 // the sender itself had it from sync
	RecAdjusted   = 1 << 4 // a SYN-proxied connection: Adjust follows the addresses
	recKnown      = RecClientIPv6 | RecServerIPv6 | RecDelete | RecSynced | RecAdjusted
	recAdjustLen  = 12
)

// Errors of Parse, each counted apart by the receiver.
var (
	ErrTruncated  = errors.New("sync message truncated")
	ErrBadMagic   = errors.New("not a sync message")
	ErrVersion    = errors.New("unknown sync message version")
	ErrBadTag     = errors.New("sync message authentication failed")
	ErrMalformed  = errors.New("malformed sync message")
	ErrUnknownTyp = errors.New("unknown sync message type")
)

// Record is one connection as it travels.
type Record struct {
	Flags   uint8
	Proto   uint8
	State   uint8 // session.State
	Timeout uint32
	Client  netip.AddrPort
	Virtual netip.AddrPort
	Local   netip.AddrPort
	Dest    netip.AddrPort
	// Adjust is a SYN-proxied connection's translation (Flags has
	// RecAdjusted).
	Adjust Adjust
}

// Adjust is how a SYN-proxied connection's client view differs from its
// real server's: sequence and timestamp deltas, the window scales of each
// direction (from<<4 | to).
type Adjust struct {
	SeqDelta, TSDelta   uint32
	InScales, OutScales uint8
	PPShift             uint8 // the proxy protocol header's length, 0-107
	SynProxy            bool
}

// Header is a message's header.
type Header struct {
	Type      uint8
	Count     uint16
	Sender    uint32
	Seq       uint64
	Timestamp time.Time // millisecond precision
	// Target is the requester a TypeBulkEnd answers (in the reserved
	// field's place: the body of such a message is empty).
	Target uint32
}

// RecordLen returns r's encoded size.
func RecordLen(r *Record) int {
	n := recFixed
	if r.Client.Addr().Unmap().Is4() && r.Virtual.Addr().Unmap().Is4() {
		n += 8
	} else {
		n += 32
	}
	if r.Local.Addr().Unmap().Is4() && r.Dest.Addr().Unmap().Is4() {
		n += 8
	} else {
		n += 32
	}
	if r.Flags&RecAdjusted != 0 {
		n += recAdjustLen
	}
	return n
}

// Encoder builds datagrams with one key. Not safe for concurrent use.
type Encoder struct {
	mac hash.Hash
	buf []byte
	n   int // records in buf
}

// NewEncoder returns an encoder keyed with key.
func NewEncoder(key []byte) *Encoder {
	return &Encoder{mac: hmac.New(sha256.New, key), buf: make([]byte, HeaderLen, MaxDatagram)}
}

// Reset starts a new message.
func (e *Encoder) Reset() { e.buf, e.n = e.buf[:HeaderLen], 0 }

// Count returns the records added since Reset.
func (e *Encoder) Count() int { return e.n }

// Add appends r; false if it does not fit the datagram (Finish and Reset
// first).
func (e *Encoder) Add(r *Record) bool {
	l := RecordLen(r)
	if len(e.buf)+l+TagLen > MaxDatagram || e.n == 0xffff {
		return false
	}
	o := len(e.buf)
	e.buf = e.buf[:o+l]
	b := e.buf[o:]
	f := r.Flags &^ (RecClientIPv6 | RecServerIPv6)
	c6 := !(r.Client.Addr().Unmap().Is4() && r.Virtual.Addr().Unmap().Is4())
	s6 := !(r.Local.Addr().Unmap().Is4() && r.Dest.Addr().Unmap().Is4())
	if c6 {
		f |= RecClientIPv6
	}
	if s6 {
		f |= RecServerIPv6
	}
	b[0], b[1], b[2], b[3] = f, r.Proto, r.State, 0
	binary.BigEndian.PutUint32(b[4:], r.Timeout)
	binary.BigEndian.PutUint16(b[8:], r.Client.Port())
	binary.BigEndian.PutUint16(b[10:], r.Virtual.Port())
	binary.BigEndian.PutUint16(b[12:], r.Local.Port())
	binary.BigEndian.PutUint16(b[14:], r.Dest.Port())
	p := b[recFixed:]
	p = putAddr(p, r.Client.Addr(), c6)
	p = putAddr(p, r.Virtual.Addr(), c6)
	p = putAddr(p, r.Local.Addr(), s6)
	p = putAddr(p, r.Dest.Addr(), s6)
	if f&RecAdjusted != 0 {
		binary.BigEndian.PutUint32(p, r.Adjust.SeqDelta)
		binary.BigEndian.PutUint32(p[4:], r.Adjust.TSDelta)
		p[8], p[9], p[10], p[11] = r.Adjust.InScales, r.Adjust.OutScales, r.Adjust.PPShift, 0
		if r.Adjust.SynProxy {
			p[11] = 1
		}
	}
	e.n++
	return true
}

func putAddr(b []byte, a netip.Addr, v6 bool) []byte {
	if v6 {
		s := a.As16()
		return b[copy(b, s[:]):]
	}
	s := a.Unmap().As4()
	return b[copy(b, s[:]):]
}

// Finish writes the header of h (its Count is the records added) and the
// tag, and returns the datagram, valid until the next Reset.
func (e *Encoder) Finish(h Header) []byte {
	b := e.buf
	b[0], b[1], b[2], b[3] = magic0, magic1, Version, h.Type
	binary.BigEndian.PutUint16(b[4:], uint16(e.n))
	binary.BigEndian.PutUint16(b[6:], 0)
	binary.BigEndian.PutUint32(b[8:], h.Sender)
	binary.BigEndian.PutUint64(b[12:], h.Seq)
	binary.BigEndian.PutUint64(b[20:], uint64(h.Timestamp.UnixMilli()))
	body := uint32(len(b) - HeaderLen)
	if h.Type == TypeBulkEnd {
		body = h.Target // no records: the field carries the requester
	}
	binary.BigEndian.PutUint32(b[28:], body)
	e.mac.Reset()
	e.mac.Write(b)
	e.buf = e.mac.Sum(b)
	return e.buf
}

// Decoder checks and parses datagrams with one key. Not safe for
// concurrent use.
type Decoder struct {
	mac hash.Hash
	sum [TagLen]byte
}

// NewDecoder returns a decoder keyed with key.
func NewDecoder(key []byte) *Decoder { return &Decoder{mac: hmac.New(sha256.New, key)} }

// Parse checks datagram d and appends its records to recs. It returns
// ErrTruncated, ErrBadMagic, ErrVersion, ErrBadTag, ErrMalformed or
// ErrUnknownTyp (see there) and then no records.
func (dec *Decoder) Parse(d []byte, recs []Record) (Header, []Record, error) {
	var h Header
	if len(d) < 2 || d[0] != magic0 || d[1] != magic1 {
		if len(d) < 2 {
			return h, recs, ErrTruncated
		}
		return h, recs, ErrBadMagic
	}
	if len(d) < 3 {
		return h, recs, ErrTruncated
	}
	if d[2] != Version {
		return h, recs, ErrVersion
	}
	if len(d) < HeaderLen+TagLen {
		return h, recs, ErrTruncated
	}
	msg, tag := d[:len(d)-TagLen], d[len(d)-TagLen:]
	dec.mac.Reset()
	dec.mac.Write(msg)
	if !hmac.Equal(dec.mac.Sum(dec.sum[:0]), tag) {
		// a datagram cut short fails here too: its tag is wrong
		return h, recs, ErrBadTag
	}
	h.Type = d[3]
	h.Count = binary.BigEndian.Uint16(d[4:])
	h.Sender = binary.BigEndian.Uint32(d[8:])
	h.Seq = binary.BigEndian.Uint64(d[12:])
	h.Timestamp = time.UnixMilli(int64(binary.BigEndian.Uint64(d[20:])))
	bodyLen := binary.BigEndian.Uint32(d[28:])
	body := msg[HeaderLen:]
	switch h.Type {
	case TypeConns:
	case TypeBulkRequest, TypeBulkEnd:
		if h.Count != 0 || len(body) != 0 {
			return h, recs, ErrMalformed
		}
		if h.Type == TypeBulkEnd {
			h.Target = bodyLen
		} else if bodyLen != 0 {
			return h, recs, ErrMalformed
		}
		return h, recs, nil
	default:
		return h, recs, ErrUnknownTyp
	}
	if uint64(bodyLen) != uint64(len(body)) {
		return h, recs, ErrMalformed
	}
	start := len(recs)
	for i := 0; i < int(h.Count); i++ {
		var r Record
		n, ok := parseRecord(body, &r)
		if !ok {
			return h, recs[:start], ErrMalformed
		}
		body = body[n:]
		recs = append(recs, r)
	}
	if len(body) != 0 {
		return h, recs[:start], ErrMalformed
	}
	return h, recs, nil
}

func parseRecord(b []byte, r *Record) (int, bool) {
	if len(b) < recFixed {
		return 0, false
	}
	f := b[0]
	if f&^recKnown != 0 || b[3] != 0 || (b[1] != 6 && b[1] != 17) || b[2] > 11 {
		return 0, false
	}
	cl, sl := 4, 4
	if f&RecClientIPv6 != 0 {
		cl = 16
	}
	if f&RecServerIPv6 != 0 {
		sl = 16
	}
	n := recFixed + 2*cl + 2*sl
	if f&RecAdjusted != 0 {
		n += recAdjustLen
	}
	if len(b) < n {
		return 0, false
	}
	r.Flags, r.Proto, r.State = f, b[1], b[2]
	r.Timeout = binary.BigEndian.Uint32(b[4:])
	p := b[recFixed:]
	var a [4]netip.Addr
	for i, l := range [4]int{cl, cl, sl, sl} {
		if l == 4 {
			a[i] = netip.AddrFrom4([4]byte(p[:4]))
		} else {
			a[i] = netip.AddrFrom16([16]byte(p[:16]))
		}
		p = p[l:]
	}
	r.Client = netip.AddrPortFrom(a[0], binary.BigEndian.Uint16(b[8:]))
	r.Virtual = netip.AddrPortFrom(a[1], binary.BigEndian.Uint16(b[10:]))
	r.Local = netip.AddrPortFrom(a[2], binary.BigEndian.Uint16(b[12:]))
	r.Dest = netip.AddrPortFrom(a[3], binary.BigEndian.Uint16(b[14:]))
	if f&RecAdjusted != 0 {
		in, out := p[8], p[9]
		if b[1] != 6 || p[10] > 107 || p[11] > 1 || in>>4 > 14 || in&15 > 14 || out>>4 > 14 || out&15 > 14 {
			return 0, false
		}
		r.Adjust = Adjust{SeqDelta: binary.BigEndian.Uint32(p), TSDelta: binary.BigEndian.Uint32(p[4:]), InScales: in, OutScales: out,
			PPShift: p[10], SynProxy: p[11] == 1}
	}
	return n, true
}
