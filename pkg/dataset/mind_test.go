package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
)

func TestArticleIDsMapReversibly(t *testing.T) {
	for _, s := range []string{"N1", "N34700", "N9223372036854775807"} {
		id, err := ParseArticleID(s)
		if err != nil {
			t.Fatalf("ParseArticleID(%q): %v", s, err)
		}
		if got := FormatArticleID(id); got != s {
			t.Errorf("FormatArticleID(ParseArticleID(%q)) = %q", s, got)
		}
	}
	if id, _ := ParseArticleID("N34700"); id != 34700 {
		t.Errorf("N34700 → %d, want 34700", id)
	}
	for _, s := range []string{"", "N", "34700", "n34700", "N034700", "N0", "N12a", "N-3", "N99999999999999999999", "U34700"} {
		if _, err := ParseArticleID(s); err == nil {
			t.Errorf("ParseArticleID(%q) succeeded", s)
		}
	}
}

// TestChannelTableIsStable pins the channel ids: they are stored in every
// feature row and in every request, so changing one is a migration.
func TestChannelTableIsStable(t *testing.T) {
	want := map[string]int32{
		"autos": 1, "entertainment": 2, "finance": 3, "foodanddrink": 4, "games": 5, "health": 6,
		"kids": 7, "lifestyle": 8, "middleeast": 9, "movies": 10, "music": 11, "news": 12,
		"northamerica": 13, "sports": 14, "travel": 15, "tv": 16, "video": 17, "weather": 18,
	}
	for cat, ch := range want {
		if got := Channel(cat); got != ch {
			t.Errorf("Channel(%q) = %d, want %d", cat, got, ch)
		}
		if got := ChannelName(ch); got != cat {
			t.Errorf("ChannelName(%d) = %q, want %q", ch, got, cat)
		}
	}
	for _, c := range []string{"Sports", " NEWS "} {
		if Channel(c) == ChannelOther {
			t.Errorf("Channel(%q) is not matched case-insensitively", c)
		}
	}
	if got := Channel("quantumgossip"); got != ChannelOther {
		t.Errorf("unknown category → %d, want %d", got, ChannelOther)
	}
	table := Channels()
	if len(table) != len(want)+2 || table[0].Channel != feed.ChannelAll || table[len(table)-1].Channel != ChannelOther {
		t.Errorf("Channels() = %v", table)
	}
	for _, c := range table {
		if c.Channel < 0 || c.Channel >= feed.NumChannels {
			t.Errorf("channel %d outside 0..%d", c.Channel, feed.NumChannels-1)
		}
	}
}

const goodNews = "N1\tsports\tgolf\tA title\tAn abstract\thttps://x/1\t[]\t[]\n" +
	"N2\tnews\tnewsus\tOther title\t\thttps://x/2\t[{\"Label\": \"X\"}]\t[]\n"

const goodBehaviors = "1\tU7\t11/15/2019 8:55:22 AM\tN1 N2\tN2-1 N1-0\n" +
	"2\tU8\t11/15/2019 1:05:00 PM\t\tN1-0 N2-1\n"

