package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func linkCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "link", Short: "ports and VLAN interfaces", RunE: func(_ *cobra.Command, args []string) error {
		return a.linkShow(args)
	}}
	c.AddCommand(showOnly("[DEV]", a.linkShow)...)
	c.AddCommand(&cobra.Command{Use: "set [dev] DEV [mtu N] [promisc on|off]", Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return a.linkSet(args) }})
	return c
}

// linkSet changes a port's device settings, as ip link set does.
func (a *app) linkSet(args []string) error {
	subj, m, err := kv(args, "dev", "mtu", "promisc")
	if err != nil {
		return err
	}
	req := &pb.LinkSetRequest{Name: m["dev"]}
	if req.Name == "" {
		req.Name = subj
	}
	if req.Name == "" {
		return fmt.Errorf("link set: name the port: dpip link set dev DEV mtu N")
	}
	if v, ok := m["mtu"]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return fmt.Errorf("link set %s: mtu %q is not a number", req.Name, v)
		}
		mtu := int32(n)
		req.Mtu = &mtu
	}
	if v, ok := m["promisc"]; ok {
		on := v == "on"
		if !on && v != "off" {
			return fmt.Errorf("link set %s: promisc %q: use on or off", req.Name, v)
		}
		req.Promisc = &on
	}
	if req.Mtu == nil && req.Promisc == nil {
		return fmt.Errorf("link set %s: nothing to set: give mtu N or promisc on|off", req.Name)
	}
	_, err = call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.Empty, error) { return c.SetLink(ctx, req) })
	return err
}

func (a *app) linkShow(args []string) error {
	dev, _, err := kv(args, "dev")
	if err != nil {
		return err
	}
	r, err := call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.ListLinksResponse, error) {
		return c.ListLinks(ctx, &pb.ListLinksRequest{Name: dev})
	})
	if err != nil {
		return err
	}
	if a.asJSON {
		return a.printJSON(r.Links)
	}
	for _, l := range r.Links {
		printLink(a.out, l, a.stats)
	}
	return nil
}

// printLink prints a link the way DPVS's dpip does.
func printLink(w io.Writer, l *pb.Link, stats bool) {
	if l.Kind == "vlan" {
		fmt.Fprintf(w, "%d: %s: link %s vlan-id %d mtu %d\n", l.Index, l.Name, l.Parent, l.Vid, l.Mtu)
	} else {
		fmt.Fprintf(w, "%d: %s: driver %s mtu %d rx-queue %d tx-queue %d\n", l.Index, l.Name, l.Driver, l.Mtu, l.Queues, l.Queues)
	}
	state := "DOWN"
	if l.Up {
		state = "UP"
	}
	fmt.Fprintf(w, "    %s\n", state)
	fmt.Fprintf(w, "    addr %s", l.Mac)
	if l.Kni != "" {
		fmt.Fprintf(w, " kni %s", l.Kni)
	}
	fmt.Fprintln(w)
	if stats && l.Stats != nil {
		s := l.Stats
		fmt.Fprintf(w, "    %-20s%-20s%-20s%-20s\n", "ipackets", "opackets", "ibytes", "obytes")
		fmt.Fprintf(w, "    %-20d%-20d%-20d%-20d\n", s.RxPackets, s.TxPackets, s.RxBytes, s.TxBytes)
		fmt.Fprintf(w, "    %-20s%-20s%-20s%-20s\n", "ierrors", "oerrors", "imissed", "odropped")
		fmt.Fprintf(w, "    %-20d%-20d%-20d%-20d\n", s.RxErrors, s.TxErrors, s.RxDropped, s.TxDropped)
		printXStats(w, s.Xstats)
	}
}

// printXStats prints a port's extended counters after the basic ones, in
// the same grid: rows of four names over their values, the columns wide
// enough for the longest name.
func printXStats(w io.Writer, xs []*pb.XStat) {
	if len(xs) == 0 {
		return
	}
	width := 20
	for _, x := range xs {
		width = max(width, len(x.Name)+2)
	}
	fmt.Fprintf(w, "    xstats:\n")
	for i := 0; i < len(xs); i += 4 {
		row := xs[i:min(i+4, len(xs))]
		fmt.Fprint(w, "    ")
		for _, x := range row {
			fmt.Fprintf(w, "%-*s", width, x.Name)
		}
		fmt.Fprint(w, "\n    ")
		for _, x := range row {
			fmt.Fprintf(w, "%-*d", width, x.Value)
		}
		fmt.Fprintln(w)
	}
}
