package kni

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/gvs-lb/gvs/internal/testenv"
)

// inNetns runs the test body in a fresh network namespace on a locked thread.
func inNetns(t *testing.T, body func()) {
	testenv.RequireRoot(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			t.Error(err)
			return
		}
		defer ns.Close()
		defer netns.Set(orig)
		body()
	}()
	<-done
}

func TestTAPFramesBothWays(t *testing.T) {
	inNetns(t, func() {
		mac := net.HardwareAddr{0x02, 0x47, 0x56, 0x53, 0, 1}
		d, err := Open("dp0.kni", mac, 1400)
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Close()
		link, err := netlink.LinkByName("dp0.kni")
		if err != nil {
			t.Error(err)
			return
		}
		if link.Attrs().HardwareAddr.String() != mac.String() || link.Attrs().MTU != 1400 {
			t.Errorf("kni device has MAC %s MTU %d", link.Attrs().HardwareAddr, link.Attrs().MTU)
		}
		netlink.LinkSetUp(link)
		addr, _ := netlink.ParseAddr("10.1.0.3/24")
		if err := netlink.AddrAdd(link, addr); err != nil {
			t.Error(err)
			return
		}
		// a frame written to the device is the kernel's input: an ARP
		// request for its address makes the kernel answer through the TAP.
		req := make([]byte, 42)
		copy(req[0:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 2, 0x08, 0x06})
		copy(req[14:], []byte{0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 2, 10, 1, 0, 2, 0, 0, 0, 0, 0, 0, 10, 1, 0, 3})
		if _, err := d.Write(req); err != nil {
			t.Error(err)
			return
		}
		buf := make([]byte, 2048)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			n, err := d.Read(buf)
			if err != nil {
				t.Error(err)
				return
			}
			f := buf[:n]
			if n >= 42 && bytes.Equal(f[12:14], []byte{0x08, 0x06}) && f[21] == 2 {
				if !bytes.Equal(f[6:12], mac) || !bytes.Equal(f[28:32], []byte{10, 1, 0, 3}) {
					t.Errorf("ARP reply from the kernel: %x", f)
				}
				return
			}
		}
		t.Error("the kernel never answered through the TAP")
	})
}

func TestWatchAddrs(t *testing.T) {
	inNetns(t, func() {
		d, err := Open("dp0.kni", nil, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Close()
		link, _ := netlink.LinkByName("dp0.kni")
		netlink.LinkSetUp(link)
		a1, _ := netlink.ParseAddr("10.1.0.3/24")
		netlink.AddrAdd(link, a1)
		updates := make(chan []netip.Addr, 16)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		failures := make(chan error, 4)
		w, err := watchAddrs(ctx, []int{d.Index()}, func(a []netip.Addr) { updates <- a },
			WatchOptions{Retry: 10 * time.Millisecond, OnError: func(err error) { failures <- err }})
		if err != nil {
			t.Error(err)
			return
		}
		want := func(desc string, addrs ...string) {
			deadline := time.After(5 * time.Second)
			for {
				select {
				case got := <-updates:
					// the kernel's own link-local address comes and goes with the link
					got = slices.DeleteFunc(got, netip.Addr.IsLinkLocalUnicast)
					slices.SortFunc(got, func(a, b netip.Addr) int { return a.Compare(b) })
					if fmt.Sprint(got) == fmt.Sprint(addrs) {
						return
					}
				case <-deadline:
					t.Errorf("%s: never saw %v", desc, addrs)
					return
				}
			}
		}
		want("existing address", "10.1.0.3")
		a2, _ := netlink.ParseAddr("fd00:1::3/64")
		a2.Flags = 0x02 // IFA_F_NODAD
		if err := netlink.AddrAdd(link, a2); err != nil {
			t.Errorf("add %s: %v", a2, err)
		}
		want("added address", "10.1.0.3", "fd00:1::3")
		netlink.AddrDel(link, a1)
		want("deleted address", "fd00:1::3")
		// the subscription fails (as on a netlink overrun): reported, then
		// re-established with the whole set read again
		w.errc <- errors.New("injected: netlink socket overrun")
		select {
		case err := <-failures:
			if !strings.Contains(err.Error(), "injected") {
				t.Errorf("reported failure: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("the failure was not reported")
		}
		want("the set after re-subscribing", "fd00:1::3")
		netlink.AddrAdd(link, a1)
		want("an address added after the restart", "10.1.0.3", "fd00:1::3")
	})
}

func TestNameTooLong(t *testing.T) {
	if _, err := Open("a-very-long-kni-name", nil, 0); err == nil {
		t.Error("accepted a name longer than IFNAMSIZ")
	}
}
