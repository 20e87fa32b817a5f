package dpclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// pager streams pages pages of size conns each, then, if stall is set,
// waits until the client goes away.
type pager struct {
	pb.UnimplementedDataplaneServer
	pages, size int
	stall       bool
}

func (p *pager) ListConns(_ *pb.ListConnsRequest, s pb.Dataplane_ListConnsServer) error {
	for i := 0; i < p.pages; i++ {
		r := &pb.ListConnsResponse{}
		for j := 0; j < p.size; j++ {
			r.Conns = append(r.Conns, &pb.Conn{Proto: "UDP", Client: fmt.Sprintf("10.0.%d.%d:53", i, j)})
		}
		if err := s.Send(r); err != nil {
			return err
		}
	}
	if p.stall {
		<-s.Context().Done()
	}
	return nil
}

func serve(t *testing.T, p *pager) *Client {
	sock := filepath.Join(t.TempDir(), "dp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterDataplaneServer(g, p)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEachConnPage(t *testing.T) {
	c := serve(t, &pager{pages: 5, size: 3})
	var got []string
	err := EachConnPage(context.Background(), c, &pb.ListConnsRequest{}, 10*time.Second, func(p []*pb.Conn) error {
		for _, x := range p {
			got = append(got, x.GetClient())
		}
		return nil
	})
	if err != nil || len(got) != 15 || got[0] != "10.0.0.0:53" || got[14] != "10.0.4.2:53" {
		t.Fatalf("got %v, %v", got, err)
	}
	// an error from fn ends the listing with that error
	stop := errors.New("stop")
	pages := 0
	err = EachConnPage(context.Background(), c, &pb.ListConnsRequest{}, 10*time.Second, func([]*pb.Conn) error {
		pages++
		return stop
	})
	if err != stop || pages != 1 {
		t.Fatalf("fn's error: got %v after %d pages", err, pages)
	}
}

// TestEachConnPageIdle: a dataplane that stops sending pages ends the
// listing with a message saying so (the idle bound is per page: the two
// pages before it arrive normally).
func TestEachConnPageIdle(t *testing.T) {
	c := serve(t, &pager{pages: 2, size: 1, stall: true})
	pages := 0
	err := EachConnPage(context.Background(), c, &pb.ListConnsRequest{}, 300*time.Millisecond, func([]*pb.Conn) error {
		pages++
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "no page from gvs-dataplane") || pages != 2 {
		t.Fatalf("got %v after %d pages", err, pages)
	}
}
