package nat

import (
	"encoding/binary"
	"math/bits"

	"github.com/gvs-lb/gvs/header"
)

// Incremental checksums (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
//
// A rewrite usually changes several fields that one or more checksums cover
// (addresses feed the IPv4 header checksum and the TCP/UDP pseudo-header,
// ports only the latter). The helpers below accumulate the one's-complement
// difference ~m + m' of each changed field into a uint64 once, and apply the
// total to every checksum that covers those fields. The accumulator is
// folded only when applied. header.ChecksumUpdate does the same for one field
// and one checksum; this accumulator is the form that feeds several.
//
// Words may be 16 or 32 bits wide: 2^16 ≡ 1 (mod 0xffff), so a 32-bit word
// contributes to the folded sum exactly what its two 16-bit halves do, and
// ^w (= 0xffffffff - w) is ≡ -w because 0xffffffff ≡ 0.

// diff16 adds the difference of one 16-bit word at an even offset.
func diff16(acc uint64, old, new uint16) uint64 {
	return acc + uint64(^old) + uint64(new)
}

// diff16Odd adds the difference of a 16-bit value stored at an odd offset of
// the covered data: its bytes fall into two words, as the low byte of one and
// the high byte of the next, so it counts byte-swapped (RFC 1071 §2(B)).
func diff16Odd(acc uint64, old, new uint16) uint64 {
	return diff16(acc, bits.ReverseBytes16(old), bits.ReverseBytes16(new))
}

// diffAddr4 adds the difference between the IPv4 address at b and a, and
// writes a to b.
func diffAddr4(acc uint64, b []byte, a [4]byte) uint64 {
	_ = b[3]
	n := binary.BigEndian.Uint32(a[:])
	acc += uint64(^binary.BigEndian.Uint32(b)) + uint64(n)
	binary.BigEndian.PutUint32(b, n)
	return acc
}

// diffAddr16 adds the difference between the IPv6 address at b and a, and
// writes a to b.
func diffAddr16(acc uint64, b []byte, a *[16]byte) uint64 {
	_ = b[15]
	o0, o1 := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
	n0, n1 := binary.BigEndian.Uint64(a[:]), binary.BigEndian.Uint64(a[8:])
	o0, o1 = ^o0, ^o1
	acc += o0>>32 + o0&0xffffffff + o1>>32 + o1&0xffffffff
	acc += n0>>32 + n0&0xffffffff + n1>>32 + n1&0xffffffff
	binary.BigEndian.PutUint64(b, n0)
	binary.BigEndian.PutUint64(b[8:], n1)
	return acc
}

// addWords adds the 16-bit words of b (even length, even offset): the
// contribution of bytes inserted into the covered data.
func addWords(acc uint64, b []byte) uint64 {
	for i := 0; i+2 <= len(b); i += 2 {
		acc += uint64(binary.BigEndian.Uint16(b[i:]))
	}
	return acc
}

// apply returns checksum field value ck updated by the accumulated difference.
// Because ~ck + acc is positive (unless ck is 0xffff and every term of acc is
// zero), the folded sum lands in 1..0xffff and the result equals a checksum
// computed from scratch, which is 0x0000 rather than 0xffff when the data sum
// to all ones.
func apply(ck uint16, acc uint64) uint16 {
	return ^header.Fold(uint64(^ck) + acc)
}

func be16(b []byte) uint16     { return binary.BigEndian.Uint16(b) }
func put16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func be32(b []byte) uint32     { return binary.BigEndian.Uint32(b) }
func put32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }

// udpChecksum returns the value to store for a computed UDP checksum: zero
// means "no checksum" in UDP, so a computed zero is sent as all ones
// (RFC 768).
func udpChecksum(ck uint16) uint16 {
	if ck == 0 {
		return 0xffff
	}
	return ck
}
