// Package nsutil runs pieces of Go code inside named network namespaces, so
// integration tests can open real sockets (listeners, clients, AF_PACKET) in
// the lab's namespaces while the rest of the test runs in the host's. A
// socket keeps the namespace it was created in, so a listener opened with
// Listen serves from any goroutine afterwards.
package nsutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
)

// Do runs fn on a thread switched into namespace name and switches back.
func Do(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: if switching back failed it must die
		// with the goroutine rather than serve other goroutines.
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen opens a listener inside namespace name.
func Listen(name, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := Do(name, func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket (UDP) inside namespace name.
func ListenPacket(name, network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := Do(name, func() (err error) {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	return c, err
}

// Dial connects from inside namespace name.
func Dial(name, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := Do(name, func() (err error) {
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// HTTPClient returns a client whose connections are made inside namespace
// name; keep-alives are off so every request is a new TCP connection.
func HTTPClient(name string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				d := timeout
				if dl, ok := ctx.Deadline(); ok {
					d = time.Until(dl)
				}
				return Dial(name, network, addr, d)
			},
		},
	}
}

// InterfaceMAC returns the MAC of interface ifname inside namespace name.
func InterfaceMAC(name, ifname string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := Do(name, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	return mac, err
}
