package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func routeCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "route", Aliases: []string{"r"}, Short: "routes",
		RunE: func(_ *cobra.Command, args []string) error { return a.routeShow(args) }}
	mod := func(name string, del bool) *cobra.Command {
		return &cobra.Command{Use: name + " PREFIX [via GW] [dev DEV] [src ADDR] [metric N]", Args: cobra.MinimumNArgs(1),
			RunE: func(_ *cobra.Command, args []string) error {
				dst, m, err := kv(args, "via", "dev", "src", "metric")
				if err != nil {
					return err
				}
				if dst == "" {
					return fmt.Errorf("usage: dpip route %s PREFIX [via GW] [dev DEV]", name)
				}
				if dst == "default" {
					dst = "0.0.0.0/0"
					if a.v6 || strings.Contains(m["via"], ":") {
						dst = "::/0"
					}
				}
				req := &pb.Route{Dst: dst, Via: m["via"], Dev: m["dev"], Src: m["src"]}
				if s := m["metric"]; s != "" {
					n, err := strconv.ParseUint(s, 10, 32)
					if err != nil {
						return fmt.Errorf("metric %q is not a number", s)
					}
					req.Metric = uint32(n)
				}
				_, err = call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.Empty, error) {
					if del {
						return c.DelRoute(ctx, req)
					}
					return c.AddRoute(ctx, req)
				})
				return err
			}}
	}
	c.AddCommand(mod("add", false), mod("del", true))
	c.AddCommand(showOnly("", a.routeShow)...)
	return c
}

func (a *app) routeShow([]string) error {
	r, err := call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.ListRoutesResponse, error) {
		return c.ListRoutes(ctx, &pb.Empty{})
	})
	if err != nil {
		return err
	}
	var rs []*pb.Route
	for _, rt := range r.Routes {
		if a.familyOK(rt.Dst) {
			rs = append(rs, rt)
		}
	}
	if a.asJSON {
		return a.printJSON(rs)
	}
	for _, rt := range rs {
		fam, any := "inet", "0.0.0.0"
		if strings.Contains(rt.Dst, ":") {
			fam, any = "inet6", "::"
		}
		via, src := rt.Via, rt.Src
		if via == "" {
			via = any
		}
		if src == "" {
			src = any
		}
		proto := "static"
		if rt.Connected {
			proto = "auto"
		}
		fmt.Fprintf(a.out, "%s %s via %s src %s dev %s scope %s metric %d proto %s\n", fam, rt.Dst, via, src, rt.Dev, rt.Scope, rt.Metric, proto)
	}
	return nil
}
