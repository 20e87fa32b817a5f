package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func addrCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "addr", Aliases: []string{"address", "a"}, Short: "interface addresses",
		RunE: func(_ *cobra.Command, args []string) error { return a.addrShow(args) }}
	mod := func(name string, del bool) *cobra.Command {
		use := name + " ADDR[/LEN] dev DEV"
		if del {
			use += " [force]"
		}
		var force bool
		cmd := &cobra.Command{Use: use, Args: cobra.MinimumNArgs(1), RunE: func(_ *cobra.Command, args []string) error {
			if del {
				args, force = takeWord(args, "force", force)
			}
			addr, m, err := kv(args, "dev")
			if err != nil {
				return err
			}
			if addr == "" || m["dev"] == "" {
				return fmt.Errorf("usage: dpip addr %s", use)
			}
			req := &pb.Addr{Prefix: addr, Dev: m["dev"], Force: force}
			_, err = call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.Empty, error) {
				if del {
					return c.DelAddr(ctx, req)
				}
				return c.AddAddr(ctx, req)
			})
			return err
		}}
		if del {
			cmd.Flags().BoolVar(&force, "force", false, "delete even if a service or a static route uses the address")
		}
		return cmd
	}
	c.AddCommand(mod("add", false), mod("del", true))
	c.AddCommand(showOnly("[dev DEV]", a.addrShow)...)
	return c
}

func (a *app) addrShow(args []string) error {
	_, m, err := kv(args, "dev")
	if err != nil {
		return err
	}
	r, err := call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.ListAddrsResponse, error) {
		return c.ListAddrs(ctx, &pb.ListAddrsRequest{Dev: m["dev"]})
	})
	if err != nil {
		return err
	}
	var addrs []*pb.Addr
	for _, ad := range r.Addrs {
		if a.familyOK(ad.Prefix) {
			addrs = append(addrs, ad)
		}
	}
	if a.asJSON {
		return a.printJSON(addrs)
	}
	for _, ad := range addrs {
		fam := "inet"
		if strings.Contains(ad.Prefix, ":") {
			fam = "inet6"
		}
		fmt.Fprintf(a.out, "%s %s scope global %s\n     valid_lft forever preferred_lft forever\n", fam, ad.Prefix, ad.Dev)
	}
	return nil
}

// takeWord removes the bare keyword word (DPVS style: "... force") from
// args and reports whether it was there (or already set by its flag).
func takeWord(args []string, word string, set bool) ([]string, bool) {
	out := args[:0:0]
	for _, x := range args {
		if x == word {
			set = true
			continue
		}
		out = append(out, x)
	}
	return out, set
}
