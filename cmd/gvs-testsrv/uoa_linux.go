package main

import (
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/nat"
)

// serveUDPUOA is the UDP echo of --uoa. It reads GVS's UOA in both of its
// modes and answers "NAME uoa=ADDR:PORT MESSAGE" when a datagram carries
// it, "NAME MESSAGE" otherwise:
//   - ipo: each datagram's IPv4 options (IP_RECVOPTS) on the UDP socket
//     itself (IPv4 addresses only);
//   - opp: datagrams behind an opp header are IP protocol 248, which the
//     UDP socket never sees: a raw socket of that protocol bound to the
//     same address reads them (IPv4: Go strips the IP header; IPv6: the
//     kernel delivers what follows the IPv6 headers), and the answer goes
//     out through the UDP socket, from the same address and port.
func serveUDPUOA(pc *net.UDPConn, name string, errc chan<- error) error {
	local := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	v4 := local.Addr().Unmap().Is4()
	if v4 {
		rc, err := pc.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVOPTS, 1) }); err != nil {
			return err
		}
		if serr != nil {
			return serr
		}
	}
	network := "ip6:248"
	if v4 {
		network = "ip4:248"
	}
	raw, err := net.ListenIP(network, &net.IPAddr{IP: local.Addr().AsSlice()})
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := raw.ReadFromIP(buf)
			if err != nil {
				errc <- err
				return
			}
			src, _ := netip.AddrFromSlice(from.IP)
			if reply, to, ok := oppAnswer(name, buf[:n], src, local); ok {
				pc.WriteToUDPAddrPort(reply, to)
			}
		}
	}()
	go func() {
		buf, oob := make([]byte, 65536), make([]byte, 1024)
		for {
			n, oobn, _, peer, err := pc.ReadMsgUDP(buf, oob)
			if err != nil {
				errc <- err
				return
			}
			prefix := name + " "
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVOPTS {
						if a, ok := nat.ParseUOA(m.Data); ok {
							prefix += "uoa=" + a.String() + " "
						}
					}
				}
			}
			pc.WriteToUDP(append([]byte(prefix), buf[:n]...), peer)
		}
	}()
	return nil
}
