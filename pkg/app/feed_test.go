package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/internal/fixture"
	"github.com/toutiao-reco/toutiao-reco/internal/originalclient"
	"github.com/toutiao-reco/toutiao-reco/pkg/abtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog/logtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

const fixtureChannel = fixture.Channel

// feedEnv is where one feed test runs: the embedded default, or the real HBase
// and Redis that `make test` starts. Each test gets its own: the servers outlive
// a test, so there every test gets fresh readers.
type feedEnv struct {
	// thrift, redis and kafka are the real servers' addresses; empty on the
	// embedded default.
	thrift, redis, kafka string
	// user is the fixture's reader, in Algo-1; algo2 is one in Algo-2.
	user, algo2 string
}

// embeddedEnv is the default: a fresh embedded file per test.
func embeddedEnv() feedEnv {
	return feedEnv{user: "reader-1", algo2: "3"} // md5("3") starts with e
}

// freshUser returns a user id no earlier run used, in Algo-2 or in Algo-1.
func freshUser(algo2 bool) string {
	for i := 0; ; i++ {
		u := fmt.Sprintf("reader-%d-%d", time.Now().UnixNano(), i)
		if (abtest.Bucket("", 16, u) >= 14) == algo2 {
			return u
		}
	}
}

// feedTests are the feed tests, run on the embedded default by TestFeed and
// again on real HBase and Redis by TestFeedOnHBaseAndRedis.
var feedTests = []struct {
	name string
	test func(*testing.T, feedEnv)
}{
	{"PagingWalk", testPagingWalk},
	{"RefreshServesInRankedOrderWithMixing", testRefreshServesInRankedOrderWithMixing},
	{"ConcurrentRefreshesNeverRepeat", testConcurrentRefreshesNeverRepeat},
	{"ChannelZeroIsFilteredFromChannels", testChannelZeroIsFilteredFromChannels},
	{"TrackStrings", testTrackStrings},
	{"BadInputIsRefusedAndWritesNothing", testBadInputIsRefusedAndWritesNothing},
	{"EmptyAndAnonymousUsers", testEmptyAndAnonymousUsers},
	{"Degradation", testDegradation},
	{"OriginalClientAllInOne", testOriginalClientAllInOne},
	{"MetricsAndRequestLogsAfterTraffic", testMetricsAndRequestLogsAfterTraffic},
	{"ClicksReachTheNextPage", testClicksReachTheNextPage},
}

// TestFeedOnHBaseAndRedis runs the feed tests again on real HBase, Redis and
// Kafka (the served-ids log), which `make test` starts.
func TestFeedOnHBaseAndRedis(t *testing.T) {
	thrift, redis := storagetest.Server(t, storagetest.EnvHBase), storagetest.Server(t, storagetest.EnvRedis)
	kafka := logtest.Server(t, logtest.EnvKafka)
	for _, tc := range feedTests {
		t.Run(tc.name, func(t *testing.T) {
			tc.test(t, feedEnv{thrift: thrift, redis: redis, kafka: kafka, user: freshUser(false), algo2: freshUser(true)})
		})
	}
}

// TestFeed runs the feed tests on the embedded default, each on a store of its
// own, in parallel.
func TestFeed(t *testing.T) {
	for _, tc := range feedTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, embeddedEnv())
		})
	}
}

// t0 is the tests' clock origin: time stamps are real milliseconds, since
// history versions older than the 90-day TTL are gone as soon as written.
var t0 = time.Now().UnixMilli()

