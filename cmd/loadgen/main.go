// Command loadgen drives a running routing service with the four request kinds
// the web backend sends, and prints p50, p99, errors and throughput per kind:
//
//	cache-miss  a reader's first refresh: recall + sort + cache store (also warms the caches)
//	cache-hit   further refreshes of warmed readers, served from their caches
//	history     pages back to each reader's first refresh
//	similar     article_recommend
//	health      grpc.health.v1.Health/Check (closed loop only: the server's bare floor)
//
// Three ways to drive them:
//
//	fixed rates   (the default) each kind at --miss-rate, --hit-rate, … for --duration, open loop
//	ladders       --miss-ladder 50:800 --hit-ladder 200:6400 …: open-loop steps at rising
//	              rates, each for --step-duration, up to the first step over the knee's
//	              bounds (p99 <= 50 ms, < 0.1% errors); prints every step and the knee
//	closed loop   --closed 16 --closed-kinds health,cache-hit: that many calls in flight
//	              for --closed-duration; after the ladders when both are given
//
//	loadgen --addr 127.0.0.1:9999 --users users.txt --articles articles.txt [--pids routing=PID,…] [--json out.json --section split]
//	loadgen report [--baseline bench/baseline.json] [--out run.json] RESULT.json…
//
// users.txt and articles.txt hold one id per line (articles as integers or
// N123). With --pids, every step also reads each process's CPU time and RSS
// (/proc), and prints CPU ms per request per process and their sum.
//
// A cache hit needs a warmed reader, and each refresh drains n ids of its
// cache: readers warmed by the cache-miss steps serve --hits-per-reader hits
// each, and before a cache-hit step loadgen warms as many more as the step
// needs (unmeasured, --warm-concurrency at a time), in the users' other
// channels once their own is spent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/toutiao-reco/toutiao-reco/internal/benchkit"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "report" {
		err = report(os.Args[2:])
	} else {
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// kinds are the request kinds in the order loadgen drives them: the misses
// warm the readers the hits and history pages need.
var kinds = []string{benchkit.KindMiss, benchkit.KindHit, benchkit.KindHistory, benchkit.KindSimilar}

type options struct {
	rates   map[string]*int
	ladders map[string]*string
	factor  float64
	ladder  benchkit.Ladder
	stepFor time.Duration
	missFor time.Duration

	duration       time.Duration
	closed         int
	closedKinds    string
	closedDuration time.Duration
	warm           int
	warmConc       int
	jsonPath       string
	section        string
}

func run() error {
	var o options
	addr := flag.String("addr", "127.0.0.1:9999", "routing address")
	usersFile := flag.String("users", "", "file of user ids, one per line")
	articlesFile := flag.String("articles", "", "file of article ids, one per line")
	channel := flag.Int("channel", 0, "channel of the cache misses: 0, the all-channels feed, is where every user has recall; -1 spreads them over 1..24")
	n := flag.Int("n", 10, "article_num of each refresh")
	o.rates = map[string]*int{
		benchkit.KindMiss:    flag.Int("miss-rate", 100, "fixed-rate mode: cache-miss refreshes per second (0 leaves them out)"),
		benchkit.KindHit:     flag.Int("hit-rate", 1000, "fixed-rate mode: cache-hit refreshes per second"),
		benchkit.KindHistory: flag.Int("history-rate", 500, "fixed-rate mode: history pages per second"),
		benchkit.KindSimilar: flag.Int("similar-rate", 500, "fixed-rate mode: article_recommend calls per second"),
	}
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "fixed-rate mode: length of each kind's run")
	o.ladders = map[string]*string{
		benchkit.KindMiss:    flag.String("miss-ladder", "", "cache-miss ladder: START:MAX (times --factor) or RATE,RATE,…"),
		benchkit.KindHit:     flag.String("hit-ladder", "", "cache-hit ladder"),
		benchkit.KindHistory: flag.String("history-ladder", "", "history-page ladder"),
		benchkit.KindSimilar: flag.String("similar-ladder", "", "article_recommend ladder"),
	}
	flag.Float64Var(&o.factor, "factor", 2, "ratio between a START:MAX ladder's steps")
	flag.DurationVar(&o.stepFor, "step-duration", 10*time.Second, "length of each ladder step")
	flag.DurationVar(&o.missFor, "miss-step-duration", 0, "length of each cache-miss step, which spends a fresh user per call (0: --step-duration)")
	flag.DurationVar(&o.ladder.Pause, "step-pause", time.Second, "idle time before each step")
	flag.BoolVar(&o.ladder.Refine, "refine", true, "after the first step over the knee's bounds, try the rate halfway (geometrically) back")
	flag.IntVar(&o.closed, "closed", 0, "closed loop: calls in flight (0: none)")
	flag.StringVar(&o.closedKinds, "closed-kinds", "health,cache-hit", "kinds of the closed loop, in order")
	flag.DurationVar(&o.closedDuration, "closed-duration", 10*time.Second, "length of each closed-loop run")
	flag.IntVar(&o.warm, "warm", 1000, "readers warmed at most for a closed-loop cache-hit run (fewer when the open-loop steps showed it needs fewer; it ends early when their hits run out)")
	flag.IntVar(&o.warmConc, "warm-concurrency", 8, "refreshes in flight while warming readers")
	perReader := flag.Int("hits-per-reader", 8, "cache hits taken from each warmed reader: (cache.tier1_size - n) / n, less one for ids the claims refuse")
	timeout := flag.Duration("timeout", 2*time.Second, "deadline of each call")
	pids := flag.String("pids", "", "processes under test, name=pid,…: CPU per request and RSS per step")
	flag.StringVar(&o.jsonPath, "json", "", "write the steps and knees as JSON to this file")
	flag.StringVar(&o.section, "section", benchkit.SectionSplit, "section of the JSON result (split, all-in-one)")
	flag.Parse()
	if *perReader < 1 || o.warmConc < 1 {
		return errors.New("--hits-per-reader and --warm-concurrency must be at least 1")
	}

	users, err := benchkit.Lines(*usersFile)
	if err != nil {
		return err
	}
	articles, err := articleIDs(*articlesFile)
	if err != nil {
		return err
	}
	procs, err := benchkit.ParseProcs(*pids)
	if err != nil {
		return err
	}
	conn, err := benchkit.Dial(*addr)
	if err != nil {
		return err
	}
	defer conn.Close()

	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
	primary := func(int) int32 { return int32(*channel) }
	if *channel < 0 {
		primary = func(i int) int32 { return int32(1 + i%24) }
	}
	f := &feed{
		client: userreco.NewUserRecommendClient(conn), health: healthpb.NewHealthClient(conn),
		timeout: *timeout, n: int32(*n), articles: articles, rng: rng,
		readers: newReaders(users, primary, *perReader), meter: benchkit.NewMeter(procs),
	}
	// Every refresh gets a fresh, increasing stamp, so none is mistaken for a
	// history page; each reader's first stamp is kept for history pages.
	f.clock.Store(time.Now().UnixMilli())

	res := benchkit.Result{Section: o.section, Knees: map[string]benchkit.Knee{}}
	benchkit.PrintHeader(os.Stdout)
	laddered := false
	for _, k := range kinds {
		laddered = laddered || *o.ladders[k] != ""
	}
	switch {
	case laddered:
		err = f.ladders(o, &res)
	case o.closed == 0:
		err = f.fixed(o, &res)
	}
	if err == nil && o.closed > 0 {
		err = f.closedLoops(o, &res)
	}
	return errors.Join(err, res.WriteJSON(o.jsonPath))
}

