package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/testenv"
)

func TestListenModeAndDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "gvs")
	path := filepath.Join(dir, "x.sock")
	l, err := Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", st.Mode())
	}
	dst, _ := os.Stat(dir)
	if dst.Mode().Perm() != 0o750 {
		t.Errorf("directory mode %v, want 0750", dst.Mode().Perm())
	}
	// a second daemon on the same path is refused, the first keeps it
	if _, err := Listen(path, ""); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Listen: %v, want 'in use'", err)
	}
	l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
}

func TestNeverUnlinksOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(path, "")
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v, want 'not a socket'", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Errorf("the file was touched: %q %v", b, err)
	}
	RemoveIfSocket(path)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("RemoveIfSocket removed a regular file: %v", err)
	}
}

func TestReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stale.sock")
	// a socket file whose owner is gone: bound, never listening, closed
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	l, err := Listen(path, "")
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l.Close()
}

func TestUnknownGroupRefused(t *testing.T) {
	_, err := Listen(filepath.Join(t.TempDir(), "g.sock"), "no-such-group-gvs")
	if err == nil || !strings.Contains(err.Error(), "no-such-group-gvs") {
		t.Errorf("unknown group: %v", err)
	}
}

// TestPeerCredentials connects from a thread running as nobody: the
// listener closes that connection and counts it; root's goes through.
func TestPeerCredentials(t *testing.T) {
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "gvs-unixsock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "c.sock")
	l, err := Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Chmod(path, 0o666) // the file mode lets anyone in: the peer check must not
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()

	errc := make(chan error, 1)
	go func() {
		// setresuid on this thread only (raw syscall): the credentials
		// connect() records are the thread's. The thread is not reused.
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 65534, 65534, 0); e != 0 {
			errc <- e
			return
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		_, err = c.Read(b[:]) // EOF once the listener closes it
		errc <- err
	}()
	if err := <-errc; err == nil {
		t.Fatal("nobody's connection was not closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("nobody's connection stayed open")
	}
	if l.Denied() != 1 {
		t.Errorf("denied = %d, want 1", l.Denied())
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case a := <-accepted:
		a.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("root's connection was not accepted")
	}
}
