// Package pktbuf holds GVS's packet buffers and the pools they come from.
//
// A Buf is a fixed-size frame (default 2048 bytes) with headroom in front of
// the packet so headers can be prepended (VLAN tags, tunnels, TCP options)
// without a copy. Buffers live in a Pool owned by exactly one port queue and
// are therefore owned by exactly one worker: Get and Put are not safe for
// concurrent use. A Buf that must travel to another worker is copied, or
// returned to its owner through a ring; it is never Put from a foreign thread.
//
// The frame memory of a pool is either a Go byte arena (mem, afpacket) or a
// region the kernel shares with us (AF_XDP UMEM, DPDK mbufs): Buf.Addr keeps
// the driver's handle for the frame (its UMEM offset) so the driver can hand
// the very same frame back to the kernel without a lookup.
package pktbuf

// Sizes of a frame.
const (
	DefaultFrameSize = 2048
	// Headroom is reserved in front of every received packet.
	Headroom = 256
)

// Buf is one packet buffer. The packet occupies frame[off : off+n].
type Buf struct {
	frame []byte
	off   int
	n     int

	// Addr is the driver's handle of the frame (an AF_XDP UMEM address).
	Addr uint64
	// Port and Queue record where the packet was received.
	Port  uint16
	Queue uint16
	// Iface is the logical interface (port or VLAN) the packet belongs to,
	// set by the L2 stage.
	Iface uint16
	// L3 is the offset of the network header from the start of the packet,
	// set by the L2 stage.
	L3 uint16

	pool *Pool
	idx  int32
}

// Bytes returns the packet.
func (b *Buf) Bytes() []byte { return b.frame[b.off : b.off+b.n] }

// Len returns the packet length.
func (b *Buf) Len() int { return b.n }

// Headroom returns how many bytes can be prepended.
func (b *Buf) Headroom() int { return b.off }

// Tailroom returns how many bytes can be appended.
func (b *Buf) Tailroom() int { return len(b.frame) - b.off - b.n }

// Frame returns the whole frame storage, for drivers.
func (b *Buf) Frame() []byte { return b.frame }

// Offset returns where the packet starts inside the frame, for drivers.
func (b *Buf) Offset() int { return b.off }

// Pool returns the pool the buffer belongs to.
func (b *Buf) Pool() *Pool { return b.pool }

// Reset sets the packet to frame[off : off+n] and clears the metadata.
// It panics if the range does not fit the frame: that is a driver bug.
func (b *Buf) Reset(off, n int) {
	if off < 0 || n < 0 || off+n > len(b.frame) {
		panic("pktbuf: packet range outside frame")
	}
	b.off, b.n = off, n
	b.Port, b.Queue, b.Iface, b.L3 = 0, 0, 0, 0
}

// SetLen sets the packet length; it returns false if it does not fit.
func (b *Buf) SetLen(n int) bool {
	if n < 0 || b.off+n > len(b.frame) {
		return false
	}
	b.n = n
	return true
}

// Prepend grows the packet by n bytes at the front and returns them; nil if
// the headroom is too small.
func (b *Buf) Prepend(n int) []byte {
	if n > b.off {
		return nil
	}
	b.off -= n
	b.n += n
	return b.frame[b.off : b.off+n]
}

// Adj removes n bytes from the front of the packet; false if n > Len().
func (b *Buf) Adj(n int) bool {
	if n > b.n {
		return false
	}
	b.off += n
	b.n -= n
	return true
}

// Append grows the packet by n bytes at the end and returns them; nil if the
// tailroom is too small.
func (b *Buf) Append(n int) []byte {
	if n > b.Tailroom() {
		return nil
	}
	s := b.frame[b.off+b.n : b.off+b.n+n]
	b.n += n
	return s
}

// Trim removes n bytes from the end; false if n > Len().
func (b *Buf) Trim(n int) bool {
	if n > b.n {
		return false
	}
	b.n -= n
	return true
}

// CopyFrom replaces the packet with p, placed after the default headroom.
// It returns false if p does not fit.
func (b *Buf) CopyFrom(p []byte) bool {
	off := Headroom
	if off+len(p) > len(b.frame) {
		off = 0
		if len(p) > len(b.frame) {
			return false
		}
	}
	b.off, b.n = off, len(p)
	copy(b.frame[off:], p)
	return true
}

// Free returns the buffer to its pool.
func (b *Buf) Free() { b.pool.Put(b) }
