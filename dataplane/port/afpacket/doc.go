// Package afpacket is GVS's fallback port driver for NICs and kernels without
// AF_XDP: one AF_PACKET socket per queue, a TPACKET_V3 receive ring mapped
// into the process, and sendmmsg for transmission.
//
// Receive. The kernel fills fixed-size blocks of the ring with packets and
// hands a block to user space when it is full or when the retire timer fires
// (Options.BlockTimeout, 1 ms by default: the worst-case added latency at low
// rates). RxBurst walks the blocks in order with a cursor that survives
// across bursts, copies each packet into a buffer of the queue's own pool
// (after pktbuf.Headroom) and gives a block back to the kernel as soon as its
// last packet is copied. The kernel always strips the outer VLAN tag before
// packet taps see a frame; RxBurst puts it back, so the worker sees the frame
// as it was on the wire. RxBurst makes no system call.
//
// Transmit. TxBurst hands the whole burst to one sendmmsg call; the kernel
// copies the frames, so the buffers are freed at once.
//
// Queues. With more than one queue the sockets form one PACKET_FANOUT_HASH
// group (its id chosen by the kernel, unique in the namespace), so every flow
// sticks to one queue. A port never receives what it transmits (the kernel
// does not loop a socket's or its fanout group's frames back), nor, thanks
// to PACKET_IGNORE_OUTGOING, what the kernel itself sends out of the device.
// While Open joins the sockets into the group they drop everything, so no
// frame is delivered twice.
//
// Owning the device. AF_PACKET only taps frames: the kernel stack would still
// answer ARP, ICMP and TCP for the device's addresses. Unless
// Options.KeepKernelIngress is set, Open therefore installs a clsact qdisc
// (if the device has none) with a matchall filter whose action drops
// everything; packet taps run before tc ingress, so the driver still sees
// every frame. Close removes exactly what Open added: the filter, and the
// qdisc if Open created it. A filter left behind by a crashed process is
// recognised by its handle and replaced.
//
// Namespaces. Open works in the network namespace of the calling OS thread;
// the sockets and the netlink handle it creates stay bound to that
// namespace, so the port may be used, polled and closed from any goroutine.
package afpacket
