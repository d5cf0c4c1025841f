package app

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// reportEmptyStore logs an error at start-up when the store the feed reads
// holds no articles: no channel has a new list, which every build writes last.
// Such a suite answers every feed OK with an empty page, so the reason must be
// said once and loudly (a container started with the image's default, `serve
// --target=all` on a fresh volume, would otherwise look healthy). Only a process
// that serves candidates (recall, or reco-center with its hot and new fallback)
// checks; a store that does not answer is left to the calls that need it.
func (a *App) reportEmptyStore(ctx context.Context) {
	if a.stores.Sets == nil || !slices.ContainsFunc(a.targets, func(t string) bool { return t == Recall || t == RecoCenter }) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for ch := range feed.NumChannels {
		top, err := a.stores.Sets.Top(ctx, storage.NewList, ch, 1)
		if err != nil || len(top) > 0 {
			return
		}
	}
	a.log.Error("the store holds no articles: every feed answers an empty page until data is loaded; "+
		"run `reco admin demo --models DIR` (a synthetic demo set) or `reco admin build --data DIR --models DIR` (a MIND-layout data set) against this store",
		zap.String("tables", a.cfg.Storage.Tables), zap.String("sets", a.cfg.Storage.Sets))
}
