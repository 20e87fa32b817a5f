package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func neighCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "neigh", Aliases: []string{"neighbour", "neighbor", "n"}, Short: "ARP / ND table",
		RunE: func(_ *cobra.Command, args []string) error { return a.neighShow() }}
	c.AddCommand(&cobra.Command{Use: "add ADDR lladdr MAC dev DEV", Args: cobra.MinimumNArgs(1), RunE: func(_ *cobra.Command, args []string) error {
		addr, m, err := kv(args, "lladdr", "dev")
		if err != nil {
			return err
		}
		if addr == "" || m["lladdr"] == "" || m["dev"] == "" {
			return fmt.Errorf("usage: dpip neigh add ADDR lladdr MAC dev DEV")
		}
		_, err = call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.Empty, error) {
			return c.AddNeigh(ctx, &pb.Neigh{Addr: addr, Lladdr: m["lladdr"], Dev: m["dev"]})
		})
		return err
	}}, &cobra.Command{Use: "del ADDR [dev DEV]", Args: cobra.MinimumNArgs(1), RunE: func(_ *cobra.Command, args []string) error {
		addr, _, err := kv(args, "dev", "lladdr")
		if err != nil {
			return err
		}
		_, err = call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.Empty, error) {
			return c.DelNeigh(ctx, &pb.Neigh{Addr: addr})
		})
		return err
	}})
	c.AddCommand(showOnly("", func([]string) error { return a.neighShow() })...)
	return c
}

func (a *app) neighShow() error {
	r, err := call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.ListNeighsResponse, error) {
		return c.ListNeighs(ctx, &pb.Empty{})
	})
	if err != nil {
		return err
	}
	var ns []*pb.Neigh
	for _, n := range r.Neighs {
		if a.familyOK(n.Addr) {
			ns = append(ns, n)
		}
	}
	if a.asJSON {
		return a.printJSON(ns)
	}
	for _, n := range ns {
		fmt.Fprintf(a.out, "ip: %-40s mac: %s   state: %-10s dev: %s", n.Addr, n.Lladdr, n.State, n.Dev)
		if a.verbose && n.State != "PERMANENT" {
			fmt.Fprintf(a.out, "   age: %s", time.Duration(n.AgeNs).Truncate(time.Second))
		}
		fmt.Fprintln(a.out)
	}
	return nil
}
