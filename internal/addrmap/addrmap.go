// Package addrmap is a read-only map keyed by IP address for the packet
// path. A Go map keyed by netip.Addr hashes the 24-byte value (its zone
// pointer included) with the generic memory hash, about as much as the
// rest of a lookup; here a key is the address's two 64-bit words (IPv4
// v4-mapped), hashed with two multiplications and a per-process random
// seed, and found by linear probing in a table kept at most half full.
//
// A Map is built once (Build) and never changed: the dataplane builds a
// new one whenever its set changes (addresses, services, a neighbour
// publication) and publishes it with the snapshot it belongs to, so
// readers need no lock. Lookups allocate nothing.
//
// The all-zero key (:: — and so no IPv4 address, which is v4-mapped)
// marks a free slot: Build refuses the unspecified IPv6 address.
package addrmap

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math/bits"
	"net/netip"
)

var seed = func() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}()

type slot[V any] struct {
	hi, lo uint64
	v      V
}

// Map maps addresses to V. The zero Map is empty and valid.
type Map[V any] struct {
	slots []slot[V]
	shift uint8
	n     int
}

// ErrUnspecified is returned by Build for the IPv6 unspecified address.
var ErrUnspecified = errors.New("addrmap: the unspecified address :: is not a key")

// Words returns a's two big-endian 64-bit words, IPv4 in its v4-mapped
// form: the key of a Map, and of other fixed-width tables keyed by an
// address (with Hash).
func Words(a netip.Addr) (hi, lo uint64) {
	if a.Is4() { // without storing all 16 bytes
		b := a.As4()
		return 0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// Hash mixes the words hi and lo with a per-process random seed: a Map's
// slot is its top bits. Tables keyed by an address and more fold the rest
// into the words first.
func Hash(hi, lo uint64) uint64 {
	h := (lo ^ seed) * 0x9e3779b97f4a7c15
	h ^= hi * 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return h * 0x94d049bb133111eb
}

func (m *Map[V]) index(hi, lo uint64) uint64 { return Hash(hi, lo) >> m.shift }

// Build returns a map holding src's entries. IPv4-mapped IPv6 addresses
// and IPv4 addresses are the same key; zones are ignored.
func Build[V any](src map[netip.Addr]V) (Map[V], error) {
	var m Map[V]
	if len(src) == 0 {
		return m, nil
	}
	size := 8
	for size < 2*len(src) {
		size <<= 1
	}
	m.slots = make([]slot[V], size)
	m.shift = uint8(64 - bits.TrailingZeros(uint(size)))
	for a, v := range src {
		hi, lo := Words(a)
		if hi == 0 && lo == 0 {
			return Map[V]{}, ErrUnspecified
		}
		if m.put(hi, lo, v) {
			m.n++
		}
	}
	return m, nil
}

// MustBuild is Build for sets known to hold no ::.
func MustBuild[V any](src map[netip.Addr]V) Map[V] {
	m, err := Build(src)
	if err != nil {
		panic(err)
	}
	return m
}

// put stores v under (hi, lo); it reports whether the key was new.
func (m *Map[V]) put(hi, lo uint64, v V) bool {
	mask := uint64(len(m.slots) - 1)
	for i := m.index(hi, lo); ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.hi == hi && s.lo == lo {
			s.v = v
			return false
		}
		if s.hi == 0 && s.lo == 0 {
			s.hi, s.lo, s.v = hi, lo, v
			return true
		}
	}
}

// Len returns the number of keys.
func (m *Map[V]) Len() int { return m.n }

// lookup finds the slot of (hi, lo).
func (m *Map[V]) lookup(hi, lo uint64) *slot[V] {
	if m.n == 0 {
		return nil
	}
	mask := uint64(len(m.slots) - 1)
	for i := m.index(hi, lo); ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.lo == lo && s.hi == hi {
			return s
		}
		if s.hi == 0 && s.lo == 0 {
			return nil
		}
	}
}

// Get returns the value of a.
func (m *Map[V]) Get(a netip.Addr) (v V, ok bool) {
	hi, lo := Words(a)
	if s := m.lookup(hi, lo); s != nil {
		return s.v, true
	}
	return v, false
}

// Has reports whether a is a key.
func (m *Map[V]) Has(a netip.Addr) bool {
	hi, lo := Words(a)
	return m.lookup(hi, lo) != nil
}

// Get4 returns the value of the IPv4 address in network byte order b.
func (m *Map[V]) Get4(b []byte) (v V, ok bool) {
	if s := m.lookup(0, 0xffff<<32|uint64(binary.BigEndian.Uint32(b))); s != nil {
		return s.v, true
	}
	return v, false
}

// Has4 reports whether the IPv4 address in network byte order b[:4] is a
// key (the packet's own bytes: no netip.Addr on the way).
func (m *Map[V]) Has4(b []byte) bool {
	return m.lookup(0, 0xffff<<32|uint64(binary.BigEndian.Uint32(b))) != nil
}

// Get16 returns the value of the 16-byte address b[:16] (IPv4 v4-mapped).
func (m *Map[V]) Get16(b []byte) (v V, ok bool) {
	if s := m.lookup(binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])); s != nil {
		return s.v, true
	}
	return v, false
}

// Has16 reports whether the 16-byte address b[:16] is a key.
func (m *Map[V]) Has16(b []byte) bool {
	return m.lookup(binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])) != nil
}

// All calls f for every entry, in no particular order, until f returns
// false.
func (m *Map[V]) All(f func(netip.Addr, V) bool) {
	for i := range m.slots {
		s := &m.slots[i]
		if s.hi == 0 && s.lo == 0 {
			continue
		}
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], s.hi)
		binary.BigEndian.PutUint64(b[8:], s.lo)
		if !f(netip.AddrFrom16(b).Unmap(), s.v) {
			return
		}
	}
}
