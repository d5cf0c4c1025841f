package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/abtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// inspection is what `reco admin inspect` shows of one reader's feed of one
// channel, as --json prints it.
type inspection struct {
	User    string `json:"user"`
	Channel int32  `json:"channel"`
	// Anonymous readers share their id: routing serves them hot and new
	// articles and keeps no history for them.
	Anonymous bool `json:"anonymous"`
	// Strategy is the one routing assigns the reader, and Layers where the
	// A/B plan puts them.
	Strategy inspectedStrategy `json:"strategy"`
	Layers   []layerPlacement  `json:"layers"`
	// History is the reader's newest refreshes of the channel, newest first.
	History []servedRefresh `json:"history"`
	// Tier1 and Tier2 are their cache for the channel: tier 1 in pop order,
	// tier 2 (wait_recommend) head first.
	Tier1 cacheTier `json:"tier1"`
	Tier2 cacheTier `json:"tier2"`
	// Seen are the seen sets a claim in the channel checks: the channel's,
	// then channel 0's.
	Seen []seenSet `json:"seen"`
	// Weights are the reader's interest weights the ranking of the channel
	// reads: the channel's, or every channel's for channel 0.
	Weights []channelWeights `json:"weights"`
}

// inspectedStrategy is a feed.Strategy as JSON.
type inspectedStrategy struct {
	Name     string        `json:"name"`
	Recall   []feed.Source `json:"recall"`
	Sort     feed.Model    `json:"sort"`
	NewRatio float64       `json:"new_ratio"`
	HotRatio float64       `json:"hot_ratio"`
}

// layerPlacement is the reader's bucket in one A/B layer and the experiment that
// owns it ("" when none does).
type layerPlacement struct {
	Layer      string `json:"layer"`
	Bucket     int    `json:"bucket"`
	Buckets    int    `json:"buckets"`
	Experiment string `json:"experiment"`
}

// servedRefresh is one refresh in history: its request time_stamp and the ids it
// served, in the order the API returned them.
type servedRefresh struct {
	TimeStamp int64   `json:"time_stamp"`
	IDs       []int64 `json:"ids"`
}

// cacheTier is what a tier of the cache holds: Count ids, the first of them
// listed, and for tier 1 the time it has left before it expires.
type cacheTier struct {
	Count int     `json:"count"`
	IDs   []int64 `json:"ids"`
	TTLMs int64   `json:"ttl_ms,omitempty"`
}

// seenSet is a reader's seen set of one channel: whether it is seeded from
// history, Count ids, the lowest of them listed, and its time left.
type seenSet struct {
	Channel int32   `json:"channel"`
	Seeded  bool    `json:"seeded"`
	Count   int     `json:"count"`
	IDs     []int64 `json:"ids"`
	TTLMs   int64   `json:"ttl_ms"`
}

// channelWeights are the reader's interest weights in one channel.
type channelWeights struct {
	Channel int32     `json:"channel"`
	Weights []float64 `json:"weights"`
}

// adminInspect is `reco admin inspect`: an operator's read-only look inside
// one reader's feed, against the configured store. Nothing it reads is
// popped, claimed, seeded or re-expired.
func adminInspect(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin inspect", flag.ContinueOnError)
	user := fs.String("user", "", "the reader's user_id (required)")
	channel := fs.Int("channel", int(feed.ChannelAll), fmt.Sprintf("the channel, 0..%d (0: the all-channels feed)", feed.NumChannels-1))
	refreshes := fs.Int("refreshes", 3, "how many of the newest refreshes of the channel to show")
	ids := fs.Int("ids", 50, "how many ids of each cache tier and seen set to list (their counts are whole); 0 lists all")
	strategies := fs.String("strategies", "", "A/B plan to place the reader in; default the config's routing.strategies_file (the original's plan if that is empty)")
	asJSON := fs.Bool("json", false, "print the inspection as JSON")
	cfg, log, err := load(fs, args, stdout)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	switch {
	case *user == "":
		return errors.New("admin inspect: --user is required")
	case !feed.ValidChannel(int32(*channel)):
		return fmt.Errorf("admin inspect: --channel must be 0..%d, got %d", feed.NumChannels-1, *channel)
	case *refreshes < 1:
		return fmt.Errorf("admin inspect: --refreshes must be positive, got %d", *refreshes)
	case *ids < 0:
		return fmt.Errorf("admin inspect: --ids must be 0 (all) or positive, got %d", *ids)
	}
	plan, err := abtest.Load(cmp.Or(*strategies, cfg.Routing.StrategiesFile))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.TablesRole|app.SetsRole, log, nil)
	if err != nil {
		return err
	}
	defer func() { _ = cleanup() }()
	peeks, err := storage.NewInspector(st.Tables, st.Sets)
	if err != nil {
		return err
	}
	in := inspection{User: *user, Channel: int32(*channel), Anonymous: slices.Contains(cfg.Routing.AnonymousUsers, *user)}
	in.Strategy, in.Layers = placeReader(plan, *user)
	list := *ids
	if list == 0 {
		list = math.MaxInt32
	}
	if err := in.read(ctx, st.Tables, peeks, *refreshes, list); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	in.writeText(stdout)
	return nil
}

