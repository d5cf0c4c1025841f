package dataset

import (
	"strings"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
)

// ChannelOther is where a category outside the MIND table goes, so an unknown
// category is served rather than dropped, and a new category never silently
// takes the id an existing one will have in a later release. It is the last
// channel id (feed.NumChannels holds the count).
const ChannelOther = feed.NumChannels - 1

// categories is the fixed channel table: every MIND category, sorted, taking
// channel ids 1..18 in this order. Ids 19..23 are free for future categories
// (appended, never inserted, so stored ids keep their meaning) and 24 is
// ChannelOther.
var categories = [...]string{
	"autos", "entertainment", "finance", "foodanddrink", "games", "health",
	"kids", "lifestyle", "middleeast", "movies", "music", "news",
	"northamerica", "sports", "travel", "tv", "video", "weather",
}

// Channel returns the channel id of a MIND category (matched case-insensitively),
// or ChannelOther for a category outside the table.
func Channel(category string) int32 {
	c := strings.ToLower(strings.TrimSpace(category))
	for i, name := range categories {
		if name == c {
			return int32(i + 1)
		}
	}
	return ChannelOther
}

// ChannelName names a channel id: its category, "all" for ChannelAll, "other"
// for ChannelOther, "" for an unused id.
func ChannelName(ch int32) string {
	switch {
	case ch == feed.ChannelAll:
		return "all"
	case ch == ChannelOther:
		return "other"
	case ch >= 1 && int(ch) <= len(categories):
		return categories[ch-1]
	}
	return ""
}

// ChannelMapping is one row of the channel table.
type ChannelMapping struct {
	Channel  int32
	Category string
}

// Channels returns the channel table in id order, with channel 0 as "all" and
// the fallback as "other": what `reco admin build` prints so operators can read
// channel ids.
func Channels() []ChannelMapping {
	out := []ChannelMapping{{feed.ChannelAll, "all"}}
	for i, name := range categories {
		out = append(out, ChannelMapping{int32(i + 1), name})
	}
	return append(out, ChannelMapping{ChannelOther, "other"})
}