func articleIDs(path string) ([]int64, error) {
	lines, err := benchkit.Lines(path)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(lines))
	for _, a := range lines {
		id, err := strconv.ParseInt(strings.TrimPrefix(a, "N"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("article id %q: %w", a, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// feed is the routing service as loadgen calls it.
type feed struct {
	client   userreco.UserRecommendClient
	health   healthpb.HealthClient
	timeout  time.Duration
	n        int32
	articles []int64
	readers  *readers
	meter    *benchkit.Meter
	clock    atomic.Int64

	mu  sync.Mutex
	rng *rand.Rand
	// topHit is the highest cache-hit rate an open-loop step achieved: what
	// the closed loop's warming is sized by.
	topHit float64
}

func (f *feed) refresh(ctx context.Context, user string, channel int32, ts int64) (*userreco.Track, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return f.client.UserRecommend(ctx, &userreco.User{UserId: user, ChannelId: channel, ArticleNum: f.n, TimeStamp: ts})
}

// first refreshes a fresh reader (of round 0 only, unless anyRound) and
// puts it into the rotation of warmed readers.
func (f *feed) first(ctx context.Context, anyRound bool) error {
	user, ch, ok := f.readers.fresh(anyRound)
	if !ok {
		return benchkit.ErrExhausted
	}
	ts := f.clock.Add(1)
	if _, err := f.refresh(ctx, user, ch, ts); err != nil {
		return err
	}
	f.readers.warmed(user, ch, ts)
	return nil
}

// call returns the call of one request of kind.
func (f *feed) call(kind string) benchkit.Call {
	switch kind {
	case benchkit.KindMiss:
		return func(ctx context.Context) error {
			err := f.first(ctx, false)
			if errors.Is(err, benchkit.ErrExhausted) {
				return errors.New("out of fresh users: pass more, or lower the cache-miss rate or duration")
			}
			return err
		}
	case benchkit.KindHit:
		return func(ctx context.Context) error {
			r, ok := f.readers.take()
			if !ok {
				return benchkit.ErrExhausted
			}
			_, err := f.refresh(ctx, r.user, r.channel, f.clock.Add(1))
			return err
		}
	case benchkit.KindHistory:
		return func(ctx context.Context) error {
			f.mu.Lock()
			r, ok := f.readers.anyServed(f.rng)
			f.mu.Unlock()
			if !ok {
				return errors.New("no reader was refreshed: nothing to page back to")
			}
			tr, err := f.refresh(ctx, r.user, r.channel, r.first)
			if err == nil && tr.GetExposure() != "" {
				return fmt.Errorf("history page for %s came back as a refresh", r.user)
			}
			return err
		}
	case benchkit.KindSimilar:
		return func(ctx context.Context) error {
			f.mu.Lock()
			a := f.articles[f.rng.IntN(len(f.articles))]
			f.mu.Unlock()
			ctx, cancel := context.WithTimeout(ctx, f.timeout)
			defer cancel()
			_, err := f.client.ArticleRecommend(ctx, &userreco.Article{ArticleId: a, ArticleNum: f.n})
			return err
		}
	case benchkit.KindHealth:
		return func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, f.timeout)
			defer cancel()
			_, err := f.health.Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}
	}
	return nil
}

// open runs kind at rate for d, measuring the processes meanwhile.
func (f *feed) open(kind string, rate int, d time.Duration) benchkit.Step {
	s := f.meter.Open(kind, rate, d, f.call(kind))
	if kind == benchkit.KindHit {
		f.topHit = max(f.topHit, s.Achieved)
	}
	return s
}

// warm warms fresh readers until the rotation holds hits cache hits.
func (f *feed) warm(hits, concurrency int) error {
	if f.readers.hitsLeft() >= hits {
		return nil
	}
	s := benchkit.Closed(concurrency, 24*time.Hour, func(ctx context.Context) error {
		if f.readers.hitsLeft() >= hits {
			return benchkit.ErrExhausted
		}
		return f.first(ctx, true)
	})
	fmt.Printf("    warmed %d readers in %.1fs (%d failed)\n", len(s.Latencies), s.Elapsed.Seconds(), s.Errors)
	if left := f.readers.hitsLeft(); left < hits {
		return fmt.Errorf("out of fresh readers: %d cache hits warmed, %d needed (pass more users, or shorten the steps)", left, hits)
	}
	return nil
}

// prepare readies a step of kind at rate for d: a cache-miss step needs its
// fresh readers, a cache-hit step enough warmed ones.
func (f *feed) prepare(kind string, rate int, d time.Duration, warmConc int) error {
	calls := int(math.Ceil(float64(rate) * d.Seconds()))
	switch kind {
	case benchkit.KindMiss:
		if left := f.readers.freshLeft(); left < calls {
			return fmt.Errorf("cache-miss at %d/s for %s needs %d fresh users, %d left", rate, d, calls, left)
		}
	case benchkit.KindHit:
		// A fifth of a second's readers more, so that a reader comes round
		// again only well after its last refresh answered.
		return f.warm(calls+int(math.Ceil(0.2*float64(rate)))*f.readers.perReader, warmConc)
	}
	return nil
}

// fixed runs each kind at its fixed rate.
func (f *feed) fixed(o options, res *benchkit.Result) error {
	for _, k := range kinds {
		rate := *o.rates[k]
		if rate <= 0 {
			continue // a rate of 0 leaves the kind out
		}
		if err := f.prepare(k, rate, o.duration, o.warmConc); err != nil {
			return err
		}
		s := f.open(k, rate, o.duration)
		benchkit.PrintStep(os.Stdout, s)
		res.Steps = append(res.Steps, s)
		if k == benchkit.KindMiss && s.Requests == s.Errors {
			return errors.New("no refresh succeeded: nothing to measure cache hits and history with")
		}
	}
	return nil
}

// ladders runs each kind's ladder and prints its knee; the cache-hit ladder
// also gets a step at half its knee, for the comparison with the floor chain.
func (f *feed) ladders(o options, res *benchkit.Result) error {
	for _, k := range kinds {
		rates, err := benchkit.ParseLadder(*o.ladders[k], o.factor)
		if err != nil {
			return fmt.Errorf("--%s-ladder: %w", strings.TrimPrefix(k, "cache-"), err)
		}
		if len(rates) == 0 {
			continue
		}
		l := o.ladder
		l.Rates = rates
		d := o.stepFor
		if k == benchkit.KindMiss && o.missFor > 0 {
			d = o.missFor
		}
		steps, knee := l.Run(os.Stdout, func(rate int) error { return f.prepare(k, rate, d, o.warmConc) },
			func(rate int) benchkit.Step { return f.open(k, rate, d) })
		res.Steps = append(res.Steps, steps...)
		if k == benchkit.KindHit && knee.Rate > 0 {
			if _, ok := benchkit.StepAt(steps, k, knee.Rate/2); !ok {
				half := int(math.Round(knee.Rate / 2))
				fmt.Printf("    cache-hit at half the knee, %d/s:\n", half)
				if err := f.prepare(k, half, o.stepFor, o.warmConc); err != nil {
					fmt.Printf("    not run: %v\n", err)
				} else {
					time.Sleep(o.ladder.Pause)
					s := f.open(k, half, o.stepFor)
					benchkit.PrintStep(os.Stdout, s)
					res.Steps = append(res.Steps, s)
				}
			}
		}
		res.Knees[k] = knee
		benchkit.PrintKnee(os.Stdout, k, knee)
	}
	return nil
}

// closedLoops runs each of --closed-kinds with --closed calls in flight.
func (f *feed) closedLoops(o options, res *benchkit.Result) error {
	for _, k := range strings.Split(o.closedKinds, ",") {
		k = strings.TrimSpace(k)
		call := f.call(k)
		if call == nil {
			return fmt.Errorf("--closed-kinds: unknown kind %q (want %s or %s)", k, strings.Join(kinds, ", "), benchkit.KindHealth)
		}
		if k == benchkit.KindHit {
			// As many hits as the loop may take: three times the best the
			// open loop achieved (when it ran), at most --warm readers' worth.
			hits := o.warm * f.readers.perReader
			if f.topHit > 0 {
				hits = min(hits, max(2000, int(3*f.topHit*o.closedDuration.Seconds())))
			}
			if err := f.warm(hits, o.warmConc); err != nil {
				return err
			}
		}
		time.Sleep(o.ladder.Pause)
		s := f.meter.Closed(k, o.closed, o.closedDuration, call)
		benchkit.PrintStep(os.Stdout, s)
		res.Steps = append(res.Steps, s)
	}
	return nil
}