// placeReader is the strategy plan assigns user, as routing assigns it, and
// their bucket and experiment in each layer. The experiment is what Assign
// picks in a plan of that layer alone and no default, so the bucket ranges
// are read by package abtest, not here.
func placeReader(plan *abtest.Plan, user string) (inspectedStrategy, []layerPlacement) {
	s := plan.Assign(user)
	strategy := inspectedStrategy{Name: s.Name, Recall: s.Recall, Sort: s.Sort, NewRatio: s.NewRatio, HotRatio: s.HotRatio}
	layers := make([]layerPlacement, 0, len(plan.Layers))
	for _, l := range plan.Layers {
		alone := *plan
		alone.Default, alone.Layers = "", []abtest.Layer{l}
		layers = append(layers, layerPlacement{Layer: l.Name, Bucket: abtest.Bucket(l.Salt, l.Buckets, user), Buckets: l.Buckets, Experiment: alone.Assign(user).Name})
	}
	return strategy, layers
}

// read fills in what the stores hold of the reader: history, the cache's two
// tiers, the seen sets and the weights, listing at most list ids of each tier
// and set.
func (in *inspection) read(ctx context.Context, tables storage.Tables, peeks storage.Inspector, refreshes, list int) error {
	user, ch := in.User, in.Channel
	history, err := lastRefreshes(ctx, tables, user, ch, refreshes)
	if err != nil {
		return fmt.Errorf("read the history of user %s channel %d: %w", user, ch, err)
	}
	in.History = make([]servedRefresh, len(history))
	for i, v := range history {
		in.History[i] = servedRefresh{TimeStamp: v.Timestamp, IDs: v.IDs}
	}
	tier1, err := peeks.PeekTier1(ctx, user, ch, list)
	if err != nil {
		return fmt.Errorf("peek at tier 1 of user %s channel %d: %w", user, ch, err)
	}
	in.Tier1 = cacheTier{Count: tier1.Count, IDs: tier1.IDs, TTLMs: tier1.TTL.Milliseconds()}
	waiting, err := peeks.PeekWait(ctx, user, ch)
	if err != nil {
		return fmt.Errorf("peek at tier 2 of user %s channel %d: %w", user, ch, err)
	}
	in.Tier2 = cacheTier{Count: len(waiting), IDs: waiting[:min(list, len(waiting))]}
	for _, c := range claimedIn(ch) {
		seen, err := peeks.PeekSeen(ctx, user, c, list)
		if err != nil {
			return fmt.Errorf("peek at the seen set of user %s channel %d: %w", user, c, err)
		}
		in.Seen = append(in.Seen, seenSet{Channel: c, Seeded: seen.Seeded, Count: seen.Count, IDs: seen.IDs, TTLMs: seen.TTL.Milliseconds()})
	}
	weighted := []int32{ch}
	if ch == feed.ChannelAll {
		weighted = make([]int32, feed.NumChannels)
		for c := range feed.NumChannels {
			weighted[c] = c
		}
	}
	weights, err := tables.UserWeights(ctx, user, weighted)
	if err != nil {
		return fmt.Errorf("read the weights of user %s: %w", user, err)
	}
	for _, c := range weighted {
		if w, ok := weights[c]; ok {
			in.Weights = append(in.Weights, channelWeights{Channel: c, Weights: w})
		}
	}
	return nil
}

// claimedIn are the channels whose seen sets a claim in ch checks: ch, and
// channel 0 for any other (DESIGN §4: no article seen in the all-channels
// feed).
func claimedIn(ch int32) []int32 {
	if ch == feed.ChannelAll {
		return []int32{ch}
	}
	return []int32{ch, feed.ChannelAll}
}

