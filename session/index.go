package session

import (
	"encoding/binary"
	"math/bits"
)

// The index: open addressing over a power-of-two array of 8-byte slots,
// linear probing, backward-shift deletion (no tombstones). It holds two
// entries per connection, so with 4 slots per connection the load never
// exceeds 0.5.
//
// A slot is {tag, ref}. tag is the key's 32-bit hash; its low bits are the
// slot's home position, so deletion can tell where an entry belongs
// without rehashing. ref is (id+1)<<1 | direction: ref 0 marks an empty
// slot, and no occupied slot has ref 0 or 1.
type slot struct {
	tag uint32
	ref uint32
}

func makeRef(id uint32, dir Direction) uint32 { return (id+1)<<1 | uint32(dir) }
func refID(ref uint32) uint32                 { return ref>>1 - 1 }
func refDir(ref uint32) Direction             { return Direction(ref & 1) }

// mum is the 64×64→128 multiply folded to 64 bits, the mixing step of
// wyhash-style hashes.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash mixes a key with the table's random seed. It is not cryptographic,
// but an attacker who does not know the seed cannot aim at one probe chain.
func (t *Table) hash(proto uint8, src, dst *[16]byte, sport, dport uint16) uint32 {
	return t.hashWords(proto, words(src), words(dst), sport, dport)
}

// addrWords is a 16-byte address as the index hashes and compares it: its
// two halves read little-endian. An IPv4 address (v4-mapped) has hi 0 and
// lo mapped4(a), so an IPv4 packet's key is hashed and matched from the
// header's 4-byte fields without building the 16-byte form (LookupAt).
type addrWords struct{ hi, lo uint64 }

func words(a *[16]byte) addrWords {
	return addrWords{binary.LittleEndian.Uint64(a[:8]), binary.LittleEndian.Uint64(a[8:])}
}

// mapped4 is the lo word of the v4-mapped form of the IPv4 address b[:4].
func mapped4(b []byte) uint64 {
	return 0xffff<<16 | uint64(binary.LittleEndian.Uint32(b))<<32
}

func (t *Table) hashWords(proto uint8, src, dst addrWords, sport, dport uint16) uint32 {
	s := &t.seed
	a := mum(src.hi^s[0], src.lo^s[1])
	b := mum(dst.hi^s[2], dst.lo^s[3])
	c := uint64(sport) | uint64(dport)<<16 | uint64(proto)<<32
	h := mum(a^c^s[4], b^s[5])
	return uint32(h^h>>32) & t.hashMask
}

func (t *Table) hashIn(c *Conn) uint32 {
	return t.hash(c.Proto, &c.CAddr, &c.VAddr, c.CPort, c.VPort)
}

func (t *Table) hashOut(c *Conn) uint32 {
	return t.hash(c.Proto, &c.DAddr, &c.LAddr, c.DPort, c.LPort)
}

func (t *Table) hashKey(k *Key) uint32 {
	return t.hash(k.Proto, &k.Src, &k.Dst, k.SrcPort, k.DstPort)
}

// find returns the ref of the entry for k, or 0.
func (t *Table) find(k *Key, h uint32) uint32 {
	mask := t.imask
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.index[i]
		if s.ref == 0 {
			return 0
		}
		if s.tag == h && t.matches(s.ref, k) {
			return s.ref
		}
	}
}

// find4 is find for an IPv4 key given as words: the source and
// destination lo words (mapped4), the ports and the protocol.
func (t *Table) find4(proto uint8, src, dst uint64, sport, dport uint16, h uint32) uint32 {
	mask := t.imask
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.index[i]
		if s.ref == 0 {
			return 0
		}
		if s.tag != h {
			continue
		}
		c := &t.conns[refID(s.ref)]
		if c.Proto != proto {
			continue
		}
		if refDir(s.ref) == In {
			if c.CPort == sport && c.VPort == dport && words(&c.CAddr) == (addrWords{0, src}) && words(&c.VAddr) == (addrWords{0, dst}) {
				return s.ref
			}
		} else if c.DPort == sport && c.LPort == dport && words(&c.DAddr) == (addrWords{0, src}) && words(&c.LAddr) == (addrWords{0, dst}) {
			return s.ref
		}
	}
}

func (t *Table) matches(ref uint32, k *Key) bool {
	c := &t.conns[refID(ref)]
	if refDir(ref) == In {
		return c.matchIn(k)
	}
	return c.matchOut(k)
}

// probe returns where k's entry is (found) or the empty slot where it
// would go.
func (t *Table) probe(k *Key, h uint32) (pos uint32, found bool) {
	mask := t.imask
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.index[i]
		if s.ref == 0 {
			return i, false
		}
		if s.tag == h && t.matches(s.ref, k) {
			return i, true
		}
	}
}

// nextEmpty returns the first empty slot after pos.
func (t *Table) nextEmpty(pos uint32) uint32 {
	mask := t.imask
	for i := (pos + 1) & mask; ; i = (i + 1) & mask {
		if t.index[i].ref == 0 {
			return i
		}
	}
}

// remove deletes the entry with ref, which hashes to h and must be
// present, and shifts the entries after it back towards their homes.
func (t *Table) remove(h, ref uint32) {
	mask := t.imask
	i := h & mask
	for t.index[i].ref != ref {
		i = (i + 1) & mask
	}
	for {
		t.index[i] = slot{}
		j := i
		for {
			j = (j + 1) & mask
			s := t.index[j]
			if s.ref == 0 {
				return
			}
			// s may fill the hole at i unless its home lies cyclically
			// in (i, j].
			if (j-s.tag)&mask >= (j-i)&mask {
				t.index[i] = s
				i = j
				break
			}
		}
	}
}
