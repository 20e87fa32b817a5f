package sync

import (
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// inNewNS runs fn on a thread in a fresh network namespace (kept until the
// test ends); it skips the test without root.
func inNewNS(t *testing.T) func(fn func()) {
	t.Helper()
	ch := make(chan func())
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if _, err := netns.New(); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for fn := range ch {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Skipf("network namespace: %v (run as root)", err)
	}
	t.Cleanup(func() { close(ch) })
	return func(fn func()) {
		done := make(chan struct{})
		ch <- func() { fn(); close(done) }
		<-done
	}
}

// TestReopeningFollowsInterface: the interface the socket is bound to is
// deleted and made again (as KNI devices are when the dataplane
// restarts): sends fail while it is gone, and the transport reopens on the
// new device by itself.
func TestReopeningFollowsInterface(t *testing.T) {
	do := inNewNS(t)
	mk := func() {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "kniX"}, PeerName: "kniY"}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"kniX", "kniY"} {
			l, _ := netlink.LinkByName(n)
			netlink.LinkSetUp(l)
		}
		l, _ := netlink.LinkByName("kniX")
		a, _ := netlink.ParseAddr("169.254.78.1/24")
		netlink.AddrAdd(l, a)
	}
	var r *Reopening
	do(func() {
		mk()
		var err error
		if r, err = ListenReopening("kniX", DefaultGroup); err != nil {
			t.Fatal(err)
		}
	})
	defer r.Close()
	recvErr := make(chan error, 1)
	go func() { _, err := r.Recv(make([]byte, 2048)); recvErr <- err }()
	if err := r.Send([]byte("hello")); err != nil {
		t.Fatalf("send: %v", err)
	}
	do(func() {
		l, _ := netlink.LinkByName("kniX")
		if err := netlink.LinkDel(l); err != nil {
			t.Fatal(err)
		}
	})
	if err := r.Send([]byte("gone")); err == nil {
		t.Error("send on a deleted interface succeeded")
	}
	do(mk)
	waitFor(t, "the transport to reopen on the new interface", func() bool { return r.Reopened() >= 1 && r.Send([]byte("back")) == nil })
	select {
	case err := <-recvErr:
		t.Fatalf("Recv returned %v across the reopening", err)
	case <-time.After(50 * time.Millisecond):
	}
	r.Close()
	if err := <-recvErr; err == nil {
		t.Error("Recv after Close returned no error")
	}
}