// lastRefreshes are the reader's n newest refreshes of channel, newest first,
// walked back the way the app scrolls: each page holds up to two refreshes
// at or before its stamp, and the second is where the next page starts.
func lastRefreshes(ctx context.Context, h storage.History, user string, channel int32, n int) ([]storage.Version, error) {
	var out []storage.Version
	for at := int64(math.MaxInt64); len(out) < n; {
		page, err := h.Page(ctx, user, channel, at)
		if err != nil {
			return nil, err
		}
		if len(out) == 0 && len(page) > 0 {
			out = append(out, page[0])
		}
		if len(page) < 2 {
			break
		}
		out = append(out, page[1])
		at = page[1].Timestamp
	}
	return out[:min(n, len(out))], nil
}

// writeText prints the inspection for a reader of a terminal.
func (in *inspection) writeText(w io.Writer) {
	fmt.Fprintf(w, "reader %s, channel %s\n", in.User, channelLabel(in.Channel))
	if in.Anonymous {
		fmt.Fprintln(w, "anonymous: routing serves this id hot and new articles and keeps no history for it")
	}
	s := in.Strategy
	fmt.Fprintf(w, "\nstrategy %s: recall %s, sort %d, new %.2f, hot %.2f\n", s.Name, joinIDs(s.Recall), s.Sort, s.NewRatio, s.HotRatio)
	for _, l := range in.Layers {
		owner := l.Experiment
		if owner == "" {
			owner = "no experiment"
		}
		fmt.Fprintf(w, "  layer %s: bucket %d of %d → %s\n", l.Layer, l.Bucket, l.Buckets, owner)
	}

	fmt.Fprintf(w, "\nhistory, newest first (%d refreshes shown):\n", len(in.History))
	if len(in.History) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, r := range in.History {
		fmt.Fprintf(w, "  %d  %s  %d ids: %s\n", r.TimeStamp, time.UnixMilli(r.TimeStamp).UTC().Format("2006-01-02 15:04:05.000 UTC"), len(r.IDs), joinIDs(r.IDs))
	}

	fmt.Fprintln(w, "\ncache:")
	fmt.Fprintf(w, "  tier 1 (pop order): %s%s\n", countedIDs(in.Tier1.Count, in.Tier1.IDs), expiresIn(in.Tier1.TTLMs))
	fmt.Fprintf(w, "  tier 2 (wait_recommend): %s\n", countedIDs(in.Tier2.Count, in.Tier2.IDs))

	fmt.Fprintln(w, "\nseen sets (what a claim checks):")
	for _, s := range in.Seen {
		seeded := "seeded"
		if !s.Seeded {
			seeded = "not seeded (the next refresh seeds it from history)"
		}
		fmt.Fprintf(w, "  channel %d: %s, %s%s\n", s.Channel, seeded, countedIDs(s.Count, s.IDs), expiresIn(s.TTLMs))
	}

	fmt.Fprintln(w, "\nprofile weights:")
	if len(in.Weights) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, cw := range in.Weights {
		fmt.Fprintf(w, "  channel %s: %s\n", channelLabel(cw.Channel), strings.Trim(fmt.Sprint(cw.Weights), "[]"))
	}
}

// channelLabel is a channel's id and, when it has one, its name.
func channelLabel(ch int32) string {
	if name := dataset.ChannelName(ch); name != "" {
		return fmt.Sprintf("%d (%s)", ch, name)
	}
	return fmt.Sprint(ch)
}

// countedIDs is "N ids: a b c", ending in "…" when only the first are listed.
func countedIDs(count int, ids []int64) string {
	s := fmt.Sprintf("%d ids", count)
	if len(ids) > 0 {
		s += ": " + joinIDs(ids)
	}
	if len(ids) < count {
		s += " …"
	}
	return s
}

// expiresIn is ", expires in D" for a time to live, nothing without one.
func expiresIn(ttlMs int64) string {
	if ttlMs <= 0 {
		return ""
	}
	return fmt.Sprintf(", expires in %v", (time.Duration(ttlMs) * time.Millisecond).Round(time.Second))
}

// joinIDs spells ids (or sources) separated by spaces.
func joinIDs[T any](ids []T) string { return strings.Trim(fmt.Sprint(ids), "[]") }
