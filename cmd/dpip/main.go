// Command dpip shows and changes the GVS dataplane's links, addresses,
// routes, neighbours and VLANs, with the DPVS dpip syntax:
//
//	dpip addr add 10.0.0.100/32 dev dp0
//	dpip route add 10.3.0.0/16 via 10.2.0.254 dev dp1
//	dpip neigh show
//	dpip -s link show
//	dpip capture dev dp0 -c 10 -w /tmp/dp0.pcapng tcp port 80
//
// It talks to gvs-dataplane's control API on its unix socket.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/spf13/cobra"
)

type app struct {
	socket  string
	stats   bool
	verbose bool
	asJSON  bool
	v4, v6  bool
	out     io.Writer
	client  *dpclient.Client
}

func (a *app) dial() error {
	if a.client != nil {
		return nil
	}
	c, err := dpclient.Dial(a.socket)
	if err != nil {
		return err
	}
	a.client = c
	return nil
}

func (a *app) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// call runs one API call and turns a gRPC status into its message.
func call[T any](a *app, f func(context.Context, pb.DataplaneClient) (T, error)) (T, error) {
	var zero T
	if err := a.dial(); err != nil {
		return zero, err
	}
	ctx, cancel := a.ctx()
	defer cancel()
	r, err := f(ctx, a.client)
	if err != nil {
		return zero, dpclient.Message(err)
	}
	return r, nil
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// kv parses DPVS-style "key value" argument lists against the allowed keys;
// a bare first argument is returned as the subject.
func kv(args []string, keys ...string) (subject string, m map[string]string, err error) {
	m = map[string]string{}
	allowed := map[string]bool{}
	for _, k := range keys {
		allowed[k] = true
	}
	for i := 0; i < len(args); i++ {
		k := args[i]
		if !allowed[k] {
			if subject == "" && !strings.HasPrefix(k, "-") {
				subject = k
				continue
			}
			return "", nil, fmt.Errorf("unknown argument %q (expected one of: %s)", k, strings.Join(keys, ", "))
		}
		if i+1 >= len(args) {
			return "", nil, fmt.Errorf("%q needs a value", k)
		}
		m[k] = args[i+1]
		i++
	}
	return subject, m, nil
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "dpip [-s] [-v] [--json] OBJECT COMMAND",
		Short:         "Configure and inspect the GVS dataplane (DPVS dpip syntax)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := root.PersistentFlags()
	f.StringVarP(&a.socket, "socket", "S", dpclient.SocketFromEnv(), "gvs-dataplane API socket")
	f.BoolVarP(&a.stats, "stats", "s", false, "show statistics")
	f.BoolVarP(&a.verbose, "verbose", "v", false, "show details")
	f.BoolVar(&a.asJSON, "json", false, "print JSON for scripts")
	f.BoolVarP(&a.v4, "ipv4", "4", false, "IPv4 only")
	f.BoolVarP(&a.v6, "ipv6", "6", false, "IPv6 only")
	root.AddCommand(linkCmd(a), addrCmd(a), routeCmd(a), neighCmd(a), vlanCmd(a), workerCmd(a), infoCmd(a), flowCmd(a), traceCmd(a), reloadCmd(a), captureCmd(a))
	return root
}

func main() {
	a := &app{out: os.Stdout}
	err := newRoot(a).Execute()
	if a.client != nil {
		a.client.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dpip:", err)
		os.Exit(1)
	}
}

// familyOK filters listings by -4/-6.
func (a *app) familyOK(addr string) bool {
	v6 := strings.Contains(addr, ":")
	if a.v4 && v6 || a.v6 && !v6 {
		return false
	}
	return true
}

func showOnly(use string, run func(args []string) error) []*cobra.Command {
	show := &cobra.Command{Use: "show " + use, Aliases: []string{"list", "ls"}, RunE: func(_ *cobra.Command, args []string) error { return run(args) }}
	return []*cobra.Command{show}
}
