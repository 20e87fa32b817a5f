// Package dpclient is the control side's connection to gvs-dataplane's API:
// dpip uses it, and so will gvs-controlplane's reconciler.
package dpclient

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// DefaultSocket is where gvs-dataplane listens unless configured otherwise;
// the GVS_DATAPLANE_SOCKET environment variable overrides it for clients.
const DefaultSocket = "/run/gvs/dataplane.sock"

// SocketFromEnv returns GVS_DATAPLANE_SOCKET or DefaultSocket.
func SocketFromEnv() string {
	if s := os.Getenv("GVS_DATAPLANE_SOCKET"); s != "" {
		return s
	}
	return DefaultSocket
}

// Client is a connection to one dataplane.
type Client struct {
	pb.DataplaneClient
	conn *grpc.ClientConn
}

// Dial connects to the dataplane at socket. It fails at once, naming the
// fix, when there is no socket file.
func Dial(socket string) (*Client, error) {
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Errorf("cannot reach gvs-dataplane at %s: %v (is it running? set --socket or GVS_DATAPLANE_SOCKET)", socket, err)
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &Client{DataplaneClient: pb.NewDataplaneClient(conn), conn: conn}, nil
}

// New returns a client for a dataplane that may not be running yet (the
// control plane starts before, and outlives, dataplane restarts): calls fail
// while it is away, and the connection is retried at most every second.
func New(socket string) (*Client, error) {
	bc := backoff.DefaultConfig
	bc.MaxDelay = time.Second
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc, MinConnectTimeout: time.Second}))
	if err != nil {
		return nil, err
	}
	return &Client{DataplaneClient: pb.NewDataplaneClient(conn), conn: conn}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Message returns the dataplane's own message of an API error.
func Message(err error) error {
	if s, ok := status.FromError(err); ok {
		return fmt.Errorf("%s", s.Message())
	}
	return err
}

// EachConnPage runs ListConns and calls fn with each page as it arrives.
// The listing streams, so a large table takes as long as it takes: idle
// bounds only the wait for the next page (and the end), not the whole
// listing; ctx can still end it. An error from fn ends the listing.
func EachConnPage(ctx context.Context, cl pb.DataplaneClient, req *pb.ListConnsRequest, idle time.Duration,
	fn func([]*pb.Conn) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errIdle := fmt.Errorf("connection listing: no page from gvs-dataplane for %v: it may be overloaded or stuck", idle)
	watchdog := time.AfterFunc(idle, func() { cancel(errIdle) })
	defer watchdog.Stop()
	stream, err := cl.ListConns(ctx, req)
	if err != nil {
		return err
	}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if context.Cause(ctx) == errIdle {
				return errIdle
			}
			return err
		}
		watchdog.Stop()
		if err := fn(r.GetConns()); err != nil {
			return err
		}
		watchdog.Reset(idle)
	}
}