// seed writes the fixture for the env's reader and users.
func (e feedEnv) seed(t *testing.T, cfg config.Config, users ...string) {
	t.Helper()
	ctx := context.Background()
	stores, cleanup, err := OpenStores(ctx, cfg.Storage, TablesRole|SetsRole, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	if err := fixture.Seed(ctx, stores.Tables, stores.Sets, cfg.Sort.ModelDir, append([]string{e.user}, users...)...); err != nil {
		t.Fatal(err)
	}
}

func (e feedEnv) config(t *testing.T) config.Config {
	cfg := testConfig(t)
	if e.thrift != "" {
		cfg.Storage.Tables, cfg.Storage.HBase.ThriftAddr = "hbase", e.thrift
		cfg.Storage.Sets, cfg.Storage.Redis.Addrs = "redis", []string{e.redis}
		cfg.Storage.Log.Backend, cfg.Storage.Log.Kafka.Brokers = "kafka", []string{e.kafka}
		// Topics and groups of the test's own: the Kafka outlives tests, and
		// other tests' processes would join a shared group (pausing it with
		// their rebalances, taking its partitions) or leave a backlog in a
		// shared topic.
		cfg.Storage.Log.Namespace = logtest.Namespace(t)
	}
	cfg.Sort.ModelDir = filepath.Join(t.TempDir(), "models")
	// Recall keeps the test's ALS order deterministic by taking all of it.
	cfg.Recall.SourceLimit = 500
	// These tests are about what is served, not deadlines: a slow run (-race)
	// must not turn them into degradation tests.
	for _, c := range []*config.Client{&cfg.Clients.RecoCenter, &cfg.Clients.Recall, &cfg.Clients.Sort, &cfg.Clients.Cache} {
		c.Timeout = 10 * time.Second
	}
	cfg.RecoCenter.FillTimeout, cfg.RecoCenter.HistoryTimeout = 10*time.Second, 10*time.Second
	return cfg
}

func (e feedEnv) start(t *testing.T, users ...string) (*App, userreco.UserRecommendClient) {
	cfg := e.config(t)
	e.seed(t, cfg, users...)
	a, conn, _ := start(t, cfg, order)
	return a, userreco.NewUserRecommendClient(conn)
}

func refresh(t *testing.T, c userreco.UserRecommendClient, user string, channel int32, n int32, ts int64) *userreco.Track {
	t.Helper()
	tr, err := c.UserRecommend(context.Background(), &userreco.User{UserId: user, ChannelId: channel, ArticleNum: n, TimeStamp: ts})
	if err != nil {
		t.Fatalf("user_recommend(%s, ch %d, n %d, ts %d): %v", user, channel, n, ts, err)
	}
	return tr
}

func served(tr *userreco.Track) []int64 {
	var ids []int64
	for _, r := range tr.GetRecommends() {
		ids = append(ids, r.GetArticleId())
	}
	return ids
}

func testPagingWalk(t *testing.T, e feedEnv) {
	_, c := e.start(t)
	var pages [][]int64
	for i, ts := range []int64{t0 + 1000, t0 + 2000, t0 + 3000} {
		tr := refresh(t, c, e.user, fixtureChannel, 10, ts)
		ids := served(tr)
		if len(ids) != 10 {
			t.Fatalf("refresh %d served %d ids, want 10", i+1, len(ids))
		}
		if tr.GetExposure() == "" {
			t.Errorf("refresh %d has no exposure", i+1)
		}
		if want := []int64{0, t0 + 1000, t0 + 2000}[i]; tr.GetTimeStamp() != want {
			t.Errorf("refresh %d time_stamp = %d, want the previous refresh's %d", i+1, tr.GetTimeStamp(), want)
		}
		for _, p := range pages {
			for _, id := range ids {
				if slices.Contains(p, id) {
					t.Errorf("refresh %d served %d again", i+1, id)
				}
			}
		}
		pages = append(pages, ids)
	}

	tests := []struct {
		ts       int64
		wantIDs  []int64
		wantNext int64
	}{
		{t0 + 3000, pages[2], t0 + 2000}, // the newest refresh's own stamp: a history page
		{t0 + 2999, pages[1], t0 + 1000},
		{t0 + 2000, pages[1], t0 + 1000},
		{t0 + 1000, pages[0], 0}, // one version left: nothing older
		{t0 + 999, nil, 0},       // older than everything
	}
	for _, tt := range tests {
		tr := refresh(t, c, e.user, fixtureChannel, 10, tt.ts)
		if got := served(tr); !slices.Equal(got, tt.wantIDs) || tr.GetTimeStamp() != tt.wantNext {
			t.Errorf("history page at t0+%d = %v next %d; want %v next %d", tt.ts-t0, got, tr.GetTimeStamp(), tt.wantIDs, tt.wantNext)
		}
		if tr.GetExposure() != "" {
			t.Errorf("history page at %d has exposure %q, want none", tt.ts, tr.GetExposure())
		}
	}
}

func testRefreshServesInRankedOrderWithMixing(t *testing.T, e feedEnv) {
	_, c := e.start(t)
	ids := served(refresh(t, c, e.user, fixtureChannel, 20, t0+1000))
	// Ranked: the model puts higher ids first. Mixed at 10% new and 10% hot: of
	// every ten, one is new and one hot, the first new and hot leading.
	if ids[0] != 2989 || ids[1] != 2999 || ids[10] != 2988 || ids[11] != 2998 {
		t.Errorf("served %v, want newest 2989 then hottest 2999 first, and again at positions 11 and 12", ids)
	}
	var rest []int64
	for _, id := range ids {
		if id >= 3000 {
			rest = append(rest, id)
		}
	}
	if !slices.IsSortedFunc(rest, func(a, b int64) int { return int(b - a) }) || rest[0] != 3249 {
		t.Errorf("recalled ids %v are not in model order (highest id first, from 3249)", rest)
	}
	// The next refresh continues from the cache, in the same order.
	next := served(refresh(t, c, e.user, fixtureChannel, 5, t0+2000))
	for _, id := range next {
		if slices.Contains(ids, id) {
			t.Errorf("second refresh repeats %d", id)
		}
	}
}

func testConcurrentRefreshesNeverRepeat(t *testing.T, e feedEnv) {
	_, c := e.start(t)
	const refreshes = 50
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts = map[int64]int{}
	)
	for i := range refreshes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Groups of five share a time stamp.
			tr, err := c.UserRecommend(context.Background(), &userreco.User{UserId: e.user, ChannelId: fixtureChannel, ArticleNum: 5, TimeStamp: t0 + int64(10000+i/5)})
			if err != nil {
				t.Error(err)
				return
			}
			if tr.GetExposure() == "" {
				return // answered as a history page: a newer refresh landed first
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range served(tr) {
				counts[id]++
			}
		}()
	}
	wg.Wait()
	if len(counts) == 0 {
		t.Fatal("no refresh served anything")
	}
	for id, n := range counts {
		if n > 1 {
			t.Errorf("article %d served %d times", id, n)
		}
	}
	// Every served id is reachable by paging back through history, once
	// the served log's applier wrote it (milliseconds after it answered).
	reachable := map[int64]bool{}
	missing := func() []int64 {
		clear(reachable)
		for ts := t0 + time.Minute.Milliseconds(); ts != 0; {
			tr := refresh(t, c, e.user, fixtureChannel, 5, ts)
			for _, id := range served(tr) {
				reachable[id] = true
			}
			ts = tr.GetTimeStamp()
		}
		var out []int64
		for id := range counts {
			if !reachable[id] {
				out = append(out, id)
			}
		}
		return out
	}
	m := missing()
	for deadline := time.Now().Add(10 * time.Second); len(m) > 0 && time.Now().Before(deadline); m = missing() {
		time.Sleep(20 * time.Millisecond)
	}
	for _, id := range m {
		t.Errorf("served article %d is not in history", id)
	}
}

