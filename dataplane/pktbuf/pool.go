package pktbuf

import "fmt"

// Pool is a fixed set of buffers over one memory region, with a LIFO free
// stack (recently used frames are warm in cache). It is owned by one worker
// and not safe for concurrent use.
type Pool struct {
	bufs      []Buf
	free      []int32
	frameSize int
	mem       []byte
	inUse     []bool
}

// NewPool creates a pool of n frames of frameSize bytes in a Go arena.
func NewPool(n, frameSize int) *Pool {
	return NewPoolOver(make([]byte, n*frameSize), frameSize)
}

// NewPoolOver creates a pool over mem (for example an AF_XDP UMEM), cut into
// frames of frameSize bytes. Buf.Addr of frame i is i*frameSize.
func NewPoolOver(mem []byte, frameSize int) *Pool {
	if frameSize <= Headroom {
		panic(fmt.Sprintf("pktbuf: frame size %d not above headroom %d", frameSize, Headroom))
	}
	n := len(mem) / frameSize
	p := &Pool{
		bufs:      make([]Buf, n),
		free:      make([]int32, 0, n),
		frameSize: frameSize,
		mem:       mem,
		inUse:     make([]bool, n),
	}
	for i := n - 1; i >= 0; i-- {
		b := &p.bufs[i]
		b.frame = mem[i*frameSize : (i+1)*frameSize : (i+1)*frameSize]
		b.Addr = uint64(i * frameSize)
		b.pool = p
		b.idx = int32(i)
		b.off = Headroom
		p.free = append(p.free, int32(i))
	}
	return p
}

// Get takes a free buffer with an empty packet after the headroom; nil when
// the pool is exhausted.
func (p *Pool) Get() *Buf {
	n := len(p.free)
	if n == 0 {
		return nil
	}
	i := p.free[n-1]
	p.free = p.free[:n-1]
	p.inUse[i] = true
	b := &p.bufs[i]
	b.Reset(Headroom, 0)
	return b
}

// Put returns b to the pool. Putting a buffer twice or into a foreign pool
// panics: both are ownership bugs that would corrupt packets later.
func (p *Pool) Put(b *Buf) {
	if b.pool != p || !p.inUse[b.idx] {
		panic("pktbuf: buffer freed twice or into a foreign pool")
	}
	p.inUse[b.idx] = false
	p.free = append(p.free, b.idx)
}

// ByAddr returns the buffer of the frame at driver address addr and marks it
// in use: drivers call it for frames the kernel hands back. It returns nil if
// addr is outside the pool.
func (p *Pool) ByAddr(addr uint64) *Buf {
	i := addr / uint64(p.frameSize)
	if i >= uint64(len(p.bufs)) {
		return nil
	}
	p.inUse[i] = true
	return &p.bufs[i]
}

// TakeFree pops a free frame's address without handing out its Buf, for
// drivers that give frames to the kernel (AF_XDP fill ring). ok is false when
// the pool is exhausted.
func (p *Pool) TakeFree() (addr uint64, ok bool) {
	n := len(p.free)
	if n == 0 {
		return 0, false
	}
	i := p.free[n-1]
	p.free = p.free[:n-1]
	p.inUse[i] = true
	return uint64(i) * uint64(p.frameSize), true
}

// ReleaseAddr returns the frame at addr to the free stack (AF_XDP completion
// ring). Out-of-range addresses are ignored and reported as false.
func (p *Pool) ReleaseAddr(addr uint64) bool {
	i := addr / uint64(p.frameSize)
	if i >= uint64(len(p.bufs)) || !p.inUse[i] {
		return false
	}
	p.inUse[i] = false
	p.free = append(p.free, int32(i))
	return true
}

// Size returns the number of frames; Free the number currently free.
func (p *Pool) Size() int { return len(p.bufs) }

// Free returns the number of free frames.
func (p *Pool) Free() int { return len(p.free) }

// FrameSize returns the frame size.
func (p *Pool) FrameSize() int { return p.frameSize }

// Mem returns the pool's memory region.
func (p *Pool) Mem() []byte { return p.mem }
