//go:build linux

package afpacket

// The TPACKET_V3 receive ring: the only code that reads the memory the
// kernel shares with us, and the only unsafe code of the receive path.
//
// The ring is rxGeometry.blocks blocks of blockSize bytes. Each block starts
// with a struct tpacket_block_desc; block_status says who owns it
// (TP_STATUS_KERNEL: the kernel is filling it or will; TP_STATUS_USER: ours
// until we store TP_STATUS_KERNEL back). The kernel hands blocks over in ring
// order, so a single cursor (block, packets left, offset) walks them. Packets
// inside a block are struct tpacket3_hdr chained by tp_next_offset, the frame
// at tp_mac from the header, tp_snaplen bytes long.
//
// Ownership is transferred with atomics: the acquire load of block_status
// orders our reads of the block after the kernel's writes (it issues
// smp_wmb before publishing), and the store that returns the block orders
// all our reads of it before the kernel may overwrite it.

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Offsets in struct tpacket_block_desc (version, offset_to_priv, then
// struct tpacket_hdr_v1).
const (
	bdStatus   = 8
	bdNumPkts  = 12
	bdFirstPkt = 16
	bdLen      = 48 // the descriptor with tpacket_hdr_v1
	tp3Len     = unix.SizeofTpacket3Hdr
)

// rxGeometry is the shape of a receive ring.
type rxGeometry struct {
	blockSize int
	blocks    int
	frameSize int
	timeoutMs int
}

// rxRing is one socket's mapped receive ring and the cursor into it. It is
// used by the queue's worker only.
type rxRing struct {
	mem       []byte // the mapping; nil once unmapped
	blockSize int
	blocks    int

	blk  int    // block under the cursor
	left uint32 // packets not yet consumed in it; 0: no block open
	off  int    // offset of the packet under the cursor inside the block
}

// rxPacket describes the packet under the cursor. data aliases the ring and
// is valid until consume; nil means the descriptor was inconsistent.
type rxPacket struct {
	data    []byte
	wireLen uint32 // tp_len: the length on the wire (without a stripped tag)
	status  uint32 // tp_status of the packet (TP_STATUS_VLAN_VALID, ...)
	tci     uint16
	tpid    uint16
	next    uint32 // tp_next_offset
}

// mapRxRing configures fd for TPACKET_V3 with geometry g and maps the ring.
func mapRxRing(fd int, g rxGeometry) (*rxRing, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("set PACKET_VERSION TPACKET_V3: %w", err)
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(g.blockSize),
		Block_nr:       uint32(g.blocks),
		Frame_size:     uint32(g.frameSize),
		Frame_nr:       uint32(g.blockSize / g.frameSize * g.blocks),
		Retire_blk_tov: uint32(g.timeoutMs),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("set PACKET_RX_RING (%d blocks of %d bytes): %w", g.blocks, g.blockSize, err)
	}
	mem, err := unix.Mmap(fd, 0, g.blockSize*g.blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap rx ring of %d bytes: %w", g.blockSize*g.blocks, err)
	}
	return &rxRing{mem: mem, blockSize: g.blockSize, blocks: g.blocks}, nil
}

// unmap releases the mapping; the ring must not be used afterwards.
func (r *rxRing) unmap() error {
	if r == nil || r.mem == nil {
		return nil
	}
	mem := r.mem
	r.mem = nil
	return unix.Munmap(mem)
}

func (r *rxRing) word(off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[off]))
}

// peek returns the packet under the cursor, opening the next block if the
// kernel has handed it over; ok is false when there is nothing to read.
// Blocks without packets are given back at once.
func (r *rxRing) peek() (p rxPacket, ok bool) {
	for r.left == 0 {
		base := r.blk * r.blockSize
		if atomic.LoadUint32(r.word(base+bdStatus))&unix.TP_STATUS_USER == 0 {
			return rxPacket{}, false
		}
		n := *r.word(base + bdNumPkts)
		first := int(*r.word(base + bdFirstPkt))
		if n == 0 || first < bdLen || first+tp3Len > r.blockSize {
			r.release()
			continue
		}
		r.left, r.off = n, first
	}
	if r.off+tp3Len > r.blockSize {
		// A chain running off the block: the rest of it is unusable.
		r.release()
		return rxPacket{}, true
	}
	base := r.blk * r.blockSize
	h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&r.mem[base+r.off]))
	p = rxPacket{
		wireLen: h.Len,
		status:  h.Status,
		tci:     uint16(h.Hv1.Vlan_tci),
		tpid:    h.Hv1.Vlan_tpid,
		next:    h.Next_offset,
	}
	start := r.off + int(h.Mac)
	end := start + int(h.Snaplen)
	if end > r.blockSize {
		r.release()
		return rxPacket{}, true
	}
	p.data = r.mem[base+start : base+end : base+end]
	return p, true
}

// consume moves the cursor past the packet peek returned (next is its
// tp_next_offset) and gives the block back after its last packet. It does
// nothing when no block is open.
func (r *rxRing) consume(next uint32) {
	if r.left == 0 {
		return
	}
	r.left--
	if r.left == 0 || next < tp3Len {
		r.release()
		return
	}
	r.off += int(next)
}

// release returns the block under the cursor to the kernel and moves on.
func (r *rxRing) release() {
	atomic.StoreUint32(r.word(r.blk*r.blockSize+bdStatus), unix.TP_STATUS_KERNEL)
	r.left, r.off = 0, 0
	r.blk++
	if r.blk == r.blocks {
		r.blk = 0
	}
}
