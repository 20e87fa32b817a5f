package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

type ctxT = context.Context

func workerCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "worker", Aliases: []string{"stats"}, Short: "per-worker loop statistics and counters (-s: all counters)",
		RunE: func(_ *cobra.Command, args []string) error { return a.workerShow() }}
	c.AddCommand(showOnly("", func([]string) error { return a.workerShow() })...)
	return c
}

func (a *app) workerShow() error {
	r, err := call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.ListWorkersResponse, error) {
		return c.ListWorkers(ctx, &pb.Empty{})
	})
	if err != nil {
		return err
	}
	if a.asJSON {
		return a.printJSON(r.Workers)
	}
	for _, w := range r.Workers {
		core := "unpinned"
		if w.Core >= 0 {
			core = fmt.Sprintf("core %d", w.Core)
		}
		fmt.Fprintf(a.out, "worker %d: %s\n", w.Id, core)
		fmt.Fprintf(a.out, "    loops %d bursts %d packets %d idle-loops %d sleeps %d longest-loop %s busy %.6fs\n",
			w.Loops, w.Bursts, w.Packets, w.IdleLoops, w.Sleeps, time.Duration(w.LongestLoopNs), time.Duration(w.BusyNs).Seconds())
		if h := loopHist(w.LoopHist); h != "" {
			fmt.Fprintf(a.out, "    loops under %s\n", h)
		}
		if w.GetConnCapacity() > 0 {
			fmt.Fprintf(a.out, "    %s\n", connTable(w))
		}
		if l := listingSteps(w); l != "" {
			fmt.Fprintf(a.out, "    %s\n", l)
		}
		for _, c := range w.Counters {
			if c.Value != 0 || a.stats {
				fmt.Fprintf(a.out, "    %-28s %d\n", c.Name, c.Value)
			}
		}
	}
	return nil
}

// connTable prints the worker's connection table fill, its high-water
// mark and whether it is under pressure (short timeouts for embryonic and
// closing connections; a full table evicts them for new ones).
func connTable(w *pb.Worker) string {
	s := fmt.Sprintf("connections %d of %d", w.GetConns(), w.GetConnCapacity())
	if hw := w.GetConnHighWater(); hw > 0 {
		s += fmt.Sprintf(" high-water %d", hw)
	}
	if w.GetConnPressure() {
		s += " under-pressure"
	}
	return s
}

// listingSteps prints what connection listings cost the worker, or
// nothing if it never served one.
func listingSteps(w *pb.Worker) string {
	n := w.GetListingSteps()
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("listing-steps %d mean %s longest %s over-1ms %d", n,
		time.Duration(w.GetListingStepNs()/n), time.Duration(w.GetListingStepMaxNs()), w.GetListingStepsOver_1Ms())
}

// loopHist prints the non-empty buckets of a worker's loop durations
// (bucket i: under 2^i ns) as "1.024µs 812 2.048µs 20 …"; two readings
// tell the longest loop between them, which longest-loop cannot.
func loopHist(h []uint64) string {
	var b strings.Builder
	for i, n := range h {
		if n == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if i == len(h)-1 {
			fmt.Fprintf(&b, "∞ %d", n) // the last bucket holds all longer loops
		} else {
			fmt.Fprintf(&b, "%s %d", time.Duration(1)<<i, n)
		}
	}
	return b.String()
}

func infoCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "info", Short: "dataplane version, workers and KNI state", RunE: func(*cobra.Command, []string) error {
		in, err := call(a, func(ctx ctxT, c pb.DataplaneClient) (*pb.Info, error) { return c.GetInfo(ctx, &pb.Empty{}) })
		if err != nil {
			return err
		}
		if a.asJSON {
			return a.printJSON(in)
		}
		fmt.Fprintf(a.out, "gvs-dataplane %s up %s\n", in.Version, time.Duration(in.UptimeNs).Truncate(time.Second))
		fmt.Fprintf(a.out, "workers %d idle %s forwarding ipv4 %v ipv6 %v\n", in.Workers, in.IdleMode, in.ForwardIpv4, in.ForwardIpv6)
		fmt.Fprintf(a.out, "kni addrs %v drops to-kernel %d from-kernel %d\n", in.KniAddrs, in.KniWriteDrops, in.KniReadDrops)
		fmt.Fprintf(a.out, "connections capacity %d, flow steering: %s\n", in.ConnCapacity, in.Steering)
		for _, x := range in.XdpFastPath {
			if x.Active {
				fmt.Fprintf(a.out, "xdp fast path %s: active\n", x.Port)
			} else {
				fmt.Fprintf(a.out, "xdp fast path %s: not active: %s\n", x.Port, x.WhyNot)
			}
		}
		return nil
	}}
}
