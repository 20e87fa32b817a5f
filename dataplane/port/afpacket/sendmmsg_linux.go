//go:build linux

package afpacket

// Transmission with sendmmsg(2): one system call hands a whole burst to the
// kernel, which copies every frame into an skb before the call returns, so
// the buffers may be reused at once. The mmsghdr and iovec arrays are
// allocated once per queue; a burst only rewrites the iovecs. The socket is
// bound to the device, so messages carry no address.
//
// The iovecs point into pool memory, which lives in the Go heap (never
// moved) and is kept alive by the pool for as long as the queue exists.

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/dataplane/pktbuf"
)

// maxTxBatch bounds the frames passed to one sendmmsg call (the kernel's
// own limit, UIO_MAXIOV, is 1024).
const maxTxBatch = 256

type sender struct {
	fd   int
	msgs []unix.Mmsghdr
	iovs []unix.Iovec
}

func newSender(fd, n int) sender {
	s := sender{fd: fd, msgs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n)}
	for i := range s.msgs {
		s.msgs[i].Hdr.Iov = &s.iovs[i]
		s.msgs[i].Hdr.SetIovlen(1)
	}
	return s
}

// send passes up to len(s.msgs) frames of bufs to the kernel in one
// sendmmsg call. It returns how many the kernel took; when it took none, e
// is the error of the first frame.
func (s *sender) send(bufs []*pktbuf.Buf) (sent int, e unix.Errno) {
	n := min(len(bufs), len(s.msgs))
	if n == 0 {
		return 0, 0
	}
	for i, b := range bufs[:n] {
		p := b.Bytes()
		s.iovs[i].Base = unsafe.SliceData(p)
		s.iovs[i].SetLen(len(p))
	}
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
		uintptr(unsafe.Pointer(&s.msgs[0])), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}
