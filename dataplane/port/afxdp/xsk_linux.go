//go:build linux

// System calls of the AF_XDP socket: UMEM registration, ring creation and
// mmap, bind, wakeups and statistics, plus the ethtool query for the queue
// count. Everything that passes pointers to the kernel lives here.
package afxdp

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
)

// ringSizes are the four ring sizes of one socket, in entries.
type ringSizes struct {
	fill, comp, rx, tx uint32
}

// xsk is one AF_XDP socket with its rings (the UMEM memory itself belongs to
// the queue and outlives a failed bind attempt).
type xsk struct {
	fd   int
	fill addrRing
	comp addrRing
	rx   descRing
	tx   descRing
}

// umemHeadroom is what we ask the kernel to reserve in front of received
// packets on top of XDP_PACKET_HEADROOM (256), which it always reserves:
// together they give every received packet exactly pktbuf.Headroom bytes in
// front of it. Registering pktbuf.Headroom itself would start packets 512
// bytes into the frame and cap the MTU at 1518 for no gain.
const umemHeadroom = max(pktbuf.Headroom-unix.XDP_PACKET_HEADROOM, 0)

// newXSK creates a socket over umem, sets up its rings and binds it to
// (ifindex, queue) with bindFlags. With sharedFD >= 0 the socket uses the
// UMEM registered on that socket instead (XDP_SHARED_UMEM: fill and
// completion rings of its own, the mode and need_wakeup of the UMEM's
// first socket; bindFlags are not used). On error nothing is left open.
func newXSK(umem []byte, frameSize int, sz ringSizes, ifindex, queue int, bindFlags uint16, sharedFD int) (x *xsk, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket(AF_XDP): %w", err)
	}
	x = &xsk{fd: fd}
	defer func() {
		if err != nil {
			x.close()
			x = nil
		}
	}()

	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(umem)))),
		Len:      uint64(len(umem)),
		Size:     uint32(frameSize),
		Headroom: uint32(umemHeadroom),
	}
	if sharedFD < 0 {
		if err := setsockopt(fd, unix.SOL_XDP, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
			return x, fmt.Errorf("register UMEM (%d bytes): %w", len(umem), err)
		}
	}
	for _, o := range []struct {
		opt  int
		size uint32
		name string
	}{
		{unix.XDP_UMEM_FILL_RING, sz.fill, "fill"},
		{unix.XDP_UMEM_COMPLETION_RING, sz.comp, "completion"},
		{unix.XDP_RX_RING, sz.rx, "rx"},
		{unix.XDP_TX_RING, sz.tx, "tx"},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, o.opt, int(o.size)); err != nil {
			return x, fmt.Errorf("create %s ring of %d: %w", o.name, o.size, err)
		}
	}
	var off unix.XDPMmapOffsets
	optlen := uint32(unsafe.Sizeof(off))
	if err := getsockopt(fd, unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), &optlen); err != nil {
		return x, fmt.Errorf("get ring offsets: %w", err)
	}
	if optlen != uint32(unsafe.Sizeof(off)) {
		return x, fmt.Errorf("get ring offsets: kernel too old (no ring flags; need Linux >= 5.4)")
	}
	mm := func(pgoff int64, o unix.XDPRingOffset, size uint32, ent uintptr, name string) ([]byte, error) {
		b, err := unix.Mmap(fd, pgoff, ringBytes(o, size, ent), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, fmt.Errorf("mmap %s ring: %w", name, err)
		}
		return b, nil
	}
	var m []byte
	if m, err = mm(unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, sz.fill, addrSize, "fill"); err != nil {
		return x, err
	}
	x.fill.init(m, off.Fr, sz.fill)
	if m, err = mm(unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, sz.comp, addrSize, "completion"); err != nil {
		return x, err
	}
	x.comp.init(m, off.Cr, sz.comp)
	if m, err = mm(unix.XDP_PGOFF_RX_RING, off.Rx, sz.rx, descSize, "rx"); err != nil {
		return x, err
	}
	x.rx.init(m, off.Rx, sz.rx)
	if m, err = mm(unix.XDP_PGOFF_TX_RING, off.Tx, sz.tx, descSize, "tx"); err != nil {
		return x, err
	}
	x.tx.init(m, off.Tx, sz.tx)

	// In copy mode every transmitted packet is an skb charged to the
	// socket's send buffer; the default (~200 KiB) throttles a full tx ring
	// to a trickle of EAGAINs. Raising it needs CAP_NET_ADMIN; without it we
	// run with what we get.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndBuf)
	}

	sa := &unix.SockaddrXDP{Flags: bindFlags, Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	if sharedFD >= 0 {
		sa.Flags, sa.SharedUmemFD = unix.XDP_SHARED_UMEM, uint32(sharedFD)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return x, err // the caller names the operation and decides on retries
	}

	// Linux >= 6.17 lets a copy-mode socket transmit more than 32 packets
	// per wakeup. Older kernels say ENOPROTOOPT; either way it is optional.
	_ = unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, int(min(sz.tx, txBudget)))
	return x, nil
}

