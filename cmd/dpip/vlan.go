package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func vlanCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "vlan", Short: "802.1Q sub-interfaces",
		RunE: func(_ *cobra.Command, args []string) error { return a.vlanShow() }}
	c.AddCommand(&cobra.Command{Use: "add NAME link PORT id VID", Args: cobra.MinimumNArgs(1), RunE: func(_ *cobra.Command, args []string) error {
		name, m, err := kv(args, "link", "id")
		if err != nil {
			return err
		}
		if name == "" || m["link"] == "" || m["id"] == "" {
			return fmt.Errorf("usage: dpip vlan add NAME link PORT id VID")
		}
		id, err := strconv.ParseUint(m["id"], 10, 16)
		if err != nil || id < 1 || id > 4094 {
			return fmt.Errorf("vlan id %q: use 1-4094", m["id"])
		}
		_, err = call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.Empty, error) {
			return c.AddVLAN(ctx, &pb.VLAN{Name: name, Port: m["link"], Id: uint32(id)})
		})
		return err
	}}, vlanDelCmd(a))
	c.AddCommand(showOnly("", func([]string) error { return a.vlanShow() })...)
	return c
}

func vlanDelCmd(a *app) *cobra.Command {
	var force bool
	c := &cobra.Command{Use: "del NAME [force]", Args: cobra.MinimumNArgs(1), RunE: func(_ *cobra.Command, args []string) error {
		args, force = takeWord(args, "force", force)
		if len(args) != 1 {
			return fmt.Errorf("usage: dpip vlan del NAME [force]")
		}
		_, err := call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.Empty, error) {
			return c.DelVLAN(ctx, &pb.VLAN{Name: args[0], Force: force})
		})
		return err
	}}
	c.Flags().BoolVar(&force, "force", false, "delete even if services use its addresses")
	return c
}

func (a *app) vlanShow() error {
	r, err := call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.ListLinksResponse, error) {
		return c.ListLinks(ctx, &pb.ListLinksRequest{})
	})
	if err != nil {
		return err
	}
	var vs []*pb.Link
	for _, l := range r.Links {
		if l.Kind == "vlan" {
			vs = append(vs, l)
		}
	}
	if a.asJSON {
		return a.printJSON(vs)
	}
	for _, l := range vs {
		fmt.Fprintf(a.out, "%s link %s id %d\n", l.Name, l.Parent, l.Vid)
	}
	return nil
}