func testChannelZeroIsFilteredFromChannels(t *testing.T, e feedEnv) {
	_, c := e.start(t)
	zero := served(refresh(t, c, e.user, 0, 20, t0+1000))
	if len(zero) == 0 {
		t.Fatal("channel 0 served nothing")
	}
	for ts := t0 + 2000; ts < t0+12000; ts += 1000 {
		for _, id := range served(refresh(t, c, e.user, fixtureChannel, 20, ts)) {
			if slices.Contains(zero, id) {
				t.Fatalf("channel %d served %d, already seen in channel 0", fixtureChannel, id)
			}
		}
	}
}

func testTrackStrings(t *testing.T, e feedEnv) {
	_, c := e.start(t, e.algo2)
	for _, tt := range []struct{ user, strategy string }{{e.user, "Algo-1"}, {e.algo2, "Algo-2"}} {
		tr := refresh(t, c, tt.user, fixtureChannel, 3, t0+1000)
		ids := served(tr)
		if len(ids) != 3 {
			t.Fatalf("%s: served %v, want 3 ids", tt.user, ids)
		}
		idList, _ := json.Marshal(ids)
		wantExposure := fmt.Sprintf(`{"action": "exposure", "userId": %q, "articleId": %q, "algorithmCombine": %q}`,
			tt.user, strings.ReplaceAll(string(idList), ",", ", "), tt.strategy)
		if tr.GetExposure() != wantExposure {
			t.Errorf("exposure = %s\nwant       %s", tr.GetExposure(), wantExposure)
		}
		checkKeys(t, tr.GetExposure(), map[string]string{"action": "exposure", "userId": tt.user, "algorithmCombine": tt.strategy})
		for _, r := range tr.GetRecommends() {
			p := r.GetParams()
			for action, s := range map[string]string{"click": p.GetClick(), "collect": p.GetCollect(), "share": p.GetShare(), "read": p.GetRead()} {
				want := fmt.Sprintf(`{"action": %q, "userId": %q, "articleId": "%d", "algorithmCombine": %q}`, action, tt.user, r.GetArticleId(), tt.strategy)
				if s != want {
					t.Errorf("%s = %s\nwant %s", action, s, want)
				}
				checkKeys(t, s, map[string]string{"action": action, "userId": tt.user, "articleId": strconv.FormatInt(r.GetArticleId(), 10), "algorithmCombine": tt.strategy})
			}
		}
	}
}

