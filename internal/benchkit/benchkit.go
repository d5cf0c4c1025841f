// Package benchkit holds what the benchmark commands (cmd/loadgen,
// cmd/loopbench) share: reading id files and waiting for the suite.
package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Lines reads the non-blank lines of path, trimmed; a file without any is an
// error.
func Lines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 && sc.Err() == nil {
		return nil, fmt.Errorf("%s holds no ids", path)
	}
	return out, sc.Err()
}

// WaitServing waits until the server's health check answers SERVING.
func WaitServing(conn *grpc.ClientConn, limit time.Duration) error {
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not SERVING after %v: %v", limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