const (
	sndBuf   = 4 << 20
	txBudget = 256
)

// close unmaps the rings and closes the socket; it may be called on a
// partly built socket and more than once.
func (x *xsk) close() error {
	for _, r := range []*ring{&x.fill.ring, &x.comp.ring, &x.rx.ring, &x.tx.ring} {
		if r.mem != nil {
			_ = unix.Munmap(r.mem)
			*r = ring{}
		}
	}
	x.fill.addrs, x.comp.addrs, x.rx.descs, x.tx.descs = nil, nil, nil, nil
	if x.fd >= 0 {
		err := unix.Close(x.fd)
		x.fd = -1
		return err
	}
	return nil
}

// kickTx asks the kernel to transmit what is on the tx ring. It returns 0 or
// the errno of sendto; it does not allocate.
func kickTx(fd int) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

// kickRx asks the kernel to refill from the fill ring (drivers that set
// need_wakeup on it). It does not allocate.
func kickRx(fd int) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

// xdpStatistics reads the socket's XDP_STATISTICS.
func xdpStatistics(fd int) (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	optlen := uint32(unsafe.Sizeof(st))
	err := getsockopt(fd, unix.SOL_XDP, unix.XDP_STATISTICS, unsafe.Pointer(&st), &optlen)
	return st, err
}

func setsockopt(fd, level, opt int, val unsafe.Pointer, size uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(val), size, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockopt(fd, level, opt int, val unsafe.Pointer, optlen *uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(val), uintptr(unsafe.Pointer(optlen)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// ethtoolChannels mirrors struct ethtool_channels.
type ethtoolChannels struct {
	cmd                                         uint32
	maxRx, maxTx, maxOther, maxCombined         uint32
	rxCount, txCount, otherCount, combinedCount uint32
}

// ifreqData is struct ifreq with the ifr_data member.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

// ethtoolInfo returns dev's driver name and how many rx and tx queues it
// has in use according to ETHTOOL_GCHANNELS (0, 0 if it does not say), in
// the calling thread's network namespace.
func ethtoolInfo(dev string) (driver string, rx, tx int, err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", 0, 0, err
	}
	defer unix.Close(fd)
	if di, err := unix.IoctlGetEthtoolDrvinfo(fd, dev); err == nil {
		driver = unix.ByteSliceToString(di.Driver[:])
	}
	ch := ethtoolChannels{cmd: unix.ETHTOOL_GCHANNELS}
	var ifr ifreqData
	copy(ifr.name[:len(ifr.name)-1], dev)
	ifr.data = unsafe.Pointer(&ch)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if e == unix.EOPNOTSUPP {
		return driver, 0, 0, nil
	}
	if e != 0 {
		return driver, 0, 0, e
	}
	return driver, int(ch.rxCount + ch.combinedCount), int(ch.txCount + ch.combinedCount), nil
}

// zeroCopy reports whether the bound socket runs in zero-copy mode
// (XDP_OPTIONS).
func zeroCopy(fd int) (bool, error) {
	var opts uint32
	optlen := uint32(unsafe.Sizeof(opts))
	if err := getsockopt(fd, unix.SOL_XDP, unix.XDP_OPTIONS, unsafe.Pointer(&opts), &optlen); err != nil {
		return false, err
	}
	return opts&unix.XDP_OPTIONS_ZEROCOPY != 0, nil
}

// mmapUMEM maps size bytes of anonymous, prefaulted memory for a UMEM,
// advised to use transparent huge pages (MADV_HUGEPAGE; effective when THP
// is "always" or "madvise"). Every packet's headers are read and written
// in a frame somewhere in the UMEM: the default 8 192 frames per port are
// 4 096 pages of 4 KiB, more than the TLB holds, so on small pages most
// packets cost a page walk. The advice goes before the pages are faulted in; without THP
// the mapping is the same memory on small pages.
func mmapUMEM(size int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	if unix.Madvise(b, unix.MADV_POPULATE_WRITE) != nil { // before Linux 5.14
		for i := 0; i < len(b); i += os.Getpagesize() {
			b[i] = 0
		}
	}
	return b, nil
}
