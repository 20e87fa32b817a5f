package main

import (
	"testing"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

func TestLoopHist(t *testing.T) {
	h := make([]uint64, 32)
	h[10], h[11], h[20], h[31] = 812, 20, 1, 2
	if got, want := loopHist(h), "1.024µs 812 2.048µs 20 1.048576ms 1 ∞ 2"; got != want {
		t.Errorf("loopHist = %q, want %q", got, want)
	}
	if got := loopHist(make([]uint64, 32)); got != "" {
		t.Errorf("no loops: %q, want nothing", got)
	}
}

func TestListingStepsLine(t *testing.T) {
	w := &pb.Worker{ListingSteps: 250, ListingStepNs: 250 * 84_000, ListingStepMaxNs: 1_500_000, ListingStepsOver_1Ms: 1}
	if got, want := listingSteps(w), "listing-steps 250 mean 84µs longest 1.5ms over-1ms 1"; got != want {
		t.Errorf("listingSteps = %q, want %q", got, want)
	}
	if got := listingSteps(&pb.Worker{}); got != "" {
		t.Errorf("no listing: %q, want nothing", got)
	}
}
