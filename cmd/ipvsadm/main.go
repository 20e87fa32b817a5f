// Command ipvsadm administers GVS's virtual services with the command line
// of ipvsadm 1.31 and the extensions of DPVS's ipvsadm:
//
//	ipvsadm -A -t 10.0.0.100:80 -s rr
//	ipvsadm -a -t 10.0.0.100:80 -r 192.168.100.2 -b
//	ipvsadm --add-laddr -z 192.168.100.200 -t 10.0.0.100:80 -F dpdk0
//	ipvsadm -L -n
//	ipvsadm -S -n | ipvsadm -R
//
// Parsing and output live in ctrlplane/ipvsadm; this command connects them
// to gvs-dataplane's API on its unix socket (--socket PATH, or
// GVS_DATAPLANE_SOCKET). Output, messages and exit codes are ipvsadm's;
// what GVS does not support is refused by name.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/gvs-lb/gvs/ctrlplane/ipvsadm"
)

type app struct {
	socket  string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	names   ipvsadm.Names
	timeout time.Duration
	client  *dpclient.Client
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *app {
	return &app{
		socket:  dpclient.SocketFromEnv(),
		stdin:   stdin,
		stdout:  stdout,
		stderr:  stderr,
		names:   newSysNames(),
		timeout: 10 * time.Second,
	}
}

func main() {
	a := newApp(os.Stdin, os.Stdout, os.Stderr)
	code := a.run(os.Args)
	a.close()
	os.Exit(code)
}

func (a *app) close() {
	if a.client != nil {
		a.client.Close()
		a.client = nil
	}
}

// errConnect marks a failure to reach the dataplane (ipvsadm's "Can't
// initialize ipvs").
type errConnect struct{ err error }

func (e errConnect) Error() string { return e.err.Error() }

func (a *app) printErr(e *ipvsadm.Error) int {
	if e.Msg != "" {
		fmt.Fprintln(a.stderr, e.Msg)
	}
	return e.Code
}

// run executes one command line and returns the exit code.
func (a *app) run(argv []string) int {
	prog := "ipvsadm"
	if len(argv) > 0 {
		prog = argv[0]
	}
	c, perr := ipvsadm.Parse(argv, ipvsadm.ParseOptions{Names: a.names, AllowSocket: true})
	if perr != nil {
		return a.printErr(perr)
	}
	if c.Socket != "" {
		a.socket = c.Socket
	}
	switch c.Cmd {
	case ipvsadm.CmdHelp:
		fmt.Fprint(a.stdout, ipvsadm.Usage(prog))
		return ipvsadm.ExitOK
	case ipvsadm.CmdVersion:
		fmt.Fprint(a.stdout, ipvsadm.Version())
		return ipvsadm.ExitOK
	}
	if perr := c.CheckGVS(); perr != nil {
		return a.printErr(perr)
	}
	if c.Cmd == ipvsadm.CmdRestore {
		return a.restore(prog)
	}
	code, err := a.exec(c)
	if err != nil {
		return a.apiErr(err, code)
	}
	return code
}

// restore is -R: every line is parsed and checked first; then the lines
// are applied in order. Like ipvsadm, a line the dataplane refuses does
// not stop the ones after it; each failure is reported with its line
// number and the exit code is non-zero.
func (a *app) restore(prog string) int {
	cmds, perr := ipvsadm.ParseRestore(a.stdin, prog, ipvsadm.ParseOptions{Names: a.names})
	if perr != nil {
		return a.printErr(perr)
	}
	result := ipvsadm.ExitOK
	for _, rc := range cmds {
		switch rc.Cmd {
		case ipvsadm.CmdHelp:
			fmt.Fprint(a.stdout, ipvsadm.Usage(prog))
			return result
		case ipvsadm.CmdVersion:
			fmt.Fprint(a.stdout, ipvsadm.Version())
			return result
		}
		code, err := a.exec(rc.Command)
		if err != nil {
			var ce errConnect
			if errors.As(err, &ce) || isUnavailable(err) {
				return a.apiErr(err, code)
			}
			fmt.Fprintln(a.stderr, ipvsadm.LineError(rc.Line, &ipvsadm.Error{Msg: message(err)}).Msg)
			result = code
		}
	}
	return result
}

func isUnavailable(err error) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Unavailable
}