func writeFiles(t *testing.T, news, behaviors string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, NewsFile), []byte(news), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, BehaviorsFile), []byte(behaviors), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadMIND(t *testing.T) {
	ds, err := Read(writeFiles(t, goodNews, strings.ReplaceAll(goodBehaviors, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Articles) != 2 || ds.Articles[1].ID != 2 || ds.Articles[1].Category != "news" || ds.Articles[1].Abstract != "" {
		t.Errorf("articles = %+v", ds.Articles)
	}
	b := ds.Behaviors[0]
	wantTime := time.Date(2019, 11, 15, 8, 55, 22, 0, time.UTC)
	if b.ID != 1 || b.User != "U7" || !b.Time.Equal(wantTime) || !reflect.DeepEqual(b.History, []int64{1, 2}) ||
		!reflect.DeepEqual(b.Impressions, []Impression{{2, true}, {1, false}}) {
		t.Errorf("behaviour = %+v", b)
	}
	if got := ds.Behaviors[1]; got.History != nil || got.Time.Hour() != 13 {
		t.Errorf("second behaviour = %+v", got)
	}
}

func TestReadRejectsMalformedLines(t *testing.T) {
	tests := []struct {
		name, news, behaviors, file string
		line                        int
		msg                         string
	}{
		{"news field count", goodNews + "N3\tsports\tgolf\n", goodBehaviors, NewsFile, 3, "want 8 tab-separated fields"},
		{"news id", "X1\tsports\tgolf\tt\ta\tu\t[]\t[]\n", goodBehaviors, NewsFile, 1, `news_id: article id "X1"`},
		{"news duplicate", goodNews + "N1\tsports\tgolf\tt\ta\tu\t[]\t[]\n", goodBehaviors, NewsFile, 3, "repeats line 1"},
		{"news empty category", "N1\t\tgolf\tt\ta\tu\t[]\t[]\n", goodBehaviors, NewsFile, 1, "category of N1 is empty"},
		{"news entities", "N1\tsports\tgolf\tt\ta\tu\t[]\t{\n", goodBehaviors, NewsFile, 1, "abstract_entities of N1 is not JSON"},
		{"news bad json", "N1\tsports\tgolf\tt\ta\tu\t[{]\t[]\n", goodBehaviors, NewsFile, 1, "title_entities of N1 is not JSON"},
		{"news empty file", "", goodBehaviors, NewsFile, 1, "no articles"},
		{"behaviour field count", goodNews, goodBehaviors + "3\tU9\t11/15/2019 8:55:22 AM\tN1\n", BehaviorsFile, 3, "want 5 tab-separated fields"},
		{"impression id", goodNews, "x\tU7\t11/15/2019 8:55:22 AM\t\tN1-1\n", BehaviorsFile, 1, `impression_id "x"`},
		{"impression id repeats", goodNews, goodBehaviors + "1\tU9\t11/15/2019 8:55:22 AM\t\tN1-1\n", BehaviorsFile, 3, "impression_id 1 repeats line 1"},
		{"user", goodNews, "1\t\t11/15/2019 8:55:22 AM\t\tN1-1\n", BehaviorsFile, 1, "user_id"},
		{"time", goodNews, "1\tU7\t2019-11-15 08:55:22\t\tN1-1\n", BehaviorsFile, 1, `time "2019-11-15 08:55:22"`},
		{"history id", goodNews, "1\tU7\t11/15/2019 8:55:22 AM\tN1 B2\tN1-1\n", BehaviorsFile, 1, `history: article id "B2"`},
		{"history unknown", goodNews, "1\tU7\t11/15/2019 8:55:22 AM\tN9\tN1-1\n", BehaviorsFile, 1, "history names N9, which is not in news.tsv"},
		{"impression label", goodNews, goodBehaviors + "3\tU7\t11/15/2019 8:55:22 AM\t\tN1-2\n", BehaviorsFile, 3, `impression "N1-2"`},
		{"impression unlabelled", goodNews, "1\tU7\t11/15/2019 8:55:22 AM\t\tN1\n", BehaviorsFile, 1, `impression "N1"`},
		{"impression unknown", goodNews, "1\tU7\t11/15/2019 8:55:22 AM\t\tN5-1\n", BehaviorsFile, 1, "impressions name N5, which is not in news.tsv"},
		{"impressions empty", goodNews, "1\tU7\t11/15/2019 8:55:22 AM\tN1\t\n", BehaviorsFile, 1, "impressions are empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.news, tt.behaviors)
			_, err := Read(dir)
			if err == nil {
				t.Fatal("Read succeeded")
			}
			var le *LineError
			if !errors.As(err, &le) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not a *LineError wrapping ErrMalformed", err)
			}
			wantPrefix := filepath.Join(dir, tt.file) + ":" + strconv.Itoa(tt.line) + ": "
			if !strings.HasPrefix(err.Error(), wantPrefix) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error = %q, want prefix %q and %q", err, wantPrefix, tt.msg)
			}
		})
	}
}

