package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog/logtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

// TestNearlineKilledMidStreamLosesAndDoublesNothing produces a stream of action
// lines to Kafka as a log shipper would, SIGKILLs the nearline process while
// it applies them, restarts it, and counts end to end: every exposure and
// click lands in the A/B counters exactly once, and every click in the hot
// list exactly once.
func TestNearlineKilledMidStreamLosesAndDoublesNothing(t *testing.T) {
	thrift, redisAddr := storagetest.Server(t, storagetest.EnvHBase), storagetest.Server(t, storagetest.EnvRedis)
	kafka := logtest.Server(t, logtest.EnvKafka)
	topic := fmt.Sprintf("click-trace-kill-%d", time.Now().UnixNano()) // a topic and group of its own
	env := []string{
		"RECO_TRACK_TOPIC=" + topic, "RECO_NEARLINE_GROUP=" + topic,
		"RECO_STORAGE_TABLES=hbase", "RECO_STORAGE_HBASE_THRIFT_ADDR=" + thrift,
		"RECO_STORAGE_SETS=redis", "RECO_STORAGE_REDIS_ADDRS=" + redisAddr,
		"RECO_STORAGE_LOG_BACKEND=kafka", "RECO_STORAGE_LOG_KAFKA_BROKERS=" + kafka,
		"RECO_SERVER_LAME_DUCK=0s", "RECO_LOG_LEVEL=warn",
		// No decay while the test counts.
		"RECO_NEARLINE_COOL_INTERVAL=24h",
	}
	startNearline := func() (*exec.Cmd, *bytes.Buffer) {
		var out bytes.Buffer
		cmd := recoCommand(context.Background(), append(env, "RECO_SERVER_GRPC_ADDR="+freeAddr(t), "RECO_SERVER_METRICS_ADDR="+freeAddr(t), "RECO_SERVER_HTTP_ADDR="+freeAddr(t)), "serve", "--target=nearline")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, &out
	}

	// The stream: readers of a strategy no other test uses, each with
	// exposures and clicks on articles no other test uses.
	strategy := fmt.Sprintf("kill-%d", time.Now().UnixNano())
	const readers, pages = 200, 25
	article := func(r, p int) int64 { return 1<<42 + int64(time.Now().Unix()%1000)<<20 + int64(r*pages+p) }
	base := article(0, 0)
	var records []*kgo.Record
	wantClicks := map[int64]float64{}
	for p := range pages {
		for r := range readers {
			user := fmt.Sprintf("%s-u%d", strategy, r)
			a := base + int64(r*pages+p)
			records = append(records,
				&kgo.Record{Topic: topic, Value: fmt.Appendf(nil, `{"actionTime": %d, "readTime": "", "channelId": 0, "param": {"action": "exposure", "userId": %q, "articleId": "[%d, %d]", "algorithmCombine": %q}}`, time.Now().UnixMilli(), user, a, a+1<<30, strategy)},
				&kgo.Record{Topic: topic, Value: fmt.Appendf(nil, `{"action": "click", "userId": %q, "articleId": "%d", "algorithmCombine": %q}`, user, a, strategy)})
			wantClicks[a]++
		}
	}
	cmd, out := startNearline()
	waitServing(t, addrOf(cmd), out)

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Read what the stores hold, as the A/B readout and the feed do.
	cfg := config.Default()
	cfg.Storage.Sets, cfg.Storage.Redis.Addrs = "redis", []string{redisAddr}
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.SetsRole, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	counted := func() (exposures, clicks int64) {
		c, err := st.Sets.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, uc := range c[strategy] {
			exposures += uc.Exposures
			clicks += uc.Clicks
		}
		return exposures, clicks
	}
	wantExposures, wantClicksTotal := int64(2*readers*pages), int64(readers*pages)

	// Kill it once it is part way through.
	for deadline := time.Now().Add(30 * time.Second); ; {
		e, _ := counted()
		if e > 0 {
			if e == wantExposures {
				t.Fatalf("nearline applied the whole stream before it could be killed; output:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nearline applied nothing in 30s; output:\n%s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killedAt, _ := counted()
	cmd, out = startNearline()
	waitServing(t, addrOf(cmd), out)

	var e, c int64
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if e, c = counted(); e >= wantExposures && c >= wantClicksTotal {
			break
		}
	}
	time.Sleep(2 * time.Second) // anything redelivered late would show now
	e, c = counted()
	t.Logf("killed after %d of %d exposures; after the restart: %d exposures, %d clicks", killedAt, wantExposures, e, c)
	if e != wantExposures || c != wantClicksTotal {
		t.Errorf("counters hold %d exposures and %d clicks, want exactly %d and %d", e, c, wantExposures, wantClicksTotal)
	}
	hot, err := st.Sets.Top(ctx, storage.HotList, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]float64{}
	for _, s := range hot {
		if _, ours := wantClicks[s.ID]; ours {
			got[s.ID] = s.Score
		}
	}
	bad := 0
	for a, want := range wantClicks {
		if math.Abs(got[a]-want) > 0.01 && bad < 5 {
			bad++
			t.Errorf("article %d scores %v in ch:0:hot, want %v (its clicks)", a, got[a], want)
		}
	}
}

// addrOf is the gRPC address a process started by recoCommand serves on.
func addrOf(cmd *exec.Cmd) string {
	addr := ""
	for _, kv := range cmd.Env {
		if v, ok := strings.CutPrefix(kv, "RECO_SERVER_GRPC_ADDR="); ok {
			addr = v
		}
	}
	return addr
}
