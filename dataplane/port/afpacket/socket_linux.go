//go:build linux

package afpacket

// Socket plumbing: creating, configuring and binding a queue's AF_PACKET
// socket, the fanout group, and the kernel's ring statistics.
//
// A socket is created with protocol 0, so it receives nothing until bind;
// its ring is configured before bind. While a port's sockets are being
// joined into their fanout group each carries a drop-everything socket
// filter: between bind and the join a socket would otherwise get a private
// copy of every frame, and the port would deliver frames twice.

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// openSocket returns a new, unbound AF_PACKET raw socket that drops
// everything until detachFilter is called.
func openSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket(AF_PACKET, SOCK_RAW): %w", err)
	}
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	prog := unix.SockFprog{Len: uint16(len(drop)), Filter: &drop[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("attach drop filter: %w", err)
	}
	return fd, nil
}

// detachFilter removes the filter openSocket attached.
func detachFilter(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); err != nil {
		return fmt.Errorf("detach socket filter: %w", err)
	}
	return nil
}

// configureSocket sets the per-socket options every queue needs.
func configureSocket(fd int, opt Options) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fmt.Errorf("set PACKET_IGNORE_OUTGOING: %w", err)
	}
	// The ring carries the VLAN tag the kernel stripped in every tpacket3_hdr;
	// auxdata makes the same information available to recvmsg users (tools
	// attached to the socket), at no cost to the ring.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fmt.Errorf("set PACKET_AUXDATA: %w", err)
	}
	if opt.SendBuffer > 0 {
		// SO_SNDBUFFORCE needs CAP_NET_ADMIN, which opening the port needs
		// anyway; fall back to the capped SO_SNDBUF.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, opt.SendBuffer); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, opt.SendBuffer); err != nil {
				return fmt.Errorf("set SO_SNDBUF %d: %w", opt.SendBuffer, err)
			}
		}
	}
	if opt.QdiscBypass {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("set PACKET_QDISC_BYPASS: %w", err)
		}
	}
	return nil
}

// bindDevice binds fd to the interface ifindex for all protocols.
func bindDevice(fd, ifindex int) error {
	sa := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, &sa); err != nil {
		return fmt.Errorf("bind to ifindex %d: %w", ifindex, err)
	}
	return nil
}

// fanoutMode is the group type and flags of a port's sockets: flows hashed
// over the queues, own transmissions ignored (the group's hook replaces the
// sockets' own, so PACKET_IGNORE_OUTGOING has to be repeated here).
const fanoutMode = unix.PACKET_FANOUT_HASH | unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING

// createFanout makes fd the first member of a new fanout group whose id the
// kernel picks unique in the namespace, and returns the id.
func createFanout(fd int) (uint16, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT,
		(fanoutMode|unix.PACKET_FANOUT_FLAG_UNIQUEID)<<16); err != nil {
		return 0, fmt.Errorf("create PACKET_FANOUT group: %w", err)
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return 0, fmt.Errorf("read PACKET_FANOUT group id: %w", err)
	}
	return uint16(v), nil
}

// joinFanout adds fd to the fanout group id.
func joinFanout(fd int, id uint16) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(id)|fanoutMode<<16); err != nil {
		return fmt.Errorf("join PACKET_FANOUT group %d: %w", id, err)
	}
	return nil
}

// ringStats reads and resets the kernel's counters of the socket: packets
// dropped because the ring was full, and how often the ring froze.
func ringStats(fd int) (drops, freezes uint32, err error) {
	st, err := unix.GetsockoptTpacketStatsV3(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, 0, fmt.Errorf("get PACKET_STATISTICS: %w", err)
	}
	return st.Drops, st.Freeze_q_cnt, nil
}

// htons converts v to network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
