package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// reloadCmd: `dpip reload [--check] [FILE]` — what SIGHUP does, with the
// answer: the dataplane re-reads its file (or FILE) and applies the
// difference, all or nothing; a file that changes settings needing a
// restart is refused with them named.
func reloadCmd(a *app) *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "reload [--check] [FILE]",
		Short: "re-read the dataplane's configuration file (or FILE) and apply the difference, as SIGHUP does",
		Long: `reload makes gvs-dataplane re-read the file it was started with (or FILE,
read by the dataplane itself) and apply the difference from what it runs:
VLANs, addresses, routes, neighbours and IPVS timeouts, as one change that
applies whole or not at all. Ports, drivers, workers, table sizes, the API
socket and logging need a restart of gvs-dataplane: a file changing them is
refused with the settings named. With --check nothing is applied: the file
is validated and the changes a reload would make are listed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			req := &pb.ReloadRequest{Check: check}
			if len(args) == 1 {
				p, err := filepath.Abs(args[0])
				if err != nil {
					return fmt.Errorf("reload %s: %w", args[0], err)
				}
				req.Path = p
			}
			r, err := call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.ReloadResult, error) { return c.Reload(ctx, req) })
			if err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(r)
			}
			switch {
			case !r.Applied && len(r.Changes) == 0:
				fmt.Fprintf(a.out, "%s: valid, a reload would change nothing\n", r.Path)
			case !r.Applied:
				fmt.Fprintf(a.out, "%s: valid, a reload would apply:\n", r.Path)
			case len(r.Changes) == 0:
				fmt.Fprintf(a.out, "%s: reloaded, nothing changed\n", r.Path)
			default:
				fmt.Fprintf(a.out, "%s: reloaded:\n", r.Path)
			}
			for _, c := range r.Changes {
				fmt.Fprintf(a.out, "  %s\n", c)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "validate the file and list the changes; apply nothing")
	return cmd
}
