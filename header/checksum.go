// Package header provides views over packet headers in a []byte, in the
// manner of gVisor's netstack: `type IPv4 []byte` with getters named after
// the fields and setters prefixed with Set. A view is validated once at the
// edge (IsValid or a Parse function), after which its accessors do no bounds
// checks of their own beyond Go's. Checksum helpers include the incremental
// update of RFC 1624 used by address rewriting.
package header

import "encoding/binary"

// Checksum adds the 16-bit big-endian words of b to the running sum initial
// and returns the folded (not complemented) one's-complement sum.
func Checksum(b []byte, initial uint16) uint16 {
	sum := uint64(initial)
	// 8 bytes at a time; carries are folded at the end.
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		sum += v >> 32
		sum += v & 0xffffffff
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return fold(sum)
}

// Fold folds a 64-bit running sum of 16- or 32-bit words into the 16-bit
// one's-complement sum, in constant time (four steps cover any carry).
func Fold(sum uint64) uint16 {
	sum = (sum & 0xffffffff) + sum>>32
	sum = (sum & 0xffff) + sum>>16
	sum = (sum & 0xffff) + sum>>16
	sum = (sum & 0xffff) + sum>>16
	return uint16(sum)
}

func fold(sum uint64) uint16 { return Fold(sum) }

// ChecksumCombine adds two one's-complement partial sums.
func ChecksumCombine(a, b uint16) uint16 {
	return fold(uint64(a) + uint64(b))
}

// PseudoHeaderChecksum returns the partial sum of the TCP/UDP/ICMPv6
// pseudo-header for addresses src and dst (4 or 16 bytes each).
func PseudoHeaderChecksum(proto uint8, src, dst []byte, length uint16) uint16 {
	s := Checksum(src, 0)
	s = Checksum(dst, s)
	return ChecksumCombine(s, ChecksumCombine(uint16(proto), length))
}

// ChecksumUpdate16 returns the checksum field value after one 16-bit word of
// the covered data changed from old to new (RFC 1624, eqn. 3).
func ChecksumUpdate16(cksum, old, new uint16) uint16 {
	return ^fold(uint64(^cksum) + uint64(^old) + uint64(new))
}

// ChecksumUpdate returns the checksum field value after the covered bytes old
// were replaced by new (same even length: addresses, ports).
func ChecksumUpdate(cksum uint16, old, new []byte) uint16 {
	sum := uint64(^cksum)
	for i := 0; i+1 < len(old); i += 2 {
		sum += uint64(^binary.BigEndian.Uint16(old[i:]))
		sum += uint64(binary.BigEndian.Uint16(new[i:]))
	}
	return ^fold(sum)
}
