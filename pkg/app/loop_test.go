package app

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	trackv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/track/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// loopNeighbours are the similar articles the loop tests give each article the
// first pages serve (3150..3299): a triple out of 3020..3037, which the
// fixture's ALS recall offers but ranks last, so only a click brings them
// forward.
func loopNeighbours(id int64) []int64 {
	base := 3020 + 3*(id%6)
	return []int64{base, base + 1, base + 2}
}

// envelope is the original's action log line around a track string.
func envelope(param string, channel int32) string {
	return fmt.Sprintf(`{"actionTime": %d, "readTime": "", "channelId": %d, "param": %s}`, time.Now().UnixMilli(), channel, param)
}

// clickOf is the click track string the feed handed out with id.
func clickOf(t *testing.T, tr *userreco.Track, id int64) string {
	t.Helper()
	for _, r := range tr.GetRecommends() {
		if r.GetArticleId() == id {
			return r.GetParams().GetClick()
		}
	}
	t.Fatalf("article %d is not on the page", id)
	return ""
}

// waitApplied waits until the process's nearline has applied lines action
// lines to the hot lists and counters, and engaged of them (clicks, collects,
// shares) to the readers' recall, queues and weights.
func waitApplied(t *testing.T, a *App, lines, engaged int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := map[string]int{}
		mfs, err := a.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "reco_nearline_lines_total" {
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						got[l.GetValue()] += int(m.GetCounter().GetValue())
					}
				}
			}
		}
		if got["counts"] >= lines && got["readers"] >= engaged {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nearline applied %v lines in 20s, want %d and %d engaged", got, lines, engaged)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually waits until cond holds. The loop tests wait on what the stores
// hold, not on this process's metrics: on Kafka, another test's nearline
// process in the same consumer group may apply the lines (to the same stores).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
	}
}

// onlineRecalled reports whether user's online recall of channel offers id.
func onlineRecalled(t *testing.T, a *App, user string, channel int32, id int64) bool {
	t.Helper()
	runs, err := a.stores.Tables.Read(context.Background(), user, channel, []feed.Source{feed.SourceOnline})
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(runs[feed.SourceOnline], func(v storage.Version) bool { return slices.Contains(v.IDs, id) })
}

