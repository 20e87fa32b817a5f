package main

// dpip trace: what the dataplane does with the packets matching a filter,
// stage by stage (VPP's trace in spirit). The FILTER expression is compiled
// here with tcpdump -ddd (internal/cbpf) and sent as classic BPF; the
// workers record up to COUNT matching packets and the dataplane streams one
// record per packet as it leaves the pipeline.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
	"github.com/gvs-lb/gvs/ctrlplane/dpclient"
	"github.com/gvs-lb/gvs/internal/cbpf"
)

const traceUsage = `dpip trace [dev PORT] [worker N] [-c COUNT] [FILTER...]`

const traceHelp = `Trace what GVS's workers do with the next COUNT packets matching FILTER:
for each packet the worker and port that received it, a one-line decode, and
each pipeline stage's verdict with the time since the packet's rx burst:

  parse      the receiving interface (after L2 and the IP header checks)
  lookup     connection hit (in: client side, out: real server side) or miss
  schedule   the service, its scheduler and the real server chosen
  rewrite    the new addresses and ports (local address/port → real server,
             or virtual service → client)
  route      output interface and next hop
  neighbour  the next hop's MAC, or unresolved (the packet is held)
  transmit   port and queue
  drop       the counter it was dropped under (as in dpip -s link show)
  kni        handed to the kernel through the port's KNI device
  redirect   handed to the worker owning its local port (that worker's
             trace of it follows as another packet)

  dev PORT     only packets received on this port (default: every port)
  worker N     only this worker (default: every worker)
  -c COUNT     packets to trace, 1 to 256 (default 10)
  FILTER       a tcpdump expression (pcap-filter(7)), compiled with tcpdump -ddd;
               matched against the frame as received

Tracing costs the workers nothing while it is not running; while it runs
they evaluate the filter on every packet of the selected port and worker.
Only one trace runs at a time. It ends after COUNT packets or on Ctrl-C.
With --json, each record is printed as a JSON object.

Examples:
  dpip trace -c 5 tcp port 80 and host 10.0.0.1
  dpip trace dev dp1 worker 0 -c 1 src host 10.2.0.11`

// parseTraceArgs reads the command line; options may come anywhere, the
// keywords dev and worker only before the filter.
func parseTraceArgs(args []string) (req *pb.TraceRequest, socket string, asJSON bool, err error) {
	req = &pb.TraceRequest{}
	p := newFilterArgs("trace", traceUsage, args)
	for p.next() {
		a := p.arg
		var n uint64
		switch {
		case a == "-c":
			n, err = p.num("count", 31)
			if err == nil && (n == 0 || n > 256) {
				err = fmt.Errorf("trace: count %d: give -c 1 to 256", n)
			}
			req.Count = uint32(n)
		case a == "--json":
			asJSON = true
		case !p.inFilter() && a == "dev":
			req.Port, err = p.val()
		case !p.inFilter() && a == "worker":
			n, err = p.num("worker", 31)
			w := int32(n)
			req.Worker = &w
		default:
			err = p.common()
		}
		if err != nil {
			return req, "", false, err
		}
	}
	req.FilterExpr = p.expr()
	return req, p.socket, asJSON, nil
}

func traceCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:                strings.TrimPrefix(traceUsage, "dpip "),
		Short:              "trace packets matching a filter through the dataplane's stages (tcpdump syntax filter)",
		Long:               traceHelp,
		DisableFlagParsing: true, // -c means what it means to tcpdump here
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, x := range args {
				if x == "-h" || x == "--help" {
					return cmd.Help()
				}
			}
			req, socket, asJSON, err := parseTraceArgs(args)
			if err != nil {
				return err
			}
			if socket != "" {
				a.socket = socket
			}
			a.asJSON = a.asJSON || asJSON
			raw, err := cbpf.Compile(req.FilterExpr)
			if err != nil {
				return err
			}
			req.Filter = cbpf.ToQuads(raw)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.runTrace(ctx, req, cmd.ErrOrStderr())
		},
	}
}

// runTrace prints the records until the trace is done, the context ends
// (Ctrl-C) or the stream fails.
func (a *app) runTrace(ctx context.Context, req *pb.TraceRequest, stderr io.Writer) error {
	if err := a.dial(); err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.client.Trace(sctx, req)
	if err != nil {
		return dpclient.Message(err)
	}
	count := req.Count
	if count == 0 {
		count = 10
	}
	for {
		r, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && ctx.Err() != nil:
			return nil // Ctrl-C
		case err != nil:
			return dpclient.Message(err)
		case r.Armed:
			fmt.Fprintf(stderr, "tracing the next %s on %s\n", plural(int(count), "packet"), traceWhat(req))
		case a.asJSON:
			if err := a.printJSON(r); err != nil {
				return err
			}
		default:
			fmt.Fprint(a.out, formatTraceRecord(r))
		}
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func traceWhat(r *pb.TraceRequest) string {
	s := "every port"
	if r.Port != "" {
		s = r.Port
	}
	if r.Worker != nil {
		s += fmt.Sprintf(", worker %d", *r.Worker)
	}
	if r.FilterExpr != "" {
		s += fmt.Sprintf(", filter %q", r.FilterExpr)
	}
	return s
}

// formatTraceRecord: a header line, the packet, one line per stage.
func formatTraceRecord(r *pb.TraceRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Packet %d: worker %d, port %s, %d bytes", r.Seq, r.Worker, r.Port, r.Length)
	if r.FromWorker >= 0 {
		fmt.Fprintf(&b, ", handed over by worker %d", r.FromWorker)
	}
	fmt.Fprintf(&b, "\n  %s\n", r.Packet)
	for _, st := range r.Stages {
		fmt.Fprintf(&b, "  %8d ns  %-10s %s\n", st.AtNs, st.Stage, st.Verdict)
	}
	return b.String()
}
