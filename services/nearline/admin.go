package nearline

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/abtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/offline"
	adminv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/admin/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Admin serves AdminService: what data engineers call on a running suite.
type Admin struct {
	adminv1.UnimplementedAdminServiceServer
	counters   storage.Interactions
	strategies string
	publisher  *offline.Publisher
}

// NewAdmin returns the admin service reading the A/B counters of counters
// against the plan at strategies (the routing service's strategies file;
// empty is the original's plan), and publishing with publisher.
func NewAdmin(counters storage.Interactions, strategies string, publisher *offline.Publisher) *Admin {
	return &Admin{counters: counters, strategies: strategies, publisher: publisher}
}

// maxPublish bounds the lines of one Publish.
const maxPublish = 10000

// Publish adds new articles; a bad line publishes nothing of the batch.
func (a *Admin) Publish(ctx context.Context, req *adminv1.PublishRequest) (*adminv1.PublishResponse, error) {
	if n := len(req.GetLines()); n == 0 || n > maxPublish {
		return nil, status.Errorf(codes.InvalidArgument, "lines: 1..%d news.tsv lines, got %d", maxPublish, n)
	}
	published, err := a.publisher.Publish(ctx, "request", req.GetLines(), time.Now())
	switch {
	case errors.Is(err, dataset.ErrMalformed):
		return nil, status.Errorf(codes.InvalidArgument, "nothing published: %v", err)
	case errors.Is(err, offline.ErrContentModel):
		return nil, status.Errorf(codes.FailedPrecondition, "nothing published: %v (run reco admin build first)", err)
	case err != nil:
		return nil, server.Error(err, codes.Unavailable, "publish")
	}
	resp := &adminv1.PublishResponse{Articles: make([]*adminv1.Published, len(published))}
	for i, p := range published {
		resp.Articles[i] = &adminv1.Published{ArticleId: p.Article, ChannelId: p.Channel, Neighbours: int32(len(p.Similar))}
	}
	return resp, nil
}

// AbReport reads the A/B experiments out as the JSON of `reco admin ab-report
// --json`. The plan is read on each call, so a reloaded plan is reported at
// once, as routing assigns with it.
func (a *Admin) AbReport(ctx context.Context, req *adminv1.AbReportRequest) (*adminv1.AbReportResponse, error) {
	plan, err := abtest.Load(a.strategies)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "the a/b plan: %v", err)
	}
	counters, err := a.counters.Counters(ctx)
	if err != nil {
		return nil, server.Error(err, codes.Unavailable, "read the a/b counters")
	}
	report, err := plan.Report(counters, abtest.ReportOptions{Control: req.GetControl(), MDE: req.GetMde()})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	b, err := json.Marshal(report)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode the report: %v", err)
	}
	return &adminv1.AbReportResponse{Json: string(b)}, nil
}
