package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/toutiao-reco/toutiao-reco/pkg/config"
)

// healthCheck is `reco health [--addr HOST:PORT] [--service NAME] [--timeout D]`:
// one gRPC health check (grpc.health.v1.Health/Check), exiting non-zero unless
// the answer is SERVING. Container healthchecks run it inside the reco image,
// which has no shell and no grpc_health_probe.
//
// Without --addr it checks server.grpc_addr as the environment sets it
// (RECO_SERVER_GRPC_ADDR, else the default): a healthcheck that runs with the
// service's own environment cannot drift from the port the service listens on.
// It reads that one key only, so a bad edit elsewhere in the configuration (a
// strategies file that does not parse, which the running server survives) does
// not turn a serving container unhealthy. A wildcard host (0.0.0.0, ::, empty) is
// checked on loopback.
func healthCheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	addr := fs.String("addr", "", "gRPC address to check; default: server.grpc_addr from the environment")
	service := fs.String("service", "", `service to check, e.g. UserRecommend; "" checks the server as a whole`)
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	target := *addr
	if target == "" {
		target = grpcAddrFromEnv()
	}
	target, err := dialable(target)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("health %s: %w", target, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: *service}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("health %s %q: %w", target, *service, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health %s %q: %s", target, *service, resp.GetStatus())
	}
	fmt.Fprintln(stdout, resp.GetStatus())
	return nil
}

// grpcAddrFromEnv is server.grpc_addr with its environment override applied.
func grpcAddrFromEnv() string {
	cfg := config.Default()
	for _, e := range config.EnvTable(&cfg) {
		if e.Key == "server.grpc_addr" {
			if v, ok := os.LookupEnv(e.Env); ok {
				return v
			}
		}
	}
	return cfg.Server.GRPCAddr
}

// dialable turns a listen address into one a client on the same host can dial.
func dialable(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("health: address must be host:port, got %q: %w", addr, err)
	}
	if port == "" || port == "0" {
		return "", errors.New("health: address " + addr + " has no fixed port")
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
