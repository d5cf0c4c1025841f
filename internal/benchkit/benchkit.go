// Package benchkit holds what the benchmark commands (cmd/loadgen,
// cmd/floorchain, cmd/loopbench) share: reading id files and waiting for the
// suite; driving calls in an open loop (a fixed rate: a slow server does not
// slow the arrivals down) or a closed loop (a fixed number in flight); the
// step ladder that finds a request kind's knee; the CPU and memory of the
// processes under test; and the JSON results `make bench` compares with its
// committed baseline.
package benchkit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Lines reads the non-blank lines of path, trimmed; a file without any is an
// error.
func Lines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only: closing loses nothing
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

// Dial connects to a plaintext gRPC server and waits (up to a minute) until
// its health check answers SERVING.
func Dial(addr string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	if err := WaitServing(conn, time.Minute); err != nil {
		_ = conn.Close() // never used: the wait's error is the one to report
		return nil, err
	}
	return conn, nil
}

// readJSON decodes the JSON file at path into v.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// writeJSON writes v to path as indented JSON.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
