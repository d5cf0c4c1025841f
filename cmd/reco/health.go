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
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
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
//
// When the server serves TLS (server.tls.cert_file is set) the check does too,
// trusting clients.tls.ca_file and presenting clients.tls.cert_file when set
// (for require_client_cert); --server-name is the name the server's
// certificate must carry (default: clients.tls.server_name, else the host
// dialled). Kubernetes' own gRPC probes cannot speak TLS: the manifests run
// this instead.
func healthCheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	addr := fs.String("addr", "", "gRPC address to check; default: server.grpc_addr from the environment")
	service := fs.String("service", "", `service to check, e.g. UserRecommend; "" checks the server as a whole`)
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	serverName := fs.String("server-name", "", "with TLS: the name the server's certificate must carry; default clients.tls.server_name, else the host dialled")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	target := *addr
	if target == "" {
		target = fromEnv("server.grpc_addr")
	}
	target, err := dialable(target)
	if err != nil {
		return err
	}
	creds, err := healthCredentials(*serverName)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
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

// fromEnv is a key's value with its environment override applied.
func fromEnv(key string) string {
	cfg := config.Default()
	for _, e := range config.EnvTable(&cfg) {
		if e.Key == key {
			if v, ok := os.LookupEnv(e.Env); ok {
				return v
			}
			return e.Value()
		}
	}
	return ""
}

// healthCredentials are plaintext, or TLS when the environment says the
// server serves TLS (see healthCheck).
func healthCredentials(serverName string) (credentials.TransportCredentials, error) {
	if fromEnv("server.tls.cert_file") == "" {
		return insecure.NewCredentials(), nil
	}
	if serverName == "" {
		serverName = fromEnv("clients.tls.server_name")
	}
	cli, err := certs.NewClient(certs.Client{
		Enabled:    true,
		CAFile:     fromEnv("clients.tls.ca_file"),
		CertFile:   fromEnv("clients.tls.cert_file"),
		KeyFile:    fromEnv("clients.tls.key_file"),
		ServerName: serverName,
	}, nil)
	if err != nil {
		return nil, err
	}
	return server.PeerTLS(cli), nil
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