// checkKeys parses a track string as a log pipeline would: the keys in order,
// every value a string, the given values exact.
func checkKeys(t *testing.T, s string, want map[string]string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not a JSON object", s)
	}
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		v, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		sv, ok := v.(string)
		if !ok {
			t.Errorf("%s: %v is %T, want a string", s, k, v)
		}
		keys = append(keys, k.(string))
		if w, ok := want[k.(string)]; ok && w != sv {
			t.Errorf("%s: %v = %q, want %q", s, k, sv, w)
		}
		if k == "articleId" && want["action"] == "exposure" {
			var ids []int64
			if err := json.Unmarshal([]byte(sv), &ids); err != nil {
				t.Errorf("%s: exposure articleId %q is not a JSON array of ids", s, sv)
			}
		}
	}
	if !slices.Equal(keys, []string{"action", "userId", "articleId", "algorithmCombine"}) {
		t.Errorf("%s: keys %v, want action, userId, articleId, algorithmCombine in that order", s, keys)
	}
}

func testBadInputIsRefusedAndWritesNothing(t *testing.T, e feedEnv) {
	a, c := e.start(t)
	good := userreco.User{UserId: e.user, ChannelId: fixtureChannel, ArticleNum: 10, TimeStamp: t0 + 1000}
	tests := []struct {
		name   string
		mutate func(u *userreco.User)
		field  string
	}{
		{"zero article_num", func(u *userreco.User) { u.ArticleNum = 0 }, "article_num"},
		{"negative article_num", func(u *userreco.User) { u.ArticleNum = -5 }, "article_num"},
		{"huge article_num", func(u *userreco.User) { u.ArticleNum = 1 << 30 }, "article_num"},
		{"negative channel", func(u *userreco.User) { u.ChannelId = -1 }, "channel_id"},
		{"unknown channel", func(u *userreco.User) { u.ChannelId = 25 }, "channel_id"},
		{"zero time_stamp", func(u *userreco.User) { u.TimeStamp = 0 }, "time_stamp"},
		{"negative time_stamp", func(u *userreco.User) { u.TimeStamp = -10 }, "time_stamp"},
		{"year-3000 time_stamp", func(u *userreco.User) { u.TimeStamp = 32503680000000 }, "time_stamp"},
		{"2^63-1 time_stamp", func(u *userreco.User) { u.TimeStamp = 1<<63 - 1 }, "time_stamp"},
		{"time_stamp in seconds", func(u *userreco.User) { u.TimeStamp = 1733100000 }, "time_stamp"},
		{"control character in user_id", func(u *userreco.User) { u.UserId = "a\x00b" }, "user_id"},
		{"overlong user_id", func(u *userreco.User) { u.UserId = strings.Repeat("u", 300) }, "user_id"},
	}
	for _, tt := range tests {
		req := &userreco.User{UserId: good.UserId, ChannelId: good.ChannelId, ArticleNum: good.ArticleNum, TimeStamp: good.TimeStamp}
		tt.mutate(req)
		_, err := c.UserRecommend(context.Background(), req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.field) {
			t.Errorf("%s: err = %v, want InvalidArgument naming %s", tt.name, err, tt.field)
		}
	}
	ctx := context.Background()
	if got, err := a.stores.Tables.Page(ctx, e.user, fixtureChannel, 1<<62); err != nil || len(got) != 0 {
		t.Errorf("history after refused calls = %v, %v; want none", got, err)
	}
	if got, err := a.stores.Sets.Pop(ctx, e.user, fixtureChannel, 1); err != nil || len(got) != 0 {
		t.Errorf("cache after refused calls = %v, %v; want none", got, err)
	}
}

