package sync

// The multicast transport: one UDP socket bound to the group and port,
// joined on the configured interface, sending there with TTL 1 and
// IP_MULTICAST_LOOP off (a node never hears itself; peers are on the
// link). The socket options are raw setsockopt calls, kept in this file.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Transport carries datagrams between nodes.
type Transport interface {
	Send(b []byte) error
	// Recv blocks for the next datagram; it fails once closed.
	Recv(b []byte) (int, error)
	Close() error
}

// DefaultGroup is the default multicast group and port (LVS's).
var DefaultGroup = netip.MustParseAddrPort("224.0.0.81:8848")

// Multicast is the UDP multicast Transport.
type Multicast struct {
	conn  *net.UDPConn
	group *net.UDPAddr
}

// ListenMulticast opens the group (IPv4) on interface ifname.
func ListenMulticast(ifname string, group netip.AddrPort) (*Multicast, error) {
	if !group.Addr().Is4() || !group.Addr().IsMulticast() {
		return nil, fmt.Errorf("sync group %s: give an IPv4 multicast address and port (e.g. %s)", group, DefaultGroup)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("sync interface %q: %w (set sync.interface to the KNI interface)", ifname, err)
	}
	var serr error
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			mreq := &unix.IPMreqn{Multiaddr: group.Addr().As4(), Ifindex: int32(ifi.Index)}
			for _, o := range []struct {
				name string
				f    func() error
			}{
				{"SO_REUSEADDR", func() error { return unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) }},
				{"SO_BINDTODEVICE", func() error { return unix.BindToDevice(s, ifname) }},
				{"IP_ADD_MEMBERSHIP", func() error { return unix.SetsockoptIPMreqn(s, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq) }},
				{"IP_MULTICAST_IF", func() error { return unix.SetsockoptIPMreqn(s, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mreq) }},
				{"IP_MULTICAST_LOOP", func() error { return unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0) }},
				{"IP_MULTICAST_TTL", func() error { return unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1) }},
			} {
				if err := o.f(); err != nil {
					serr = fmt.Errorf("sync socket on %s: %s: %w", ifname, o.name, err)
					return
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", group.String())
	if err != nil {
		return nil, fmt.Errorf("sync group %s on %s: %w", group, ifname, err)
	}
	return &Multicast{conn: pc.(*net.UDPConn), group: net.UDPAddrFromAddrPort(group)}, nil
}

// Send multicasts b.
func (m *Multicast) Send(b []byte) error {
	_, err := m.conn.WriteToUDP(b, m.group)
	return err
}

// Recv reads the next datagram.
func (m *Multicast) Recv(b []byte) (int, error) {
	n, _, err := m.conn.ReadFromUDP(b)
	return n, err
}

// Close closes the socket.
func (m *Multicast) Close() error { return m.conn.Close() }
