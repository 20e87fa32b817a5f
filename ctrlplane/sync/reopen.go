package sync

// Reopening keeps the multicast socket working across restarts of the
// local dataplane: the KNI interface it is bound to is deleted and made
// again, and a socket bound to the old device neither sends nor receives
// (sends fail, receives just block). Reopening watches the interface's
// index once a second and reopens the socket (joining the group again)
// when the device changed or a send failed. It does so in the network
// namespace it was opened in, whatever thread the watcher runs on.

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	stdsync "sync"
	"time"

	"github.com/vishvananda/netns"
)

// Reopening is a Transport over ListenMulticast that survives the
// interface being re-created.
type Reopening struct {
	ifname string
	group  netip.AddrPort
	ns     netns.NsHandle // where it was opened

	mu     stdsync.Mutex
	cur    *Multicast
	index  int
	closed bool
	wake   chan struct{} // a new socket is there
	stop   chan struct{}

	reopened uint64
}

// ListenReopening opens the group on ifname like ListenMulticast; it fails
// only if the first open fails (a configuration error).
func ListenReopening(ifname string, group netip.AddrPort) (*Reopening, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("sync: network namespace: %w", err)
	}
	m, err := ListenMulticast(ifname, group)
	if err != nil {
		ns.Close()
		return nil, err
	}
	r := &Reopening{ifname: ifname, group: group, ns: ns, cur: m, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	r.index = r.ifIndex()
	go r.watch()
	return r, nil
}

// inNS runs fn on a thread in r's namespace.
func (r *Reopening) inNS(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return // the thread stays locked and dies
		}
		defer orig.Close()
		if err := netns.Set(r.ns); err != nil {
			return
		}
		fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}

func (r *Reopening) ifIndex() int {
	idx := 0
	r.inNS(func() {
		if ifi, err := net.InterfaceByName(r.ifname); err == nil {
			idx = ifi.Index
		}
	})
	return idx
}

// Reopened counts the reopenings.
func (r *Reopening) Reopened() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reopened
}

func (r *Reopening) watch() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		if !r.closed && (r.cur == nil || r.ifIndex() != r.index) {
			r.reopenLocked()
		}
		r.mu.Unlock()
	}
}

// reopenLocked replaces the socket (nil when the interface is not back yet).
func (r *Reopening) reopenLocked() {
	if r.cur != nil {
		r.cur.Close() // unblocks a Recv on it
		r.cur = nil
	}
	idx := r.ifIndex()
	if idx == 0 {
		return
	}
	var m *Multicast
	var err error
	r.inNS(func() { m, err = ListenMulticast(r.ifname, r.group) })
	if err != nil || m == nil {
		return
	}
	r.cur, r.index = m, idx
	r.reopened++
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Reopening) get() (*Multicast, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, r.closed
}

// Send multicasts b; a failure marks the socket for reopening.
func (r *Reopening) Send(b []byte) error {
	m, closed := r.get()
	if closed {
		return net.ErrClosed
	}
	if m == nil {
		return errNoSocket
	}
	err := m.Send(b)
	if err != nil {
		r.mu.Lock()
		if r.cur == m && !r.closed {
			r.reopenLocked()
		}
		r.mu.Unlock()
	}
	return err
}

var errNoSocket = &net.OpError{Op: "write", Net: "udp4", Err: net.UnknownNetworkError("sync interface not there (dataplane restarting?)")}

// Recv reads the next datagram from whatever socket is current.
func (r *Reopening) Recv(b []byte) (int, error) {
	for {
		m, closed := r.get()
		if closed {
			return 0, net.ErrClosed
		}
		if m == nil {
			select {
			case <-r.wake:
			case <-r.stop:
			}
			continue
		}
		n, err := m.Recv(b)
		if err == nil {
			return n, nil
		}
		// closed by a reopening (or by Close): take the next one
	}
}

// Close closes the socket and stops watching.
func (r *Reopening) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	close(r.stop)
	r.ns.Close()
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}
