package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	trackv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/track/v1"
)

// ActionsPath takes readers' actions over HTTP (DESIGN.md §8).
const ActionsPath = "/v1/actions"

// MaxActionsBodyBytes bounds a POST /v1/actions body: a batch of thousands of
// log lines, where the feed's calls are a few dozen bytes.
const MaxActionsBodyBytes = 8 << 20

// Actions registers POST /v1/actions, which hands the lines of its body to
// TrackService/Report through conn: a body of
// application/x-ndjson (one action line each; blank lines are skipped) or
// application/json (an array whose elements are action objects, or strings
// holding one). The answer is Report's, as JSON: {"accepted": N, "rejected":
// [{"index": i, "reason": "…"}]}, i counting the body's lines (NDJSON) or
// elements (JSON) from 0.
func Actions(_ context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
	client := trackv1.NewTrackServiceClient(conn)
	return mux.HandlePath(http.MethodPost, ActionsPath, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		lines, index, err := actionLines(r)
		if err != nil {
			runtime.HTTPError(r.Context(), mux, marshaler, w, r, err)
			return
		}
		resp, err := client.Report(r.Context(), &trackv1.ReportRequest{Lines: lines})
		if err != nil {
			runtime.HTTPError(r.Context(), mux, marshaler, w, r, err)
			return
		}
		for _, rej := range resp.GetRejected() {
			rej.Index = int32(index[rej.GetIndex()])
		}
		runtime.ForwardResponseMessage(r.Context(), mux, marshaler, w, r, resp)
	})
}

// actionLines reads the body's lines and, for each, its index in the body.
func actionLines(r *http.Request) (lines []string, index []int, err error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "read the body: %v", err)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-ndjson", "application/jsonl", "text/plain":
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 0, 64<<10), MaxActionsBodyBytes)
		for i := 0; sc.Scan(); i++ {
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
				lines = append(lines, string(line))
				index = append(index, i)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, nil, status.Errorf(codes.InvalidArgument, "read the lines: %v", err)
		}
	case "application/json":
		var elems []json.RawMessage
		if err := json.Unmarshal(body, &elems); err != nil {
			return nil, nil, status.Errorf(codes.InvalidArgument, "an application/json body is a JSON array of action objects: %v", err)
		}
		for i, e := range elems {
			var s string
			if json.Unmarshal(e, &s) != nil {
				s = string(e)
			}
			lines = append(lines, s)
			index = append(index, i)
		}
	default:
		return nil, nil, status.Errorf(codes.InvalidArgument, "Content-Type %q: send application/x-ndjson (one action line each) or application/json (an array)", ct)
	}
	return lines, index, nil
}

// bodyLimit is the largest body path may carry.
func bodyLimit(path string) int64 {
	if path == ActionsPath {
		return MaxActionsBodyBytes
	}
	return MaxBodyBytes
}
