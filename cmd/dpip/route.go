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
		return &cobra.Command{Use: name + " PREFIX [via GW] [dev DEV] [src ADDR] [metric N] [nexthop via GW [dev DEV] [weight W]]...",
			Args: cobra.MinimumNArgs(1),
			RunE: func(_ *cobra.Command, args []string) error {
				args, nhs, err := nexthops(args)
				if err != nil {
					return err
				}
				dst, m, err := kv(args, "via", "dev", "src", "metric")
				if err != nil {
					return err
				}
				if len(nhs) > 0 && (m["via"] != "" || m["dev"] != "") {
					return fmt.Errorf("route %s: give either via/dev or nexthop ..., not both", dst)
				}
				if dst == "" {
					return fmt.Errorf("usage: dpip route %s PREFIX [via GW] [dev DEV]", name)
				}
				if dst == "default" {
					dst = "0.0.0.0/0"
					if a.v6 || strings.Contains(m["via"], ":") || (len(nhs) > 0 && strings.Contains(nhs[0].Via, ":")) {
						dst = "::/0"
					}
				}
				req := &pb.Route{Dst: dst, Via: m["via"], Dev: m["dev"], Src: m["src"], Nexthops: nhs}
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
		proto := rt.Proto
		if proto == "" {
			proto = "static"
			if rt.Connected {
				proto = "auto"
			}
		}
		if len(rt.Nexthops) > 0 {
			// iproute2's multipath listing: the route, then one line per path
			fmt.Fprintf(a.out, "%s %s src %s scope %s metric %d proto %s\n", fam, rt.Dst, src, rt.Scope, rt.Metric, proto)
			for _, nh := range rt.Nexthops {
				v := nh.Via
				if v == "" {
					v = any
				}
				fmt.Fprintf(a.out, "\tnexthop via %s dev %s weight %d\n", v, nh.Dev, max(nh.Weight, 1))
			}
			continue
		}
		fmt.Fprintf(a.out, "%s %s via %s src %s dev %s scope %s metric %d proto %s\n", fam, rt.Dst, via, src, rt.Dev, rt.Scope, rt.Metric, proto)
	}
	return nil
}

// nexthops splits iproute2's multipath syntax off a route command line:
// every "nexthop" starts a path of "via GW", "dev DEV" and "weight W"
// (1-256) up to the next "nexthop". It returns the arguments before the
// first "nexthop" and the paths.
func nexthops(args []string) ([]string, []*pb.Nexthop, error) {
	i := 0
	for i < len(args) && args[i] != "nexthop" {
		i++
	}
	head, rest := args[:i], args[i:]
	var out []*pb.Nexthop
	for len(rest) > 0 {
		rest = rest[1:] // "nexthop"
		nh := &pb.Nexthop{}
		for len(rest) > 0 && rest[0] != "nexthop" {
			if len(rest) < 2 {
				return nil, nil, fmt.Errorf("nexthop %d: %q needs a value", len(out)+1, rest[0])
			}
			k, v := rest[0], rest[1]
			switch k {
			case "via":
				nh.Via = v
			case "dev":
				nh.Dev = v
			case "weight":
				w, err := strconv.ParseUint(v, 10, 32)
				if err != nil || w < 1 || w > 256 {
					return nil, nil, fmt.Errorf("nexthop %d: weight %q: use 1-256", len(out)+1, v)
				}
				nh.Weight = uint32(w)
			default:
				return nil, nil, fmt.Errorf("nexthop %d: unknown argument %q (expected one of: via, dev, weight)", len(out)+1, k)
			}
			rest = rest[2:]
		}
		if nh.Via == "" && nh.Dev == "" {
			return nil, nil, fmt.Errorf("nexthop %d: give via GW or dev DEV", len(out)+1)
		}
		out = append(out, nh)
	}
	return head, out, nil
}
