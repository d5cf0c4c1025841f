package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// TestDemoFeedNeverRunsDry is DESIGN §4 "never dark" on `make run`'s demo data: a
// brand-new reader pulls full pages of 10 articles they have not seen from
// channel 1 for as long as the channel holds 10 they have not seen, and from
// channel 0 for at least 50 pulls.
func TestDemoFeedNeverRunsDry(t *testing.T) {
	dir := t.TempDir()
	embeddedEnv(t, dir)
	models := filepath.Join(dir, "models")
	runOK(t, "admin", "demo", "--models", models)

	cfg, err := config.Load("", os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.GRPCAddr, cfg.Server.MetricsAddr, cfg.Server.HTTPAddr, cfg.Server.LameDuck = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", 0
	cfg.Sort.ModelDir = models
	cfg.Storage.Log.Embedded.Dir = filepath.Join(dir, "log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// What channel 1 holds: its new and hot lists, read before the server
	// takes the store.
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.SetsRole, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	holds := map[int64]bool{}
	for _, list := range []storage.ChannelList{storage.NewList, storage.HotList} {
		top, err := st.Sets.Top(ctx, list, 1, 100000)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range top {
			holds[a.ID] = true
		}
	}
	_ = cleanup()

	a, err := app.New(ctx, cfg, zap.NewNop(), mustTargets(t, "all"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := userreco.NewUserRecommendClient(conn)

	ts := time.Now().UnixMilli()
	pull := func(user string, channel int32) []int64 {
		t.Helper()
		ts++
		tr, err := c.UserRecommend(ctx, &userreco.User{UserId: user, ChannelId: channel, ArticleNum: 10, TimeStamp: ts})
		if err != nil {
			t.Fatalf("pull of channel %d: %v", channel, err)
		}
		var ids []int64
		for _, r := range tr.GetRecommends() {
			ids = append(ids, r.GetArticleId())
		}
		return ids
	}

	seen := map[int64]bool{}
	pulls := 0
	for unseen := len(holds); ; pulls++ {
		ids := pull("fresh-reader", 1)
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("pull %d of channel 1 repeats article %d", pulls+1, id)
			}
			seen[id] = true
			if holds[id] {
				unseen--
			}
		}
		if len(ids) < 10 {
			if unseen >= 10 {
				t.Errorf("pull %d of channel 1 served %d articles while the channel holds %d the reader has not seen", pulls+1, len(ids), unseen)
			}
			break
		}
		if pulls > len(holds) {
			t.Fatal("channel 1 never ran out")
		}
	}
	t.Logf("channel 1 (%d articles in its lists): %d full pages of 10, %d articles served", len(holds), pulls, len(seen))

	seen = map[int64]bool{}
	for i := range 50 {
		ids := pull("fresh-reader", 0)
		if len(ids) != 10 {
			t.Fatalf("pull %d of channel 0 served %d articles, want 10", i+1, len(ids))
		}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("pull %d of channel 0 repeats article %d", i+1, id)
			}
			seen[id] = true
		}
	}
}

func mustTargets(t *testing.T, s string) []string {
	t.Helper()
	targets, err := app.ParseTargets(s)
	if err != nil {
		t.Fatal(err)
	}
	return targets
}
