package app

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// TestEmptyStoreIsAnErrorAtStartup: a suite started on a store no build wrote
// (the image's default `serve --target=all` on a fresh volume) answers every
// feed with an empty page, so start-up says so at error level, naming the
// commands that load data; a store with articles starts without it.
func TestEmptyStoreIsAnErrorAtStartup(t *testing.T) {
	for _, c := range []struct {
		name    string
		targets []string
		seed    bool
		want    bool
	}{
		{"empty store, all in one", []string{All}, false, true},
		{"empty store, recall alone", []string{Recall}, false, true},
		{"empty store, cache alone (serves no candidates)", []string{Cache}, false, false},
		{"a built store", []string{All}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			if c.seed {
				ctx := context.Background()
				st, cleanup, err := OpenStores(ctx, cfg.Storage, SetsRole, zap.NewNop(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := st.Sets.Replace(ctx, storage.NewList, 3, []storage.Scored{{ID: 42, Score: 1}}); err != nil {
					t.Fatal(err)
				}
				if err := cleanup(); err != nil {
					t.Fatal(err)
				}
			}
			targets, err := ParseTargets(strings.Join(c.targets, ","))
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.InfoLevel)
			ctx, cancel := context.WithCancel(context.Background())
			a, err := New(ctx, cfg, zap.New(core), targets)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			// Run checks the store before it serves: once a call is answered,
			// the check is done.
			conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
			conn.Close()
			if err != nil {
				t.Errorf("health check: %v", err)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			var got []string
			for _, e := range logs.FilterLevelExact(zapcore.ErrorLevel).All() {
				got = append(got, e.Message)
			}
			said := len(got) == 1 && strings.Contains(got[0], "the store holds no articles") &&
				strings.Contains(got[0], "reco admin demo") && strings.Contains(got[0], "reco admin build")
			if said != c.want || !c.want && len(got) > 0 {
				t.Errorf("targets %v, seeded %v: error lines %q; want the empty-store error: %v", c.targets, c.seed, got, c.want)
			}
		})
	}
}
