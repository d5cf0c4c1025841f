package actions

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	shanghai = time.FixedZone("CST", 8*3600)
	now      = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
)

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       Action
	}{
		{"original log line", `{"actionTime": "2019-04-10 21:04:39", "readTime": "", "channelId": 18, "param": {"action": "click", "userId": "2", "articleId": "14299", "algorithmCombine": "Algo-1"}}`,
			Action{Kind: Click, User: "2", Strategy: "Algo-1", Articles: []int64{14299}, Channel: 18, Time: time.Date(2019, 4, 10, 21, 4, 39, 0, shanghai)}},
		{"exposure", `{"actionTime": "2019-04-10 21:04:39", "readTime": "", "channelId": 0, "param": {"action": "exposure", "userId": "u", "articleId": "[3, 1, 2]", "algorithmCombine": "exp-a|exp-b"}}`,
			Action{Kind: Exposure, User: "u", Strategy: "exp-a|exp-b", Articles: []int64{3, 1, 2}, Channel: 0, Time: time.Date(2019, 4, 10, 21, 4, 39, 0, shanghai)}},
		{"read with time as a number, RFC 3339", `{"actionTime": "2026-12-02T11:00:00Z", "readTime": 5300, "channelId": 3, "param": {"action": "read", "userId": "u", "articleId": "7", "algorithmCombine": "A"}}`,
			Action{Kind: Read, User: "u", Strategy: "A", Articles: []int64{7}, Channel: 3, Time: time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC), ReadMillis: 5300}},
		{"epoch milliseconds, read time as a string", `{"actionTime": 1764673200000, "readTime": "12", "channelId": 3, "param": {"action": "read", "userId": "u", "articleId": "7", "algorithmCombine": "A"}}`,
			Action{Kind: Read, User: "u", Strategy: "A", Articles: []int64{7}, Channel: 3, Time: time.UnixMilli(1764673200000), ReadMillis: 12}},
		{"bare track string", `{"action": "share", "userId": "\u5f20", "articleId": "9", "algorithmCombine": "Algo-2"}`,
			Action{Kind: Share, User: "张", Strategy: "Algo-2", Articles: []int64{9}, Channel: -1}},
		{"surrounding space and a line break", "  {\"action\": \"collect\", \"userId\": \"u\", \"articleId\": \"9\", \"algorithmCombine\": \"A\"}\r\n",
			Action{Kind: Collect, User: "u", Strategy: "A", Articles: []int64{9}, Channel: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.line), shanghai, now)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Kind != tc.want.Kind || got.User != tc.want.User || got.Strategy != tc.want.Strategy ||
				!slices.Equal(got.Articles, tc.want.Articles) || got.Channel != tc.want.Channel ||
				!got.Time.Equal(tc.want.Time) || got.ReadMillis != tc.want.ReadMillis {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	env := func(time, read, ch, param string) string {
		return `{"actionTime": ` + time + `, "readTime": ` + read + `, "channelId": ` + ch + `, "param": ` + param + `}`
	}
	click := `{"action": "click", "userId": "2", "articleId": "14299", "algorithmCombine": "Algo-1"}`
	for _, tc := range []struct{ name, line, reason string }{
		{"empty", "  ", "empty line"},
		{"not JSON", "click 2 14299", "not a JSON object"},
		{"an array", "[1]", "not a JSON object"},
		{"two values", click + click, "more than one JSON value"},
		{"unknown action", strings.Replace(click, "click", "like", 1), `action "like" is not one of`},
		{"unknown key in the track string", strings.Replace(click, `"userId"`, `"extra": "1", "userId"`, 1), `unknown field "extra"`},
		{"unknown key in the envelope", strings.Replace(env(`"2019-04-10 21:04:39"`, `""`, "1", click), `"readTime"`, `"x": 1, "readTime"`, 1), `unknown field "x"`},
		{"missing userId", `{"action": "click", "articleId": "1", "algorithmCombine": "A"}`, `"userId" is required`},
		{"empty userId", strings.Replace(click, `"2"`, `""`, 1), "userId must be 1..256 bytes"},
		{"numeric userId", strings.Replace(click, `"2"`, `2`, 1), "cannot unmarshal number"},
		{"control character in userId", strings.Replace(click, `"2"`, `"a\u0000b"`, 1), "control characters"},
		{"article id not a string", strings.Replace(click, `"14299"`, `14299`, 1), "cannot unmarshal number"},
		{"article id zero", strings.Replace(click, `"14299"`, `"0"`, 1), "positive article id"},
		{"article id with a sign", strings.Replace(click, `"14299"`, `"+5"`, 1), "positive article id"},
		{"click with a list", strings.Replace(click, `"14299"`, `"[1, 2]"`, 1), "positive article id"},
		{"exposure with one id", strings.Replace(strings.Replace(click, "click", "exposure", 1), `"14299"`, `"5"`, 1), "JSON array of article ids"},
		{"exposure empty", strings.Replace(strings.Replace(click, "click", "exposure", 1), `"14299"`, `"[]"`, 1), "1..1000 ids"},
		{"empty strategy", strings.Replace(click, `"Algo-1"`, `""`, 1), "algorithmCombine must be"},
		{"track string fields beside the envelope's", strings.Replace(click, `"action"`, `"channelId": 1, "action"`, 1), "belong in \"param\""},
		{"no param", `{"actionTime": "2019-04-10 21:04:39", "readTime": "", "channelId": 1}`, `"param" is required`},
		{"bad param", env(`"2019-04-10 21:04:39"`, `""`, "1", `"click"`), "param:"},
		{"channel out of range", env(`"2019-04-10 21:04:39"`, `""`, "25", click), "channelId must be an integer 0..24"},
		{"channel not a number", env(`"2019-04-10 21:04:39"`, `""`, `"3"`, click), "channelId must be an integer"},
		{"no channel", `{"actionTime": "2019-04-10 21:04:39", "param": ` + click + `}`, `"channelId" is required`},
		{"no time", `{"channelId": 1, "param": ` + click + `}`, `"actionTime" is required`},
		{"time unreadable", env(`"yesterday"`, `""`, "1", click), `actionTime "yesterday" is not`},
		{"time in seconds", env(`1764673200`, `""`, "1", click), "outside 2000-01-01"},
		{"time in year 3000", env(`"3000-01-01 00:00:00"`, `""`, "1", click), "outside 2000-01-01"},
		{"read time on a click", env(`"2019-04-10 21:04:39"`, `"300"`, "1", click), "readTime is only for a read"},
		{"read time negative", env(`"2019-04-10 21:04:39"`, `-1`, "1", strings.Replace(click, "click", "read", 1)), "readTime must be 0..86400000"},
		{"too long", `{"action": "click", "userId": "` + strings.Repeat("u", MaxLineBytes) + `"}`, "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse([]byte(tc.line), shanghai, now)
			if err == nil {
				t.Fatalf("Parse accepted %+v", a)
			}
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q, want ErrRejected saying %q", err, tc.reason)
			}
		})
	}
}
