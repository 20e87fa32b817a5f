// Package synproxy is the packet half of GVS's SYN proxy: SYN cookies,
// the TCP options they carry, the segments the proxy writes (the SYN-ACK
// to the client, the SYN and the handshake-completing ACK to the real
// server) and the sequence, timestamp and window shifts a proxied
// connection needs for the rest of its life. The dataplane's use of it is
// in dataplane/lbsynproxy.go; docs/synproxy.md is the operator's view.
//
// A proxied connection has two handshakes: the client's with GVS (whose
// initial sequence number is the cookie) and GVS's with the real server
// (whose ISN is the server's own). Afterwards every server→client segment
// has its sequence number lowered by delta = serverISN − cookie and every
// client→server segment its acknowledgement number (and SACK blocks)
// raised by delta; timestamps likewise, by the difference between the
// server's clock and the one GVS put in its SYN-ACK; and the server's
// window is rescaled from its window scale to the one GVS gave the client.
package synproxy

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"sync/atomic"
)

// Cookie layout (32 bits, the ISN of GVS's SYN-ACK):
//
//	31-30 period  the secret's period number, mod 4
//	29-28 mss     index into the MSS table of the family
//	27-24 wscale  the client's window scale, 15 = none
//	23    sack    the client offered SACK
//	22-0  mac     SipHash-2-4 of the 4-tuple, the client's ISN and bits
//	              31-23, under the period's secret, truncated to 23 bits
//
// An ACK passes when its ack−1 is a cookie whose mac matches under the
// secret of its period, and that period is the current or the previous
// one: a forged ACK has one chance in 2^23 per try. Timestamps need no bit:
// a client that got GVS's timestamp option sends one on every segment.
const (
	macBits     = 23
	macMask     = 1<<macBits - 1
	noWScale    = 15
	periodShift = 30
	mssShift    = 28
	wsShift     = 24
	sackBit     = 1 << 23
)

// MSS tables: the values a cookie can carry, by family (a client's MSS is
// rounded down to the nearest; the real server then sees that one).
var (
	mssTable4 = [4]uint16{536, 1300, 1440, 1460}
	mssTable6 = [4]uint16{1220, 1420, 1440, 8940}
)

type secret struct{ k0, k1 uint64 }

// secrets is one generation: the secrets of period n (key[n&1]) and n−1.
type secrets struct {
	period uint32
	key    [2]secret
}

// Cookies makes and checks SYN cookies. Rotate moves it to a new period
// with a fresh random secret; the previous period's secret stays valid
// until the next rotation, so a cookie lives one to two periods. Make and
// Check are safe for concurrent use with each other and with Rotate.
type Cookies struct {
	gen atomic.Pointer[secrets]
}

// NewCookies returns cookies with fresh secrets for period 0 and −1.
func NewCookies() *Cookies {
	c := &Cookies{}
	s := &secrets{}
	s.key[0], s.key[1] = randomSecret(), randomSecret()
	c.gen.Store(s)
	return c
}

func randomSecret() secret {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("synproxy: no randomness for the cookie secret: " + err.Error())
	}
	return secret{binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])}
}

// Rotate starts period n with a fresh secret if n is not the current one.
// Only one goroutine (the dataplane's master) calls it.
func (c *Cookies) Rotate(n uint32) {
	old := c.gen.Load()
	if old.period == n {
		return
	}
	s := &secrets{period: n}
	if n == old.period+1 {
		s.key[(n-1)&1] = old.key[(n-1)&1] // the previous period's stays valid
	} else {
		s.key[(n-1)&1] = randomSecret() // periods skipped: nothing older is valid
	}
	s.key[n&1] = randomSecret()
	c.gen.Store(s)
}

// Period returns the current period number.
func (c *Cookies) Period() uint32 { return c.gen.Load().period }

