// Package afxdp is GVS's AF_XDP port driver, the default on Linux.
//
// Each queue of a port is one AF_XDP socket bound to the same queue id of
// the kernel interface, with a UMEM: an anonymous mapping of FrameCount
// frames of pktbuf.DefaultFrameSize bytes that is also the memory of the
// queue's pktbuf.Pool, so a received packet is a Buf without a copy and a
// Buf of the queue's pool is transmitted without a copy. A port opened
// with port.Config.Share binds its queues to the UMEMs of the other port's
// queues (XDP_SHARED_UMEM, with fill and completion rings of their own):
// queue i of both then has one pool, and a packet received on one port
// leaves the other from the frame it arrived in. The frames are shared
// out as below, the fill targets splitting half of them. An XDP
// program built at run time redirects every packet of queue i to socket i
// through an XSKMAP; queues without a socket pass packets to the kernel.
//
// Frame ownership, per queue (all counts in frames):
//
//	pool free stack ──refill──▶ fill ring ──kernel──▶ rx ring ──RxBurst──▶ worker
//	worker ──TxBurst──▶ tx ring ──kernel──▶ completion ring ──reap──▶ pool free stack
//
// At most FrameCount/2 frames (and no more than the fill ring holds) are
// lent to the kernel for reception at any time, so transmission, Alloc and
// the copies TxBurst makes of foreign buffers always find frames even when
// the receive side is flooded; transmitted frames come back through the
// completion ring, which TxBurst, Flush, Alloc and a starving refill reap.
//
// System calls: RxBurst makes one (recvfrom) only when it found nothing and
// the kernel asked for a wakeup on the fill ring; TxBurst and Flush make one
// (sendto) when descriptors wait on the tx ring and the kernel asked for a
// wakeup, which copy mode always does. TxBurst kicks at the end of every
// burst it queued something in (the DESIGN "one wakeup per burst"); Flush
// repeats the kick while descriptors are still waiting (sendto in copy mode
// transmits a bounded budget per call and says EAGAIN when it stops early).
//
// The driver lives in the network namespace of the thread that calls Open:
// the sockets, the netlink handle used by LinkUp and the XDP attachment are
// all bound to it, so a port opened inside a namespace keeps working from
// any goroutine.
package afxdp

// Defaults for zero fields of port.Config.
const (
	DefaultQueues     = 1
	DefaultRing       = 2048
	DefaultFrameCount = 8192
)
