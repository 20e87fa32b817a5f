// Package dpdk is GVS's DPDK port driver, for bare-metal appliances whose
// NICs are bound to DPDK (vfio-pci), and for tests on DPDK's virtual
// devices (net_ring, net_null, net_af_packet). It needs the build tag dpdk
// and the distribution's DPDK (Debian libdpdk-dev 22.11): `make dpdk`. A
// build without the tag contains only this comment, and gvs-dataplane
// refuses `driver: dpdk` with a message saying how to build it.
//
// EAL: Init starts DPDK's environment abstraction layer once per process
// from the dataplane's `dpdk:` section (config.DPDK.EALArgs); the thread
// that calls it keeps its CPU affinity. GVS's workers stay Go threads
// pinned by GVS; each registers itself as a DPDK thread (rte_thread_register)
// on its first burst so mempool per-lcore caches work.
//
// Memory, per queue (each queue belongs to one worker): one memzone of
// FrameCount frames of pktbuf.DefaultFrameSize bytes, which is also the
// memory of the queue's pktbuf.Pool, and a mempool of mbufs with pinned
// external buffers over it, so mbuf i always carries frame i. A received
// packet is a Buf over its mbuf's frame (data pointer + offset, no copy);
// a Buf of the queue's pool is transmitted as its own mbuf.
//
// Frame ownership (the same shape as the AF_XDP driver):
//
//	pool free stack ──lend──▶ mempool ──PMD──▶ rx ring ──RxBurst──▶ worker
//	worker ──TxBurst──▶ tx ring ──PMD frees──▶ mempool ──reclaim──▶ pool free stack
//
// The Go pool decides which frames DPDK may use: RxBurst keeps about
// FrameCount/2 frames lent (mempool plus device rings) and lends more in
// the same cgo call that receives; Alloc and foreign copies reclaim frames
// from the mempool when the pool runs dry. A worker that holds every frame
// starves reception, which is counted (rx_no_frames; real PMDs also count
// rx_nombuf), never a crash.
//
// Crossings: one cgo call per RxBurst and one per TxBurst, whatever the
// burst size; mbufs from another queue's mempool (net_ring between ports)
// are copied and freed in bulk on the next RxBurst.
package dpdk
