package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// flowCmd: `dpip flow tcp|udp CLIENT:PORT VIP:PORT` — where the flow goes
// now, without creating a connection.
func flowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "flow tcp|udp CLIENT:PORT VIP:PORT",
		Short: "where a client flow goes now (its connection, or the scheduler's choice), without creating a connection",
		Args:  cobra.ExactArgs(3),
		RunE: func(_ *cobra.Command, args []string) error {
			r, err := call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.FlowAnswer, error) {
				return c.SimulateFlow(ctx, &pb.FlowQuery{Proto: strings.ToUpper(args[0]), Client: args[1], Virtual: args[2]})
			})
			if err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(r)
			}
			fmt.Fprintf(a.out, "service %s scheduler %s\n", r.Service, r.Sched)
			switch {
			case r.Existing:
				fmt.Fprintf(a.out, "connection on worker %d: local %s -> real server %s, state %s, expires in %s; replies owned by worker %d\n",
					r.Worker, r.Local, r.Dest, r.State, time.Duration(r.ExpiresNs).Truncate(time.Second), r.ReplyOwner)
			case r.Predicted:
				fmt.Fprintf(a.out, "no connection: a new one goes to real server %s, from local address %s\n", r.Dest, strings.Join(r.Laddrs, " or "))
			default:
				fmt.Fprintf(a.out, "no connection: candidates %s, from local address %s\n", strings.Join(r.Candidates, " "), strings.Join(r.Laddrs, " or "))
			}
			if r.Note != "" {
				fmt.Fprintf(a.out, "note: %s\n", r.Note)
			}
			return nil
		},
	}
}
