package kni

import (
	"context"
	"fmt"
	"time"
)

// prepare applies the defaults to o and returns the watched interfaces as
// a set.
func (o *WatchOptions) prepare(ifindexes []int) map[int]bool {
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	want := make(map[int]bool, len(ifindexes))
	for _, i := range ifindexes {
		want[i] = true
	}
	return want
}

// subscription is one netlink subscription: its update channel, the
// channel that ends it and the one its errors arrive on.
type subscription[T any] struct {
	ch   chan T
	done chan struct{}
	errc chan error
}

// keepFollowing runs follow on s until ctx ends; whenever follow returns
// (the subscription failed or closed), it reports the failure to
// o.OnError, pauses o.Retry and subscribes again (subscribe also reads
// the whole current state, so no change is lost for good). what names the
// watch in the reports. It returns once ctx ends.
func keepFollowing[T any](ctx context.Context, o WatchOptions, what string, s subscription[T],
	subscribe func() (subscription[T], error), follow func(context.Context, subscription[T]) error) {
	report := func(err error) {
		if o.OnError != nil {
			o.OnError(err)
		}
	}
	for {
		err := follow(ctx, s)
		close(s.done)
		if ctx.Err() != nil {
			return
		}
		report(fmt.Errorf("kni: %s watch stopped (%v): re-subscribing", what, err))
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(o.Retry):
			}
			if s, err = subscribe(); err == nil {
				break
			}
			report(fmt.Errorf("kni: re-subscribing to %s changes: %w", what, err))
		}
	}
}
