//go:build linux

package main

// The userspace tunnel receiver of the labs (--decap): GVS's tunnel real
// servers need the kernel's ipip, gre or fou/gue modules, which lab
// machines may not have. This stands in for them: it reads the tunnel
// packets addressed to this namespace from raw IP sockets (protocol 4 and
// 41 for ipip, 47 for gre; IPv4 and IPv6 outer headers) and a UDP socket
// of both families (gue, --decap-port, zero IPv6 checksums allowed), takes the
// inner packet out (nat.Decap, nat.DecapGRE, nat.DecapGUE) and writes it
// into a TUN device, where the namespace's own TCP/IP stack receives it
// as if a kernel tunnel device had decapsulated it. Raw and TUN
// syscalls live in this file only.

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/nat"
)

// startDecap creates the TUN device dev (up, no address: the virtual
// address sits on lo) and starts one reader per socket the kinds need.
// Errors of the readers go to errc.
func startDecap(kinds []string, port int, dev string, errc chan<- error) error {
	tun, err := openTUN(dev)
	if err != nil {
		return err
	}
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("decap: %s: %w", dev, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("decap: set %s up: %w", dev, err)
	}
	for _, k := range kinds {
		switch k {
		case "ipip":
			// IPv4 raw sockets deliver the outer header; IPv6 ones only
			// the payload, here the inner IPv6 packet itself
			if err := rawReader(unix.AF_INET, unix.IPPROTO_IPIP, tun, errc, func(p []byte) ([]byte, error) {
				in, _, err := nat.Decap(p, 0)
				return in, err
			}); err != nil {
				return err
			}
			if err := rawReader(unix.AF_INET6, unix.IPPROTO_IPV6, tun, errc, func(p []byte) ([]byte, error) { return p, nil }); err != nil {
				return err
			}
		case "gre":
			if err := rawReader(unix.AF_INET, nat.ProtoGRE, tun, errc, func(p []byte) ([]byte, error) {
				in, _, err := nat.Decap(p, 0)
				return in, err
			}); err != nil {
				return err
			}
			if err := rawReader(unix.AF_INET6, nat.ProtoGRE, tun, errc, nat.DecapGRE); err != nil {
				return err
			}
		case "gue":
			if port == 0 {
				return fmt.Errorf("decap gue: give --decap-port (the real server's --tun-port)")
			}
			// one socket for both families; GUE over IPv6 may come
			// without a UDP checksum (RFC 6935, --tun-nocsum), which Linux
			// drops unless the socket allows it
			lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
				var serr error
				if err := c.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_NO_CHECK6_RX, 1)
				}); err != nil {
					return err
				}
				return serr
			}}
			pc, err := lc.ListenPacket(context.Background(), "udp", ":"+strconv.Itoa(port))
			if err != nil {
				return fmt.Errorf("decap gue: %w", err)
			}
			go func() {
				buf := make([]byte, 65536)
				for {
					n, _, err := pc.ReadFrom(buf)
					if err != nil {
						errc <- err
						return
					}
					if in, err := nat.DecapGUE(buf[:n]); err == nil {
						tun.Write(in)
					}
				}
			}()
		default:
			return fmt.Errorf("decap %q: use ipip, gre or gue", k)
		}
	}
	return nil
}

// openTUN creates the TUN device name (IFF_TUN, no packet information:
// each write is one IP packet).
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("decap: /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("decap: TUN name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("decap: create TUN %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), nil
}

// rawReader reads protocol proto of family af from a raw socket and
// writes what decap returns into tun; packets it refuses are skipped.
func rawReader(af, proto int, tun *os.File, errc chan<- error, decap func([]byte) ([]byte, error)) error {
	fd, err := unix.Socket(af, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return fmt.Errorf("decap: raw socket for protocol %d: %w", proto, err)
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				if err == unix.EINTR {
					continue
				}
				errc <- fmt.Errorf("decap: protocol %d: %w", proto, err)
				return
			}
			if in, err := decap(buf[:n]); err == nil {
				tun.Write(in)
			}
		}
	}()
	return nil
}
