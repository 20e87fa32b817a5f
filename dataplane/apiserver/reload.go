package apiserver

// Reload: the API's way to do what SIGHUP does. The server cannot read
// configuration files itself (it serves any dataplane, including tests'
// built without one); gvs-dataplane's daemon hands it a ReloadFunc.

import (
	"context"
	"errors"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gvs-lb/gvs/api/dataplanepb"
)

// ReloadFunc reads path (empty: the file the dataplane was started with)
// and applies it, or with check only validates it; it returns the file it
// read and the changes (applied or, with check, to apply). A refusal
// because settings need a restart carries a NeedsRestart() []string
// method.
type ReloadFunc func(path string, check bool) (file string, changes []string, err error)

// SetReload installs the reload behind the Reload call; without one,
// Reload answers UNIMPLEMENTED. Call it before Listen.
func (s *Server) SetReload(f ReloadFunc) { s.reload = f }

func (s *Server) Reload(_ context.Context, r *pb.ReloadRequest) (*pb.ReloadResult, error) {
	if s.reload == nil {
		return nil, status.Error(codes.Unimplemented, "reload: this dataplane was not started from a configuration file")
	}
	if r.Path != "" && !filepath.IsAbs(r.Path) {
		return nil, badArg("reload %q: give an absolute path (the dataplane's working directory is not yours)", r.Path)
	}
	file, changes, err := s.reload(r.Path, r.Check)
	if err != nil {
		var nr interface{ NeedsRestart() []string }
		if errors.As(err, &nr) {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		return nil, toStatus(err)
	}
	return &pb.ReloadResult{Path: file, Changes: changes, Applied: !r.Check}, nil
}
