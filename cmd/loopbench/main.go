// Command loopbench measures the loop of DESIGN.md §8 from outside, against a
// running suite:
//
//	freshness  a reader gets a page, clicks an article of it (TrackService/Report,
//	           or a line produced to Kafka's click-trace), then refreshes every
//	           few milliseconds: the time from the click's acceptance to the first
//	           page that leads with articles similar to it; with --redis, also
//	           to the article's score rising in ch:0:hot
//	ingest     action lines produced to click-trace at a fixed rate while the
//	           feed serves, and the rate the nearline group consumes them at
//	           (its committed offsets), with the lag left when production stops
//
//	loopbench --addr 127.0.0.1:9999 --users users.txt [--via kafka --kafka 127.0.0.1:9092] [--redis 127.0.0.1:6379]
//	loopbench --ingest-rate 20000 --kafka 127.0.0.1:9092 --users users.txt --articles articles.txt
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/toutiao-reco/toutiao-reco/internal/benchkit"
	trackv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/track/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loopbench:", err)
		os.Exit(1)
	}
}

// The topic and groups of the action log (track.topic, nearline.group and
// its readers' group).
var (
	topic  = "click-trace"
	groups = []string{"nearline", "nearline-readers"}
)

type options struct {
	addr, via, kafka, redisAddr string
	users, articles             []string
	channel                     int32
	samples                     int
	poll, patience              time.Duration
	ingestRate                  int
	ingestDuration              time.Duration
}

func run() error {
	var o options
	usersFile := flag.String("users", "", "file of user ids with recall, one per line (fresh readers are taken from it in order)")
	articlesFile := flag.String("articles", "", "file of article ids (N123 or 123), for the ingest's lines")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:9999", "routing address")
	flag.StringVar(&o.via, "via", "grpc", "how clicks come in: grpc (TrackService/Report) or kafka (produced to click-trace)")
	flag.StringVar(&o.kafka, "kafka", "", "Kafka bootstrap broker, for --via kafka and --ingest-rate")
	flag.StringVar(&o.redisAddr, "redis", "", "Redis address: also time the hot list (ch:0:hot)")
	channel := flag.Int("channel", 0, "channel of the refreshes")
	flag.IntVar(&o.samples, "samples", 50, "freshness samples (0: none)")
	flag.DurationVar(&o.poll, "poll", 10*time.Millisecond, "time between a sample's refreshes")
	flag.DurationVar(&o.patience, "patience", 10*time.Second, "how long a sample waits for the change")
	flag.IntVar(&o.ingestRate, "ingest-rate", 0, "action lines per second to produce to Kafka (0: no ingest run)")
	flag.DurationVar(&o.ingestDuration, "ingest-duration", 20*time.Second, "length of the ingest run")
	flag.StringVar(&topic, "topic", topic, "the action log's topic (track.topic)")
	group := flag.String("group", groups[0], "nearline's consumer group (nearline.group); its readers' is this + -readers")
	flag.Parse()
	groups = []string{*group, *group + "-readers"}
	o.channel = int32(*channel)
	var err error
	if o.users, err = benchkit.Lines(*usersFile); err != nil {
		return err
	}
	if o.samples > 0 {
		if err := freshness(o); err != nil {
			return err
		}
	}
	if o.ingestRate > 0 {
		if o.kafka == "" {
			return errors.New("--ingest-rate needs --kafka")
		}
		if o.articles, err = benchkit.Lines(*articlesFile); err != nil {
			return err
		}
		return ingest(o)
	}
	return nil
}

