package nat

import (
	"errors"

	"github.com/gvs-lb/gvs/header"
)

// Client-supplied TOA options.
//
// A real server's toa module believes the kind-254 (or, in some modules,
// kind-253) option of the segment that completes its handshake. Only GVS may
// put one there: a client that writes its own would choose the address the
// server logs and filters on. So every client→server TCP segment is scrubbed
// before GVS inserts its own TOA: ScrubTOA overwrites every option of kind
// TOAKind or TOAKindAlt, whatever its length, with NOPs. Overwriting rather
// than removing keeps the header length, the other options' offsets and the
// payload where they are, and needs only an incremental checksum update.
//
// Kinds 253 and 254 are also the RFC 6994 experimental kinds (an early TCP
// Fast Open used 254 with ExID 0xF989). A client loses such experiments
// towards FullNAT real servers; a server then falls back to the plain
// handshake.
//
// What a receiver would parse must be what ScrubTOA parsed:
//   - Options after End-of-Option-List are padding (RFC 9293 §3.1) that
//     conforming receivers never read. ScrubTOA zeroes any non-zero padding
//     byte, so that not even a parser that ignores EOL finds an option there.
//   - A malformed list (an option whose length is below 2 or runs past the
//     header, or a kind byte with no length byte) cannot be walked
//     reliably: receivers stop at that point, but a TOA parser that resyncs
//     differently might find a kind-254 inside. ScrubTOA refuses such a
//     segment with ErrTCPOptions and leaves it unchanged; the caller drops it.
//
// VerifyTCPChecksum lets the caller refuse a segment before trusting it to
// carry GVS's TOA (a segment with a bad checksum is discarded by the server
// and would not complete its handshake).
const (
	// TOAKindAlt is the option kind some toa modules use for the IPv6 form.
	TOAKindAlt = 253
)

// ErrTCPOptions: the TCP option list is malformed (an option length below 2
// or past the end of the header, or a missing length byte).
var ErrTCPOptions = errors.New("nat: malformed TCP options")

// ScrubTOA overwrites every TCP option of kind 254 or 253 in packet l3 (an
// IPv4 or IPv6 TCP packet starting at the IP header, validated and trimmed
// as the package contract says) with NOPs and zeroes non-zero padding after
// an End-of-Option-List, updating the TCP checksum incrementally. It returns
// the number of TOA options overwritten. A segment without options (data
// offset 5) returns at once.
//
// Errors (the packet is unchanged): those of locate, ErrUnsupportedProto
// unless TCP, ErrTruncated if the TCP header is incomplete, ErrTCPOptions if
// the option list is malformed (see the file comment).
func ScrubTOA(l3 []byte) (int, error) {
	loc, err := locate(l3)
	if err != nil {
		return 0, err
	}
	if loc.proto != header.ProtoTCP {
		return 0, ErrUnsupportedProto
	}
	tcp := header.TCP(l3[loc.l4:loc.end])
	if !tcp.IsValid() {
		return 0, ErrTruncated
	}
	hl := tcp.DataOffset()
	if hl == header.TCPMinSize {
		return 0, nil
	}
	// First pass: validate the list and see whether there is anything to do,
	// so that a malformed list leaves the packet unchanged.
	found, dirtyPad := false, false
	i := header.TCPMinSize
walk:
	for i < hl {
		switch k := tcp[i]; k {
		case tcpOptEOL:
			for j := i + 1; j < hl; j++ {
				dirtyPad = dirtyPad || tcp[j] != 0
			}
			break walk
		case tcpOptNOP:
			i++
			continue
		case TOAKind, TOAKindAlt:
			found = true
		}
		if i+1 >= hl {
			return 0, ErrTCPOptions
		}
		l := int(tcp[i+1])
		if l < 2 || i+l > hl {
			return 0, ErrTCPOptions
		}
		i += l
	}
	if !found && !dirtyPad {
		return 0, nil
	}
	// Second pass: overwrite. Offsets in tcp have the parity they have in
	// the checksummed data (the pseudo-header is 12 or 40 bytes long).
	var acc uint64
	n := 0
	for i = header.TCPMinSize; i < hl; {
		switch k := tcp[i]; k {
		case tcpOptEOL:
			for j := i + 1; j < hl; j++ {
				acc = setByte(acc, tcp, j, 0)
			}
			i = hl
			continue
		case tcpOptNOP:
			i++
			continue
		case TOAKind, TOAKindAlt:
			l := int(tcp[i+1])
			for j := i; j < i+l; j++ {
				acc = setByte(acc, tcp, j, tcpOptNOP)
			}
			n++
			i += l
			continue
		}
		i += int(tcp[i+1])
	}
	tcp.SetChecksum(apply(tcp.Checksum(), acc))
	return n, nil
}

// setByte writes v at b[i] and adds the difference to acc: a byte at an even
// offset is the high half of its 16-bit word, at an odd offset the low half.
func setByte(acc uint64, b []byte, i int, v byte) uint64 {
	old := b[i]
	if old == v {
		return acc
	}
	b[i] = v
	if i%2 == 0 {
		return diff16(acc, uint16(old)<<8, uint16(v)<<8)
	}
	return diff16(acc, uint16(old), uint16(v))
}

// VerifyTCPChecksum reports whether packet l3 (IPv4 or IPv6, starting at the
// IP header) is a TCP segment whose checksum is correct: the one's-complement
// sum of the pseudo-header and the whole segment, checksum included, is all
// ones. It reads the whole segment (about 1 ns per 16 bytes).
func VerifyTCPChecksum(l3 []byte) bool {
	loc, err := locate(l3)
	if err != nil || loc.proto != header.ProtoTCP || loc.end-loc.l4 < header.TCPMinSize {
		return false
	}
	var src, dst []byte
	if loc.v6 {
		ip := header.IPv6(l3)
		src, dst = ip.SrcBytes(), ip.DstBytes()
	} else {
		ip := header.IPv4(l3)
		src, dst = ip.SrcBytes(), ip.DstBytes()
	}
	seg := l3[loc.l4:loc.end]
	s := header.PseudoHeaderChecksum(header.ProtoTCP, src, dst, uint16(len(seg)))
	return header.Checksum(seg, s) == 0xffff
}
