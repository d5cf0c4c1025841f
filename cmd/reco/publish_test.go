package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	adminv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/admin/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// publishedState is what `admin publish` may change of the configured store:
// the features and similar articles of ids, and the newest article of each
// channel.
func publishedState(t *testing.T, ids []int64) (string, map[int64][]float64, map[int64][]storage.Scored, map[int32]storage.Scored) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.TablesRole|app.SetsRole, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	vecs, err := st.Tables.ArticleVectors(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	similar := map[int64][]storage.Scored{}
	for _, id := range ids {
		if similar[id], err = st.Tables.Similar(ctx, id, 100); err != nil && len(vecs[id]) > 0 {
			t.Fatal(err)
		}
	}
	newest := map[int32]storage.Scored{}
	for ch := range feed.NumChannels {
		top, err := st.Sets.Top(ctx, storage.NewList, ch, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(top) > 0 {
			newest[ch] = top[0]
		}
	}
	return fmt.Sprint(vecs, similar, newest), vecs, similar, newest
}

func TestAdminPublish(t *testing.T) {
	dir := t.TempDir()
	embeddedEnv(t, dir)
	data, models := filepath.Join(dir, "data"), filepath.Join(dir, "models")
	runOK(t, "admin", "generate", "--out", data, "--users", "250", "--articles", "400", "--days", "4", "--seed", "5")
	runOK(t, "admin", "build", "--data", data, "--models", models)
	news, err := dataset.ReadNews(filepath.Join(data, dataset.NewsFile))
	if err != nil {
		t.Fatal(err)
	}
	channelOf := map[int64]int32{}
	var top int64
	for _, a := range news {
		channelOf[a.ID] = dataset.Channel(a.Category)
		top = max(top, a.ID)
	}
	// A new article with the text of an existing one of channel ch.
	like := news[len(news)/2]
	ch := channelOf[like.ID]
	fresh := like
	fresh.ID = top + 1
	file := filepath.Join(dir, "new.tsv")
	writeNews := func(articles []dataset.Article, extra string) {
		t.Helper()
		var buf bytes.Buffer
		if err := dataset.WriteNews(&buf, articles); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, append(buf.Bytes(), extra...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeNews([]dataset.Article{fresh}, "")

	out := runOK(t, "admin", "publish", "--models", models, "--file", file)
	if want := fmt.Sprintf("published %s to channel %d (%s) at ", dataset.FormatArticleID(fresh.ID), ch, dataset.ChannelName(ch)); !strings.HasPrefix(out, want) || !strings.Contains(out, "similar articles") {
		t.Errorf("publish said %q, want a line starting %q", out, want)
	}
	before, vecs, similar, newest := publishedState(t, []int64{fresh.ID, top + 2})
	if v := vecs[fresh.ID]; len(v) != 111 || int32(v[0]) != ch {
		t.Errorf("features of the published article = %v, want 111 starting with channel %d", v, ch)
	}
	if len(similar[fresh.ID]) == 0 || similar[fresh.ID][0].ID != like.ID {
		t.Errorf("similar articles of the published article = %v, want %d first", similar[fresh.ID], like.ID)
	}
	for _, s := range similar[fresh.ID] {
		if channelOf[s.ID] != ch {
			t.Errorf("similar article %d is of channel %d, want %d", s.ID, channelOf[s.ID], ch)
		}
	}
	for _, c := range []int32{ch, feed.ChannelAll} {
		if newest[c].ID != fresh.ID {
			t.Errorf("channel %d's newest is %v, want %d", c, newest[c], fresh.ID)
		}
	}

	// A batch with a bad line is rejected whole, naming the line.
	good := like
	good.ID = top + 2
	writeNews([]dataset.Article{good}, "N1\tnews\n")
	err = run([]string{"admin", "publish", "--models", models, "--file", file}, &bytes.Buffer{})
	if want := file + ":2: want 8 tab-separated fields"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v, want one starting %q", err, want)
	}
	if after, _, _, _ := publishedState(t, []int64{fresh.ID, top + 2}); after != before {
		t.Errorf("a rejected batch changed the store:\nbefore %s\nafter  %s", before, after)
	}

	// On a running suite: AdminService/Publish, and the article is served
	// at once, to a reader's first page of its channel (the new list's
	// share) and under article_recommend.
	third := like
	third.ID = top + 3
	var line bytes.Buffer
	if err := dataset.WriteNews(&line, []dataset.Article{third}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("", append(os.Environ(), "RECO_SORT_MODEL_DIR="+models, "RECO_SERVER_GRPC_ADDR=127.0.0.1:0",
		"RECO_SERVER_METRICS_ADDR=127.0.0.1:0", "RECO_SERVER_HTTP_ADDR=", "RECO_STORAGE_LOG_EMBEDDED_DIR="+filepath.Join(dir, "log")))
	if err != nil {
		t.Fatal(err)
	}
	conn := serveInProcess(t, cfg)
	resp, err := adminv1.NewAdminServiceClient(conn).Publish(context.Background(), &adminv1.PublishRequest{Lines: []string{strings.TrimSuffix(line.String(), "\n")}})
	if err != nil || len(resp.GetArticles()) != 1 || resp.GetArticles()[0].GetArticleId() != third.ID || resp.GetArticles()[0].GetNeighbours() == 0 {
		t.Fatalf("Publish: %v, %v; want article %d with neighbours", resp, err, third.ID)
	}
	if _, err := adminv1.NewAdminServiceClient(conn).Publish(context.Background(), &adminv1.PublishRequest{Lines: []string{"N1\tnews"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Publish of a bad line: %v, want INVALID_ARGUMENT", err)
	}
	c := userreco.NewUserRecommendClient(conn)
	sim, err := c.ArticleRecommend(context.Background(), &userreco.Article{ArticleId: third.ID, ArticleNum: 5})
	if err != nil || len(sim.GetArticleId()) == 0 {
		t.Errorf("article_recommend of the published article: %v, %v; want its similar articles", sim, err)
	}
	tr, err := c.UserRecommend(context.Background(), &userreco.User{UserId: "fresh-reader", ChannelId: ch, ArticleNum: 10, TimeStamp: time.Now().UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	servedIt := false
	for _, r := range tr.GetRecommends() {
		servedIt = servedIt || r.GetArticleId() == third.ID
	}
	if !servedIt {
		t.Errorf("a fresh reader's first page of channel %d is %v: it lacks the article just published, %d", ch, tr.GetRecommends(), third.ID)
	}
}

// serveInProcess runs every service on cfg until the test ends and returns a
// connection to it.
func serveInProcess(t *testing.T, cfg config.Config) *grpc.ClientConn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	targets, err := app.ParseTargets(app.All)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(ctx, cfg, zap.NewNop(), targets)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestAdminPublishFlagsAreChecked(t *testing.T) {
	dir := t.TempDir()
	embeddedEnv(t, dir)
	for _, args := range [][]string{
		{"admin", "publish"},
		{"admin", "publish", "--models", dir, "--file", filepath.Join(dir, "absent.tsv")},
	} {
		if err := run(args, &bytes.Buffer{}); err == nil {
			t.Errorf("reco %s succeeded", strings.Join(args, " "))
		}
	}
}