// hotRank is id's place in channel's hot list, -1 if absent.
func hotRank(t *testing.T, a *App, channel int32, id int64) int {
	t.Helper()
	top, err := a.stores.Sets.Top(context.Background(), storage.HotList, channel, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return slices.IndexFunc(top, func(s storage.Scored) bool { return s.ID == id })
}

// pick returns the first id of ids in 3150..3299 whose neighbours are not
// those of any of not.
func pick(t *testing.T, ids []int64, not ...int64) int64 {
	t.Helper()
	for _, id := range ids {
		if id >= 3150 && id < 3300 && !slices.ContainsFunc(not, func(o int64) bool { return o%6 == id%6 }) {
			return id
		}
	}
	t.Fatalf("no article of 3150..3299 on the page %v", ids)
	return 0
}

// testClicksReachTheNextPage is the loop a reader notices: they click an
// article and their very next page carries articles similar to it, while the
// article climbs its channel's hot list. The clicks come in over HTTP, over
// gRPC and, on Kafka, as a log shipper's line produced to click-trace.
func testClicksReachTheNextPage(t *testing.T, e feedEnv) {
	cfg := e.config(t)
	e.seed(t, cfg)
	var nb []storage.Record
	for id := int64(3150); id < 3300; id++ {
		var s []storage.Scored
		for i, o := range loopNeighbours(id) {
			s = append(s, storage.Scored{ID: o, Score: 0.9 - 0.1*float64(i)})
		}
		nb = append(nb, storage.Neighbours{Article: id, Similar: s})
	}
	seedRecords(t, cfg, nb...)
	a, conn, _ := start(t, cfg, order)
	c := userreco.NewUserRecommendClient(conn)
	ch := int32(fixtureChannel)

	type way struct {
		name   string
		report func(t *testing.T, line string)
	}
	ways := []way{
		{"http", func(t *testing.T, line string) {
			ans, err := call(t, httpClient(t), http.MethodPost, a.HTTPAddr(), "/v1/actions", "application/x-ndjson", line+"\n")
			if err != nil || ans.code != http.StatusOK || !strings.Contains(string(ans.body), `"accepted":1`) {
				t.Fatalf("POST /v1/actions: %d %s, %v", ans.code, ans.body, err)
			}
		}},
		{"grpc", func(t *testing.T, line string) {
			resp, err := trackv1.NewTrackServiceClient(conn).Report(context.Background(), &trackv1.ReportRequest{Lines: []string{line}})
			if err != nil || resp.GetAccepted() != 1 {
				t.Fatalf("Report: %v, %v", resp, err)
			}
		}},
	}
	if e.kafka != "" {
		ways = append(ways, way{"kafka", func(t *testing.T, line string) {
			// A log shipper's producer: no key, any partition, the topic
			// under the suite's namespace.
			cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cfg.Storage.Log.Namespace + cfg.Track.Topic, Value: []byte(line)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}})
	}

	// A cold store can degrade the first refresh to the hot and new lists
	// (a slow first HBase read): this test is about clicks, so it starts
	// from a ranked page.
	page := refresh(t, c, e.user, ch, 10, t0+1000)
	for i := int64(1); i < 5 && !slices.ContainsFunc(served(page), func(id int64) bool { return id >= 3150 }); i++ {
		page = refresh(t, c, e.user, ch, 10, t0+1000+i)
	}
	var clicked []int64
	for i, w := range ways {
		id := pick(t, served(page), clicked...)
		w.report(t, envelope(clickOf(t, page, id), ch))
		// Online recall is written after the queue is boosted.
		eventually(t, fmt.Sprintf("%s: the click on %d in channel %d's hot list and %s's online recall", w.name, id, ch, e.user), func() bool {
			return hotRank(t, a, ch, id) >= 0 && hotRank(t, a, feed.ChannelAll, id) >= 0 && onlineRecalled(t, a, e.user, ch, loopNeighbours(id)[0])
		})
		clicked = append(clicked, id)

		page = refresh(t, c, e.user, ch, 10, t0+int64(2000+1000*i))
		if got, want := served(page)[:3], loopNeighbours(id); !slices.Equal(got, want) {
			t.Errorf("%s: after a click on %d the next page starts %v, want its similar articles %v (page %v)", w.name, id, got, want, served(page))
		}
		for _, hot := range []int32{ch, feed.ChannelAll} {
			if r := hotRank(t, a, hot, id); r < 0 {
				t.Errorf("%s: clicked article %d is not in channel %d's hot list", w.name, id, hot)
			}
		}
	}

	// Clicks of many readers lift an article to the top of the hot list
	// (the fixture's hottest has 109 interactions).
	top := clicked[0]
	var lines []string
	for i := range 120 {
		lines = append(lines, envelope(fmt.Sprintf(`{"action": "click", "userId": "crowd-%d", "articleId": "%d", "algorithmCombine": "Algo-1"}`, i, top), ch))
	}
	before := hotRank(t, a, ch, top)
	if resp, err := trackv1.NewTrackServiceClient(conn).Report(context.Background(), &trackv1.ReportRequest{Lines: lines}); err != nil || resp.GetAccepted() != 120 {
		t.Fatalf("Report of 120 clicks: %v, %v", resp, err)
	}
	eventually(t, fmt.Sprintf("after 120 more clicks article %d tops channel %d's hot list (it was at %d)", top, ch, before), func() bool {
		return hotRank(t, a, ch, top) == 0
	})
	// Another reader's page carries it: the hot list is what recall mixes in.
	other := refresh(t, c, e.algo2, ch, 10, t0+1000)
	if !slices.Contains(served(other), top) {
		t.Errorf("reader %s's first page %v lacks the hottest article %d", e.algo2, served(other), top)
	}
}
