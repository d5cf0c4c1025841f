package track

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	trackv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/track/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
)

// Server adapts TrackService to a Reporter.
type Server struct {
	trackv1.UnimplementedTrackServiceServer
	r *Reporter
}

// NewServer returns the TrackService of r.
func NewServer(r *Reporter) *Server { return &Server{r: r} }

// Report accepts a batch of action lines.
func (s *Server) Report(ctx context.Context, req *trackv1.ReportRequest) (*trackv1.ReportResponse, error) {
	lines := make([][]byte, len(req.GetLines()))
	for i, l := range req.GetLines() {
		lines[i] = []byte(l)
	}
	accepted, rejected, err := s.r.Report(ctx, lines)
	if errors.Is(err, ErrTooMany) {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil {
		return nil, server.Error(err, codes.Unavailable, "report actions")
	}
	resp := &trackv1.ReportResponse{Accepted: int32(accepted), Rejected: make([]*trackv1.Rejected, len(rejected))}
	for i, r := range rejected {
		resp.Rejected[i] = &trackv1.Rejected{Index: int32(r.Index), Reason: r.Reason}
	}
	return resp, nil
}