// freshness runs the samples one after the other and prints the quantiles.
func freshness(o options) error {
	conn, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := benchkit.WaitServing(conn, time.Minute); err != nil {
		return err
	}
	feed := userreco.NewUserRecommendClient(conn)
	report := trackv1.NewTrackServiceClient(conn)
	var produce func(ctx context.Context, line string) error
	switch o.via {
	case "grpc":
		produce = func(ctx context.Context, line string) error {
			resp, err := report.Report(ctx, &trackv1.ReportRequest{Lines: []string{line}})
			if err == nil && resp.GetAccepted() != 1 {
				err = fmt.Errorf("line rejected: %v", resp.GetRejected())
			}
			return err
		}
	case "kafka":
		cl, err := kgo.NewClient(kgo.SeedBrokers(o.kafka), kgo.ProducerLinger(0))
		if err != nil {
			return err
		}
		defer cl.Close()
		produce = func(ctx context.Context, line string) error {
			return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(line)}).FirstErr()
		}
	default:
		return fmt.Errorf("--via %q: want grpc or kafka", o.via)
	}
	var rdb *redis.Client
	if o.redisAddr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: o.redisAddr})
		defer func() { _ = rdb.Close() }() // on the way out, after the samples: nothing left to lose
	}

	clock := time.Now().UnixMilli()
	call := func(user string) ([]int64, *userreco.Track, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		clock = max(clock+1, time.Now().UnixMilli())
		tr, err := feed.UserRecommend(ctx, &userreco.User{UserId: user, ChannelId: o.channel, ArticleNum: 10, TimeStamp: clock})
		var ids []int64
		for _, r := range tr.GetRecommends() {
			ids = append(ids, r.GetArticleId())
		}
		return ids, tr, err
	}
	var pageLat, hotLat []time.Duration
	misses, next := 0, 0
	for len(pageLat)+misses < o.samples {
		if next >= len(o.users) {
			return fmt.Errorf("out of fresh users after %d samples", len(pageLat)+misses)
		}
		user := o.users[next]
		next++
		ids, tr, err := call(user)
		if err != nil {
			return fmt.Errorf("first refresh of %s: %w", user, err)
		}
		// The clicked article: one with similar articles the page lacks.
		var clicked int64
		var similar []int64
		for i, id := range ids {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			sim, err := feed.ArticleRecommend(ctx, &userreco.Article{ArticleId: id, ArticleNum: 10})
			cancel()
			if err == nil && len(sim.GetArticleId()) >= 3 {
				clicked, similar = id, sim.GetArticleId()
				line := fmt.Sprintf(`{"actionTime": %d, "readTime": "", "channelId": %d, "param": %s}`, time.Now().UnixMilli(), o.channel, tr.GetRecommends()[i].GetParams().GetClick())
				var before float64
				if rdb != nil {
					before, _ = rdb.ZScore(context.Background(), "ch:0:hot", strconv.FormatInt(id, 10)).Result()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := produce(ctx, line)
				cancel()
				if err != nil {
					return fmt.Errorf("report a click: %w", err)
				}
				accepted := time.Now()
				page, hot := time.Duration(-1), time.Duration(-1)
				if rdb == nil {
					hot = 0 // not timed
				}
				for (page < 0 || hot < 0) && time.Since(accepted) < o.patience {
					time.Sleep(o.poll)
					if hot < 0 {
						if s, err := rdb.ZScore(context.Background(), "ch:0:hot", strconv.FormatInt(id, 10)).Result(); err == nil && s > before {
							hot = time.Since(accepted)
						}
					}
					if page < 0 {
						got, _, err := call(user)
						if err == nil && len(got) > 0 && slices.Contains(similar, got[0]) {
							page = time.Since(accepted)
						}
					}
				}
				if page < 0 {
					misses++
				} else {
					pageLat = append(pageLat, page)
				}
				if rdb != nil && hot >= 0 {
					hotLat = append(hotLat, hot)
				}
				break
			}
		}
		if clicked == 0 {
			misses++
		}
	}
	fmt.Printf("freshness via %s, %d samples (%d without a changed page within %s)\n", o.via, o.samples, misses, o.patience)
	printQuantiles("changed page", pageLat)
	if rdb != nil {
		printQuantiles("hot list", hotLat)
	}
	return nil
}

