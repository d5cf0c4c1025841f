package gateway

import (
	"context"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	adminv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/admin/v1"
)

// ABReportPath reads the A/B experiments out over HTTP (DESIGN.md §9).
const ABReportPath = "/v1/ab_report"

// ABReport registers GET /v1/ab_report[?control=NAME&mde=0.05], the JSON of
// `reco admin ab-report --json`, through AdminService/AbReport on conn. The
// request's Authorization header goes along: with server.authz on, the
// report is the operator's (a Bearer token of theirs), as over gRPC.
func ABReport(_ context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
	client := adminv1.NewAdminServiceClient(conn)
	return mux.HandlePath(http.MethodGet, ABReportPath, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		req := &adminv1.AbReportRequest{Control: r.URL.Query().Get("control")}
		if s := r.URL.Query().Get("mde"); s != "" {
			mde, err := strconv.ParseFloat(s, 64)
			if err != nil {
				runtime.HTTPError(r.Context(), mux, marshaler, w, r, status.Errorf(codes.InvalidArgument, "mde %q is not a number such as 0.05", s))
				return
			}
			req.Mde = mde
		}
		ctx := r.Context()
		if auth := r.Header.Get("Authorization"); auth != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", auth)
		}
		resp, err := client.AbReport(ctx, req)
		if err != nil {
			runtime.HTTPError(r.Context(), mux, marshaler, w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(resp.GetJson()))
	})
}
