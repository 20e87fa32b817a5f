// Package flowdir steers flows to workers: the Toeplitz RSS hash NICs use
// to pick a receive queue (computed in software to predict where a reply
// will land), and — with the FullNAT work — per-worker local address pools,
// flow-director rules and the software redirect fallback.
package flowdir

import "net/netip"

// DefaultRSSKey is the 40-byte Toeplitz key most NIC drivers ship with
// (Microsoft's RSS verification key).
var DefaultRSSKey = [40]byte{
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
}

// Toeplitz computes RSS hashes with one key. The per-byte tables make a hash
// cost one table lookup and XOR per input byte.
type Toeplitz struct {
	// tbl[i][b] is the hash contribution of byte value b at input offset i.
	tbl [][256]uint32
}

// NewToeplitz precomputes the tables for inputs up to the key's length
// minus 4 bytes (36 bytes with a 40-byte key: an IPv6 4-tuple).
func NewToeplitz(key []byte) *Toeplitz {
	n := len(key) - 4
	t := &Toeplitz{tbl: make([][256]uint32, n)}
	for i := 0; i < n; i++ {
		for bit := 0; bit < 8; bit++ {
			// the 32-bit window of the key starting at bit position i*8+bit
			w := window(key, i*8+bit)
			for b := 0; b < 256; b++ {
				if b&(0x80>>bit) != 0 {
					t.tbl[i][b] ^= w
				}
			}
		}
	}
	return t
}

func window(key []byte, bitPos int) uint32 {
	var w uint32
	for k := 0; k < 32; k++ {
		p := bitPos + k
		if key[p/8]&(0x80>>(p%8)) != 0 {
			w |= 1 << (31 - k)
		}
	}
	return w
}

// Hash returns the Toeplitz hash of input (at most 36 bytes with the
// default key).
func (t *Toeplitz) Hash(input []byte) uint32 {
	var h uint32
	for i, b := range input {
		h ^= t.tbl[i][b]
	}
	return h
}

// Hash4Tuple hashes src, dst, srcPort, dstPort in the order NICs use for
// TCP/UDP RSS. ports false hashes the addresses only (the 2-tuple type).
func (t *Toeplitz) Hash4Tuple(src, dst netip.Addr, srcPort, dstPort uint16, ports bool) uint32 {
	var buf [36]byte
	n := 0
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		n += copy(buf[n:], s[:])
		n += copy(buf[n:], d[:])
	} else {
		s, d := src.As16(), dst.As16()
		n += copy(buf[n:], s[:])
		n += copy(buf[n:], d[:])
	}
	if ports {
		buf[n], buf[n+1], buf[n+2], buf[n+3] = byte(srcPort>>8), byte(srcPort), byte(dstPort>>8), byte(dstPort)
		n += 4
	}
	return t.Hash(buf[:n])
}