func printQuantiles(what string, lat []time.Duration) {
	if len(lat) == 0 {
		fmt.Printf("  %-13s no samples\n", what)
		return
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	fmt.Printf("  %-13s p50 %7s  p90 %7s  p99 %7s  max %7s  (n=%d)\n", what, q(0.5), q(0.9), q(0.99), lat[len(lat)-1].Round(time.Millisecond), len(lat))
}

// ingest produces a realistic mix at the rate: per simulated page an exposure
// of 10 articles, a click on one of them with probability 1/2 and a read with
// 1/4, keyed by reader as TrackService does.
func ingest(o options) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.kafka), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	// consumed is, per group, the lines it committed and its lag.
	consumed := func() (done, lag map[string]int64, err error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		lags, err := adm.Lag(ctx, groups...)
		if err != nil {
			return nil, nil, err
		}
		done, lag = map[string]int64{}, map[string]int64{}
		for g, l := range lags {
			for _, p := range l.Lag[topic] {
				done[g] += max(p.Commit.At, 0)
				lag[g] += max(p.Lag, 0)
			}
		}
		return done, lag, nil
	}
	// The topic may be new (a bench run of its own): created as nearline
	// would, with storage.log.kafka.partitions' default.
	if resp, err := adm.CreateTopic(ctx, 8, -1, nil, topic); err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	start0, _, err := consumed()
	if err != nil {
		return fmt.Errorf("read the nearline groups' offsets: %w", err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var produced, failed atomic.Int64
	strategy := []string{"Algo-1", "Algo-2"}
	page := func(now time.Time) []string {
		u := o.users[rng.IntN(len(o.users))]
		ids := make([]string, 10)
		for i := range ids {
			ids[i] = strings.TrimPrefix(o.articles[rng.IntN(len(o.articles))], "N")
		}
		s := strategy[rng.IntN(2)]
		at := now.UnixMilli()
		out := []string{fmt.Sprintf(`{"actionTime": %d, "readTime": "", "channelId": %d, "param": {"action": "exposure", "userId": %q, "articleId": "[%s]", "algorithmCombine": %q}}`, at, o.channel, u, strings.Join(ids, ", "), s)}
		if rng.IntN(2) == 0 {
			out = append(out, fmt.Sprintf(`{"actionTime": %d, "readTime": "", "channelId": %d, "param": {"action": "click", "userId": %q, "articleId": %q, "algorithmCombine": %q}}`, at, o.channel, u, ids[rng.IntN(10)], s))
		}
		if rng.IntN(4) == 0 {
			out = append(out, fmt.Sprintf(`{"actionTime": %d, "readTime": "%d", "channelId": %d, "param": {"action": "read", "userId": %q, "articleId": %q, "algorithmCombine": %q}}`, at, 1000+rng.IntN(60000), o.channel, u, ids[rng.IntN(10)], s))
		}
		return out
	}
	fmt.Printf("ingest: %d lines/s to %s for %s\n", o.ingestRate, topic, o.ingestDuration)
	begin := time.Now()
	tick := 10 * time.Millisecond
	var due int64
	for now := begin; now.Sub(begin) < o.ingestDuration; now = time.Now() {
		due = int64(now.Sub(begin).Seconds() * float64(o.ingestRate))
		for produced.Load()+failed.Load() < due {
			for _, l := range page(now) {
				k := l[strings.Index(l, `"userId": "`)+11:]
				k = k[:strings.IndexByte(k, '"')]
				produced.Add(1)
				cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(k), Value: []byte(l)}, func(_ *kgo.Record, err error) {
					if err != nil {
						produced.Add(-1)
						failed.Add(1)
					}
				})
			}
		}
		time.Sleep(tick)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	elapsed := time.Since(begin)
	done, lag, err := consumed()
	if err != nil {
		return err
	}
	fmt.Printf("  produced %d lines in %s: %.0f lines/s (%d failed)\n", produced.Load(), elapsed.Round(time.Millisecond), float64(produced.Load())/elapsed.Seconds(), failed.Load())
	for _, g := range groups {
		fmt.Printf("  group %-16s consumed %d lines meanwhile: %.0f lines/s; lag at the end %d lines\n", g, done[g]-start0[g], float64(done[g]-start0[g])/elapsed.Seconds(), lag[g])
	}
	drainStart := time.Now()
	for _, g := range groups {
		for lag[g] > 0 && time.Since(drainStart) < 2*time.Minute {
			time.Sleep(250 * time.Millisecond)
			if _, lag, err = consumed(); err != nil {
				return err
			}
		}
		fmt.Printf("  group %-16s caught up %s after production stopped (%d left)\n", g, time.Since(drainStart).Round(10*time.Millisecond), lag[g])
	}
	return nil
}
