package nearline

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/abtest"
	adminv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/admin/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Admin serves AdminService: what data engineers call on a running suite.
type Admin struct {
	adminv1.UnimplementedAdminServiceServer
	counters   storage.Interactions
	strategies string
}

// NewAdmin returns the admin service reading the A/B counters of counters
// against the plan at strategies (the routing service's strategies file;
// empty is the original's plan).
func NewAdmin(counters storage.Interactions, strategies string) *Admin {
	return &Admin{counters: counters, strategies: strategies}
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