// Tuple is a connection's addresses (4 or 16 bytes each, both the same)
// and ports as the client sent them: Src the client, Dst the service.
type Tuple struct {
	Src, Dst         []byte
	SrcPort, DstPort uint16
}

// Make returns the cookie for a client SYN with initial sequence number
// isn and options o (MSS rounded down to the table, window scale clamped
// to 14).
func (c *Cookies) Make(t *Tuple, isn uint32, o *Options) uint32 {
	g := c.gen.Load()
	tab := &mssTable4
	if len(t.Src) == 16 {
		tab = &mssTable6
	}
	mi := uint32(0)
	for i := len(tab) - 1; i > 0; i-- {
		if o.MSS >= tab[i] {
			mi = uint32(i)
			break
		}
	}
	ws := uint32(noWScale)
	if o.WScale >= 0 {
		ws = uint32(min(o.WScale, 14))
	}
	hi := (g.period&3)<<periodShift | mi<<mssShift | ws<<wsShift
	if o.SACK {
		hi |= sackBit
	}
	return hi | mac(g.key[g.period&1], t, isn, hi)
}

// Check result.
type Verdict uint8

const (
	Valid Verdict = iota
	Bad           // the mac does not match: forged, or not a cookie
	Stale         // made under a secret that has rotated out
)

// Check validates the cookie of a client's ACK: ack is the ACK's
// acknowledgement number, isn its sequence number − 1. On Valid it
// returns the SYN's options as the cookie kept them (MSS from the table,
// window scale or −1, SACK; TS is the caller's to set from the ACK).
func (c *Cookies) Check(t *Tuple, isn, ack uint32) (Options, Verdict) {
	cookie := ack - 1
	g := c.gen.Load()
	p := cookie >> periodShift
	var k secret
	switch p {
	case g.period & 3:
		k = g.key[g.period&1]
	case (g.period - 1) & 3:
		k = g.key[(g.period-1)&1]
	default:
		return Options{}, Stale
	}
	hi := cookie &^ macMask
	if mac(k, t, isn, hi) != cookie&macMask {
		return Options{}, Bad
	}
	return CookieOptions(cookie, len(t.Src) == 16), Valid
}

// mac is the 23-bit SipHash-2-4 of the tuple, isn and hi under k.
func mac(k secret, t *Tuple, isn, hi uint32) uint32 {
	var m [48]byte
	n := copy(m[:], t.Src)
	n += copy(m[n:], t.Dst)
	binary.BigEndian.PutUint16(m[n:], t.SrcPort)
	binary.BigEndian.PutUint16(m[n+2:], t.DstPort)
	binary.BigEndian.PutUint32(m[n+4:], isn)
	binary.BigEndian.PutUint32(m[n+8:], hi)
	return uint32(sipHash24(k.k0, k.k1, m[:n+12])) & macMask
}

// sipHash24 is SipHash-2-4 (Aumasson and Bernstein, 2012) of m under the
// key (k0, k1).
func sipHash24(k0, k1 uint64, m []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	b := uint64(len(m)) << 56
	for len(m) >= 8 {
		w := binary.LittleEndian.Uint64(m)
		v3 ^= w
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0 ^= w
		m = m[8:]
	}
	for i := len(m) - 1; i >= 0; i-- {
		b |= uint64(m[i]) << (8 * i)
	}
	v3 ^= b
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= b
	v2 ^= 0xff
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// CookieOptions returns the options cookie (one Check accepted) keeps:
// the MSS of the table of its family, the window scale or −1, SACK.
func CookieOptions(cookie uint32, v6 bool) Options {
	o := Options{WScale: -1, SACK: cookie&sackBit != 0}
	if v6 {
		o.MSS = mssTable6[cookie>>mssShift&3]
	} else {
		o.MSS = mssTable4[cookie>>mssShift&3]
	}
	if ws := cookie >> wsShift & 15; ws != noWScale {
		o.WScale = int8(ws)
	}
	return o
}