func testEmptyAndAnonymousUsers(t *testing.T, e feedEnv) {
	a, c := e.start(t)
	tr := refresh(t, c, "", fixtureChannel, 10, t0+1000)
	if tr.GetExposure() != "" || len(tr.GetRecommends()) != 0 || tr.GetTimeStamp() != 0 {
		t.Errorf("empty user_id = %v, want an empty track", tr)
	}
	for ts := t0 + 1000; ts <= t0+2000; ts += 1000 {
		tr = refresh(t, c, "anony", fixtureChannel, 6, ts)
		ids := served(tr)
		if !slices.Equal(ids, []int64{2999, 2989, 2998, 2988, 2997, 2987}) {
			t.Errorf("anonymous feed = %v, want hot and new alternating", ids)
		}
		if tr.GetExposure() == "" || tr.GetTimeStamp() != 0 {
			t.Errorf("anonymous track: exposure %q, time_stamp %d; want an exposure and 0", tr.GetExposure(), tr.GetTimeStamp())
		}
	}
	if got, _ := a.stores.Tables.Page(context.Background(), "anony", fixtureChannel, 1<<62); len(got) != 0 {
		t.Errorf("anonymous history = %v, want none: the id is shared", got)
	}
}

func testDegradation(t *testing.T, e feedEnv) {
	t.Run("no sort model: recall order", func(t *testing.T) {
		cfg := e.config(t)
		e.seed(t, cfg)
		if err := os.Remove(model.Path(cfg.Sort.ModelDir, 200)); err != nil {
			t.Fatal(err)
		}
		_, conn, _ := start(t, cfg, order)
		ids := served(refresh(t, userreco.NewUserRecommendClient(conn), e.user, fixtureChannel, 10, t0+1000))
		var recalled []int64
		for _, id := range ids {
			if id >= 3000 {
				recalled = append(recalled, id)
			}
		}
		if len(ids) != 10 || !slices.IsSorted(recalled) || recalled[0] != 3000 {
			t.Errorf("served %v, want recall (ALS) order from 3000, mixed with new and hot", ids)
		}
	})
	t.Run("no recall: hot and new", func(t *testing.T) {
		cfg := e.config(t)
		user := e.user + "-norecall" // the subtest above filled e.user's cache
		e.seed(t, cfg, user)
		cfg.Clients.Recall.Addr = freeAddr(t) // nothing listens there
		_, conn, _ := start(t, cfg, []string{Routing, RecoCenter, Sort, Cache})
		ids := served(refresh(t, userreco.NewUserRecommendClient(conn), user, fixtureChannel, 4, t0+1000))
		if !slices.Equal(ids, []int64{2999, 2989, 2998, 2988}) {
			t.Errorf("served %v, want the channel's hot and new", ids)
		}
	})
}