// message is the dataplane's own words for an API error, as ipvsadm
// prints libipvs's (ipvs_strerror).
func message(err error) string {
	return ipvsadm.StrError(dpclient.Message(err).Error())
}

// apiErr prints an error of exec: ipvsadm prints libipvs's message alone
// (ipvs_strerror), and "Can't initialize ipvs" when there is no IPVS.
func (a *app) apiErr(err error, code int) int {
	var ce errConnect
	if errors.As(err, &ce) || isUnavailable(err) {
		fmt.Fprintf(a.stderr, "Can't initialize ipvs: %s\nAre you sure that gvs-dataplane is running?\n", message(err))
		return ipvsadm.ExitFail
	}
	fmt.Fprintln(a.stderr, message(err))
	return code
}

func (a *app) dial() (pb.DataplaneClient, error) {
	if a.client == nil {
		c, err := dpclient.Dial(a.socket)
		if err != nil {
			return nil, errConnect{err}
		}
		a.client = c
	}
	return a.client, nil
}

// exec runs one command against the dataplane. On error it returns the
// exit code ipvsadm would use: 1 for listings, 255 (-1) for changes.
func (a *app) exec(c *ipvsadm.Command) (int, error) {
	cl, err := a.dial()
	if err != nil {
		return ipvsadm.ExitFail, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	out, err := a.call(ctx, cl, c)
	if err != nil {
		if isListing(c.Cmd) {
			return ipvsadm.ExitList, err
		}
		return ipvsadm.ExitMinus1, err
	}
	fmt.Fprint(a.stdout, out)
	return ipvsadm.ExitOK, nil
}

func isListing(c ipvsadm.Cmd) bool {
	return c == ipvsadm.CmdList || c == ipvsadm.CmdSave || c == ipvsadm.CmdGetLAddr ||
		c == ipvsadm.CmdGetBlklst || c == ipvsadm.CmdGetWhtlst
}

// errNoService is libipvs's message when a listed service does not exist.
var errNoService = errors.New("No such service")

func (a *app) call(ctx context.Context, cl pb.DataplaneClient, c *ipvsadm.Command) (string, error) {
	lister := ipvsadm.Lister{Format: c.Format, Names: a.names}
	switch c.Cmd {
	case ipvsadm.CmdList:
		switch {
		case c.Opts.Has(ipvsadm.OptConnection):
			// printed page by page as the dataplane streams them; the
			// timeout bounds the wait for each page, not the listing
			cw := lister.NewConnWriter(a.stdout)
			if err := dpclient.EachConnPage(context.WithoutCancel(ctx), cl, &pb.ListConnsRequest{}, a.timeout, cw.Page); err != nil {
				return "", err
			}
			return "", cw.Close()
		case c.Opts.Has(ipvsadm.OptService):
			svc, err := oneService(ctx, cl, c.ServiceKey())
			if err != nil {
				return "", err
			}
			return lister.ListService(svc), nil
		case c.Opts.Has(ipvsadm.OptTimeout):
			t, err := cl.GetTimeouts(ctx, &pb.Empty{})
			if err != nil {
				return "", err
			}
			return ipvsadm.TimeoutLine(t), nil
		case c.Opts.Has(ipvsadm.OptDaemon):
			// GVS runs no sync daemon: ipvsadm prints nothing then
			return "", nil
		}
		r, err := cl.ListServices(ctx, &pb.ListServicesRequest{})
		if err != nil {
			return "", err
		}
		return lister.ListAll(connTabSize(ctx, cl), r.GetServices()), nil
	case ipvsadm.CmdSave:
		r, err := cl.ListServices(ctx, &pb.ListServicesRequest{})
		if err != nil {
			return "", err
		}
		lister.Format |= ipvsadm.FmtRule
		return lister.ListAll(0, r.GetServices()), nil
	case ipvsadm.CmdGetLAddr:
		if c.Opts.Has(ipvsadm.OptService) {
			svc, err := oneService(ctx, cl, c.ServiceKey())
			if err != nil {
				return "", err
			}
			return ipvsadm.LAddrs([]*pb.Service{svc}, true), nil
		}
		r, err := cl.ListServices(ctx, &pb.ListServicesRequest{})
		if err != nil {
			return "", err
		}
		return ipvsadm.LAddrs(ipvsadm.SortServices(r.GetServices()), false), nil
	case ipvsadm.CmdGetBlklst, ipvsadm.CmdGetWhtlst:
		allow := c.Cmd == ipvsadm.CmdGetWhtlst
		if c.Opts.Has(ipvsadm.OptService) {
			svc, err := oneService(ctx, cl, c.ServiceKey())
			if err != nil {
				return "", err
			}
			return ipvsadm.ACLs([]*pb.Service{svc}, allow), nil
		}
		r, err := cl.ListServices(ctx, &pb.ListServicesRequest{})
		if err != nil {
			return "", err
		}
		return ipvsadm.ACLs(ipvsadm.SortServices(r.GetServices()), allow), nil
	case ipvsadm.CmdAddBlklst, ipvsadm.CmdAddWhtlst:
		_, err := cl.AddACL(ctx, c.ACLPB())
		return "", err
	case ipvsadm.CmdDelBlklst, ipvsadm.CmdDelWhtlst:
		_, err := cl.DelACL(ctx, c.ACLPB())
		return "", err
	case ipvsadm.CmdFlush:
		_, err := cl.FlushServices(ctx, &pb.Empty{})
		return "", err
	case ipvsadm.CmdAdd:
		_, err := cl.AddService(ctx, c.ServicePB())
		return "", err
	case ipvsadm.CmdEdit:
		_, err := cl.EditService(ctx, c.ServicePB())
		return "", err
	case ipvsadm.CmdDel:
		_, err := cl.DelService(ctx, &pb.Service{Key: c.ServiceKey()})
		return "", err
	case ipvsadm.CmdAddDest:
		_, err := cl.AddDest(ctx, c.DestPB())
		return "", err
	case ipvsadm.CmdEditDest:
		_, err := cl.EditDest(ctx, c.DestPB())
		return "", err
	case ipvsadm.CmdDelDest:
		_, err := cl.DelDest(ctx, c.DestPB())
		return "", err
	case ipvsadm.CmdAddLAddr:
		_, err := cl.AddLAddr(ctx, c.LAddrPB())
		return "", err
	case ipvsadm.CmdDelLAddr:
		_, err := cl.DelLAddr(ctx, c.LAddrPB())
		return "", err
	case ipvsadm.CmdTimeout:
		_, err := cl.SetTimeouts(ctx, c.TimeoutsPB())
		return "", err
	case ipvsadm.CmdZero:
		_, err := cl.ZeroStats(ctx, &pb.ZeroRequest{Service: c.ServiceKey()})
		return "", err
	}
	// CheckGVS refuses every other command before it gets here
	return "", fmt.Errorf("ipvsadm: --%s: not supported by GVS", c.Cmd)
}

// connTabSize is the "size=" of the listing header: the dataplane's
// connection capacity (Info.conn_capacity) when it reports one, else IPVS's
// default. The field is looked up by name so that this builds with and
// without it.
func connTabSize(ctx context.Context, cl pb.DataplaneClient) uint64 {
	info, err := cl.GetInfo(ctx, &pb.Empty{})
	if err != nil {
		return ipvsadm.DefaultConnTabSize
	}
	m := info.ProtoReflect()
	if fd := m.Descriptor().Fields().ByName("conn_capacity"); fd != nil && fd.Kind() == protoreflect.Uint64Kind {
		if n := m.Get(fd).Uint(); n > 0 {
			return n
		}
	}
	return ipvsadm.DefaultConnTabSize
}

func oneService(ctx context.Context, cl pb.DataplaneClient, key *pb.ServiceKey) (*pb.Service, error) {
	r, err := cl.ListServices(ctx, &pb.ListServicesRequest{Key: key})
	if err != nil {
		return nil, err
	}
	want, _ := netip.ParseAddr(key.GetAddr())
	for _, s := range r.GetServices() {
		k := s.GetKey()
		got, _ := netip.ParseAddr(k.GetAddr())
		if strings.EqualFold(k.GetProto(), key.GetProto()) && got.Unmap() == want.Unmap() && k.GetPort() == key.GetPort() {
			return s, nil
		}
	}
	return nil, errNoService
}
