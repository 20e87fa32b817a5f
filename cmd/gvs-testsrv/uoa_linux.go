package main

import (
	"net"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/nat"
)

// serveUDPUOA is the UDP echo of --uoa: it reads each datagram's IPv4
// options (IP_RECVOPTS) and, when one carries the UOA, answers
// "NAME uoa=ADDR:PORT MESSAGE".
func serveUDPUOA(pc *net.UDPConn, name string, errc chan<- error) error {
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
