package apiserver

import (
	"fmt"

	"google.golang.org/grpc"

	"github.com/gvs-lb/gvs/internal/unixsock"
)

// ListenOptions say who may use the socket.
type ListenOptions struct {
	// Group, when set, owns the socket and its members may connect; root
	// and the dataplane's own user always may.
	Group string
}

// Listen serves on the unix socket at path (made by internal/unixsock:
// directory 0750, mode 0660 before listening, only a stale socket ever
// unlinked, peers checked by their credentials) until the returned server
// is stopped; stopping it removes the socket.
func (s *Server) Listen(path string, o ListenOptions) (*grpc.Server, error) {
	l, err := unixsock.Listen(path, o.Group)
	if err != nil {
		return nil, fmt.Errorf("api.socket: %w", err)
	}
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(s.unaryGuard), grpc.ChainStreamInterceptor(s.streamGuard))
	s.register(g)
	go g.Serve(l)
	return g, nil
}