func testOriginalClientAllInOne(t *testing.T, e feedEnv) {
	cfg := e.config(t)
	e.seed(t, cfg)
	_, conn, _ := start(t, cfg, order)
	oc, err := originalclient.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := oc.UserRecommend(context.Background(), e.user, fixtureChannel, 5, t0+1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Recommends) != 5 || tr.Exposure == "" || tr.Recommends[0].ArticleID != 2989 {
		t.Errorf("original client got %+v, want 5 articles led by 2989 with an exposure", tr)
	}
	want := fmt.Sprintf(`{"action": "read", "userId": "%s", "articleId": "2989", "algorithmCombine": "Algo-1"}`, e.user)
	if tr.Recommends[0].Read != want {
		t.Errorf("read param = %s, want %s", tr.Recommends[0].Read, want)
	}
	similar, err := oc.ArticleRecommend(context.Background(), 3000, 2)
	if err != nil || !slices.Equal(similar, []int64{3001, 3002}) {
		t.Errorf("article_recommend(3000, 2) = %v, %v; want [3001 3002]", similar, err)
	}
}

func testMetricsAndRequestLogsAfterTraffic(t *testing.T, e feedEnv) {
	cfg := e.config(t)
	e.seed(t, cfg)
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, zap.New(core), order)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	// Stopped and waited for before the test's directories are removed.
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := userreco.NewUserRecommendClient(conn)
	total := 0
	for i := range int64(3) {
		total += len(served(refresh(t, c, e.user, fixtureChannel, 10, t0+1000*(i+1))))
	}
	refresh(t, c, e.user, fixtureChannel, 10, t0+1000) // a history page: not served again

	resp, err := http.Get("http://" + a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // read whole: closing loses nothing
	metrics := string(body)
	for _, want := range []string{
		`reco_grpc_server_handled_total{grpc_code="OK",grpc_method="user_recommend",grpc_service="UserRecommend",grpc_type="unary"} 4`,
		`reco_grpc_server_handling_seconds_count{grpc_method="user_recommend",grpc_service="UserRecommend",grpc_type="unary"} 4`,
		fmt.Sprintf(`reco_served_articles_total{strategy="Algo-1"} %d`, total),
		`reco_cache_pops_total{outcome="empty"} 1`,
		`reco_cache_pops_total{outcome="hit"} 3`,
		`reco_recall_candidates_count{source="100"} 1`,
		`reco_recall_candidates_sum{source="100"} 200`,
		`reco_ranked_articles_total{strategy="Algo-1"} 270`,
		`reco_grpc_client_handled_total{grpc_code="OK",grpc_method="Feed",grpc_service="reco.recocenter.v1.RecoCenterService",grpc_type="unary"} 4`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, e.user) {
		t.Error("/metrics mentions a user id: labels must stay bounded")
	}

	lines := logs.FilterMessage("finished call").FilterField(zap.String("grpc.method", "user_recommend")).All()
	if len(lines) != 4 {
		t.Fatalf("%d user_recommend request lines, want 4", len(lines))
	}
	f := lines[0].ContextMap()
	if f["user"] != e.user || f["channel"] != int32(fixtureChannel) || f["strategy"] != "Algo-1" || f["grpc.time_ms"] == nil {
		t.Errorf("request line fields = %v, want user, channel, strategy and latency", f)
	}
}
