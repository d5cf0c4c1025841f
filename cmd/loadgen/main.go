// Command loadgen drives a running routing service with the four request kinds
// the web backend sends, each at a fixed rate (open loop: a slow server does not
// slow the arrivals down), and prints p50, p99 and throughput per kind:
//
//	cache-miss  a user's first refresh: recall + sort + cache store (also warms the caches)
//	cache-hit   further refreshes of those users, served from their caches
//	history     pages back to each user's first refresh
//	similar     article_recommend
//
//	loadgen --addr 127.0.0.1:9999 --users users.txt --articles articles.txt
//
// users.txt and articles.txt hold one id per line (articles as integers).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/toutiao-reco/toutiao-reco/internal/benchkit"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type scenario struct {
	name     string
	rate     int
	duration time.Duration
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:9999", "routing address")
	usersFile := flag.String("users", "", "file of user ids, one per line")
	articlesFile := flag.String("articles", "", "file of article ids, one per line")
	channel := flag.Int("channel", 0, "channel of the refreshes: 0, the all-channels feed, is where every user has recall; -1 spreads them over 1..24")
	n := flag.Int("n", 10, "article_num of each refresh")
	missRate := flag.Int("miss-rate", 100, "cache-miss refreshes per second")
	hitRate := flag.Int("hit-rate", 1000, "cache-hit refreshes per second")
	historyRate := flag.Int("history-rate", 500, "history pages per second")
	similarRate := flag.Int("similar-rate", 500, "article_recommend calls per second")
	duration := flag.Duration("duration", 15*time.Second, "length of each scenario")
	timeout := flag.Duration("timeout", 2*time.Second, "deadline of each call")
	flag.Parse()

	users, err := benchkit.Lines(*usersFile)
	if err != nil {
		return err
	}
	articleLines, err := benchkit.Lines(*articlesFile)
	if err != nil {
		return err
	}
	articles := make([]int64, 0, len(articleLines))
	for _, a := range articleLines {
		id, err := strconv.ParseInt(strings.TrimPrefix(a, "N"), 10, 64)
		if err != nil {
			return fmt.Errorf("article id %q: %w", a, err)
		}
		articles = append(articles, id)
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := userreco.NewUserRecommendClient(conn)
	if err := benchkit.WaitServing(conn, time.Minute); err != nil {
		return err
	}

	// Every refresh gets a fresh, increasing stamp, so none is mistaken for a
	// history page; each user's first stamp is kept for the history scenario.
	var clock atomic.Int64
	clock.Store(time.Now().UnixMilli())
	type warmed struct {
		user    string
		channel int32
		first   int64
	}
	var (
		mu   sync.Mutex
		warm []warmed
	)
	rng := rand.New(rand.NewPCG(1, 2))
	rand.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
	var nextUser atomic.Int64
	call := func(ctx context.Context, req *userreco.User) (*userreco.Track, error) {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		return client.UserRecommend(ctx, req)
	}

	fmt.Printf("%-11s %8s %10s %9s %9s %8s\n", "scenario", "target", "achieved", "p50", "p99", "errors")
	report := func(s scenario, lat []time.Duration, errs int64, elapsed time.Duration) {
		slices.Sort(lat)
		pct := func(p float64) time.Duration {
			if len(lat) == 0 {
				return 0
			}
			return lat[min(len(lat)-1, int(p*float64(len(lat))))]
		}
		fmt.Printf("%-11s %6d/s %8.0f/s %9s %9s %8d\n", s.name, s.rate, float64(len(lat))/elapsed.Seconds(),
			pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), errs)
	}

	scenarios := []struct {
		scenario
		do func(ctx context.Context) error
	}{
		{scenario{"cache-miss", *missRate, *duration}, func(ctx context.Context) error {
			i := nextUser.Add(1) - 1
			if int(i) >= len(users) {
				return fmt.Errorf("out of fresh users: pass more, or lower --miss-rate or --duration")
			}
			ch := int32(*channel)
			if ch < 0 {
				ch = int32(1 + int(i)%24)
			}
			ts := clock.Add(1)
			_, err := call(ctx, &userreco.User{UserId: users[i], ChannelId: ch, ArticleNum: int32(*n), TimeStamp: ts})
			if err == nil {
				mu.Lock()
				warm = append(warm, warmed{users[i], ch, ts})
				mu.Unlock()
			}
			return err
		}},
		{scenario{"cache-hit", *hitRate, *duration}, func(ctx context.Context) error {
			mu.Lock()
			w := warm[rng.IntN(len(warm))]
			mu.Unlock()
			_, err := call(ctx, &userreco.User{UserId: w.user, ChannelId: w.channel, ArticleNum: int32(*n), TimeStamp: clock.Add(1)})
			return err
		}},
		{scenario{"history", *historyRate, *duration}, func(ctx context.Context) error {
			mu.Lock()
			w := warm[rng.IntN(len(warm))]
			mu.Unlock()
			tr, err := call(ctx, &userreco.User{UserId: w.user, ChannelId: w.channel, ArticleNum: int32(*n), TimeStamp: w.first})
			if err == nil && tr.GetExposure() != "" {
				return fmt.Errorf("history page for %s came back as a refresh", w.user)
			}
			return err
		}},
		{scenario{"similar", *similarRate, *duration}, func(ctx context.Context) error {
			mu.Lock()
			a := articles[rng.IntN(len(articles))]
			mu.Unlock()
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			_, err := client.ArticleRecommend(ctx, &userreco.Article{ArticleId: a, ArticleNum: int32(*n)})
			return err
		}},
	}
	for _, s := range scenarios {
		if s.rate <= 0 {
			continue // a rate of 0 leaves the scenario out
		}
		lat, errs, elapsed, firstErr := drive(s.rate, s.duration, s.do)
		report(s.scenario, lat, errs, elapsed)
		if firstErr != nil {
			fmt.Printf("  first error: %v\n", firstErr)
		}
		mu.Lock()
		empty := len(warm) == 0
		mu.Unlock()
		if empty {
			return fmt.Errorf("no refresh succeeded: nothing to measure cache hits and history with")
		}
	}
	return nil
}

// drive calls do at rate per second for d, each call in its own goroutine, and
// returns the latencies of the calls that succeeded.
func drive(rate int, d time.Duration, do func(ctx context.Context) error) ([]time.Duration, int64, time.Duration, error) {
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, int(float64(rate)*d.Seconds()))
		errs     atomic.Int64
		firstErr error
		wg       sync.WaitGroup
	)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			if err := do(context.Background()); err != nil {
				errs.Add(1)
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			el := time.Since(t)
			mu.Lock()
			lat = append(lat, el)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat, errs.Load(), time.Since(start), firstErr
}