// TestReadSkipsUnknownArticles: with SkipUnknown, what names an article
// news.tsv lacks is dropped and counted — history entries and impressions,
// and a line left without impressions whole — while the strict read fails on
// the first with ErrUnknownArticle, and every other check stays strict.
func TestReadSkipsUnknownArticles(t *testing.T) {
	behaviors := "1\tU7\t11/15/2019 8:55:22 AM\tN1 N9\tN2-1 N5-0\n" + // one history entry, one impression
		"2\tU8\t11/15/2019 1:05:00 PM\t\tN1-0 N2-1\n" + // consistent
		"3\tU9\t11/15/2019 2:00:00 PM\tN2\tN7-1 N8-0\n" // no impression left: dropped
	dir := writeFiles(t, goodNews, behaviors)

	_, err := Read(dir)
	if !errors.Is(err, ErrUnknownArticle) || !errors.Is(err, ErrMalformed) ||
		!strings.HasPrefix(err.Error(), filepath.Join(dir, BehaviorsFile)+":1: history names N9, which is not in news.tsv") {
		t.Errorf("strict Read error = %v, want line 1's unknown N9, wrapping ErrUnknownArticle and ErrMalformed", err)
	}

	ds, skipped, err := ReadWith(dir, ReadOptions{SkipUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	want := Skipped{Lines: 2, DroppedLines: 1, History: 1, Impressions: 3, Examples: []UnknownRef{
		{1, "history", "N9"}, {1, "impressions", "N5"}, {3, "impressions", "N7"}, {3, "impressions", "N8"},
	}}
	if !reflect.DeepEqual(skipped, want) {
		t.Errorf("skipped = %+v, want %+v", skipped, want)
	}
	wantText := "4 references to articles missing from news.tsv on 2 lines of behaviors.tsv (1 history entry, 3 impressions; 1 line left without impressions, dropped); e.g. line 1 history N9, line 1 impressions N5, line 3 impressions N7, line 3 impressions N8"
	if got := skipped.String(); got != wantText {
		t.Errorf("skipped.String() = %q, want %q", got, wantText)
	}
	if len(ds.Behaviors) != 2 || ds.Behaviors[0].ID != 1 || ds.Behaviors[1].ID != 2 {
		t.Fatalf("behaviours = %+v, want lines 1 and 2", ds.Behaviors)
	}
	if b := ds.Behaviors[0]; !reflect.DeepEqual(b.History, []int64{1}) || !reflect.DeepEqual(b.Impressions, []Impression{{2, true}}) {
		t.Errorf("line 1 read as history %v, impressions %v; want [1] and [{2 true}]", b.History, b.Impressions)
	}

	// Consistent files: nothing skipped.
	if _, skipped, err := ReadWith(writeFiles(t, goodNews, goodBehaviors), ReadOptions{SkipUnknown: true}); err != nil || !reflect.DeepEqual(skipped, Skipped{}) {
		t.Errorf("consistent files: skipped %+v, %v; want nothing", skipped, err)
	}
	// Examples are bounded, counts are not.
	var many strings.Builder
	for i := range 9 {
		fmt.Fprintf(&many, "%d\tU%d\t11/15/2019 8:55:22 AM\tN10%d\tN1-1\n", i+1, i, i)
	}
	if _, skipped, err := ReadWith(writeFiles(t, goodNews, many.String()), ReadOptions{SkipUnknown: true}); err != nil ||
		skipped.History != 9 || skipped.Lines != 9 || len(skipped.Examples) != MaxSkippedExamples {
		t.Errorf("9 unknown history entries: skipped %+v, %v; want 9 counted on 9 lines, %d examples", skipped, err, MaxSkippedExamples)
	}
	// Everything else stays strict.
	for name, b := range map[string]string{
		"bad label":         "1\tU7\t11/15/2019 8:55:22 AM\tN9\tN1-2\n",
		"empty impressions": "1\tU7\t11/15/2019 8:55:22 AM\tN9\t\n",
		"bad id":            "1\tU7\t11/15/2019 8:55:22 AM\tN09\tN1-1\n",
	} {
		if _, _, err := ReadWith(writeFiles(t, goodNews, b), ReadOptions{SkipUnknown: true}); !errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnknownArticle) {
			t.Errorf("%s: error %v, want a malformed line", name, err)
		}
	}
}

func TestWriteThenReadGivesTheSameData(t *testing.T) {
	ds, err := Generate(GenerateConfig{Users: 60, Articles: 80, Days: 3, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteDir(dir, ds); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ds) {
		t.Error("data read back differs from the data written")
	}
	// Written again, the files are byte for byte the same.
	dir2 := t.TempDir()
	if err := WriteDir(dir2, got); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{NewsFile, BehaviorsFile} {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		b, _ := os.ReadFile(filepath.Join(dir2, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs after a round trip", f)
		}
	}
}

func TestWriteRefusesTabsInFields(t *testing.T) {
	err := WriteNews(&bytes.Buffer{}, []Article{{ID: 1, Category: "news", Title: "a\tb"}})
	if err == nil {
		t.Error("a title with a tab was written")
	}
}
