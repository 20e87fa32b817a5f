// Package unixsock makes the control sockets of GVS's daemons (the
// dataplane API, the control plane's reload/state endpoint). Whoever can
// connect to one can reconfigure a load balancer, so:
//   - the socket's directory is created 0750 (an existing one is not
//     widened);
//   - only a stale socket is ever unlinked: a path naming any other kind of
//     file is refused, and a socket another process answers on is left
//     alone;
//   - the socket gets its mode (0660) and group before it listens, so no
//     wider mode ever applies;
//   - every accepted connection's peer credentials (SO_PEERCRED) are
//     checked: root, the daemon's own user, or a member of the configured
//     group; others are closed at once and counted.
package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Listener is a control socket that admits allowed peers only.
type Listener struct {
	*net.UnixListener
	gid    int // -1: no group
	denied atomic.Uint64
}

// Listen creates the socket at path. group, when not empty, owns the
// socket and its members may connect.
func Listen(path, group string) (*Listener, error) {
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("group %q: %w: name an existing group or leave it empty (root only)", group, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("group %q: gid %q: %w", group, g.Gid, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := RemoveStale(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // FileListener holds its own descriptor
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, fmt.Errorf("bind %s: %w", path, err)
	}
	fail := func(err error) (*Listener, error) {
		os.Remove(path)
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return fail(fmt.Errorf("chmod %s: %w", path, err))
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			return fail(fmt.Errorf("chown %s to group %s: %w", path, group, err))
		}
	}
	if err := unix.Listen(fd, 128); err != nil {
		return fail(fmt.Errorf("listen %s: %w", path, err))
	}
	l, err := net.FileListener(f)
	if err != nil {
		return fail(fmt.Errorf("listen %s: %w", path, err))
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(true)
	return &Listener{UnixListener: ul, gid: gid}, nil
}

// RemoveStale unlinks path if it is a socket nobody answers on. A live
// socket, or a file that is not a socket, is an error naming the fix.
func RemoveStale(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket (%v): choose a free path or remove the file", path, st.Mode().Type())
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("%s is in use by another process: stop it or choose another path", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}

// RemoveIfSocket unlinks path only if it is a socket (exit paths).
func RemoveIfSocket(path string) {
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
}

// Accept returns the next connection from an allowed peer.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		cred, err := PeerCred(c)
		if err == nil && l.allowed(cred) {
			return c, nil
		}
		l.denied.Add(1)
		c.Close()
	}
}

// Denied returns how many connections were refused.
func (l *Listener) Denied() uint64 { return l.denied.Load() }

// PeerCred returns the credentials of the process at the other end.
func PeerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// allowed: root, our own user, or the group (primary or supplementary).
func (l *Listener) allowed(c *unix.Ucred) bool {
	if c.Uid == 0 || int(c.Uid) == os.Getuid() {
		return true
	}
	if l.gid < 0 {
		return false
	}
	if int(c.Gid) == l.gid {
		return true
	}
	u, err := user.LookupId(strconv.Itoa(int(c.Uid)))
	if err != nil {
		return false
	}
	gids, err := u.GroupIds()
	return err == nil && slices.Contains(gids, strconv.Itoa(l.gid))
}
