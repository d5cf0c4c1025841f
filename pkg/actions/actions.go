// Package actions decodes what readers did, as the app logs it (DESIGN.md §8):
// the original's action log line
//
//	{"actionTime": "2019-04-10 21:04:39", "readTime": "", "channelId": 18,
//	 "param": {"action": "click", "userId": "2", "articleId": "14299", "algorithmCombine": "Algo-1"}}
//
// or a bare track string (the "param" object alone, as the feed handed it out,
// §2.2). Every way in (the click-trace topic, TrackService/Report, POST
// /v1/actions) and the nearline consumer decode with Parse, so a line accepted
// at the door is one nearline can apply, and one refused is refused with the
// same reason everywhere.
//
// Decoding is strict: unknown keys, a wrong type, an unknown action, a user id
// or article id of the wrong shape, a time that cannot be read or lies outside
// [2000-01-01, now + MaxFutureSkew]: the line is refused with a reason that
// names what was wrong, and nothing of it is used.
package actions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Kind is what a reader did.
type Kind string

// The actions of the track strings.
const (
	Exposure Kind = "exposure"
	Click    Kind = "click"
	Collect  Kind = "collect"
	Share    Kind = "share"
	Read     Kind = "read"
)

// Kinds lists every action, for metrics and documentation.
var Kinds = []Kind{Exposure, Click, Collect, Share, Read}

// Engaged reports whether the action says the reader liked the article: the
// actions that heat the hot lists and feed online recall (§8).
func (k Kind) Engaged() bool { return k == Click || k == Collect || k == Share }

// Limits of one line.
const (
	// MaxLineBytes bounds a line: an exposure of a page of 100 ids is about
	// 1.5 KiB.
	MaxLineBytes = 16 << 10
	// MaxUserLen bounds a user id, as the public API does: it is a row key.
	MaxUserLen = 256
	// MaxStrategyLen bounds a strategy name (experiments of every layer
	// joined by "|").
	MaxStrategyLen = 200
	// MaxExposed bounds the ids of one exposure.
	MaxExposed = 1000
	// MaxFutureSkew is how far ahead of the receiver's clock an action time
	// may be (clocks of phones drift); a time further ahead is refused.
	MaxFutureSkew = 24 * time.Hour
)

// minTime is the earliest action time accepted: before it, a time in seconds
// read as milliseconds, or a zero value.
var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Action is one decoded line.
type Action struct {
	Kind     Kind
	User     string
	Strategy string
	// Articles is the one article of a click, collect, share or read, or
	// the ids an exposure showed, in order.
	Articles []int64
	// Channel is the channel the reader was in, -1 for a bare track string
	// (which does not say).
	Channel int32
	// Time is when it happened; the zero time for a bare track string.
	Time time.Time
	// ReadMillis is the reading time of a read action, else 0.
	ReadMillis int64
}

// ErrRejected wraps every reason a line is refused.
var ErrRejected = errors.New("action line rejected")

// line is either form of a line: the envelope's fields (param decoded on its
// own, since it is also a bare line) or a bare track string's. Fields are raw
// or pointers so that each missing or mistyped one gets its own reason.
type line struct {
	ActionTime json.RawMessage `json:"actionTime"`
	ReadTime   json.RawMessage `json:"readTime"`
	ChannelID  json.RawMessage `json:"channelId"`
	Param      json.RawMessage `json:"param"`
	param
}

type param struct {
	Action           *string `json:"action"`
	UserID           *string `json:"userId"`
	ArticleID        *string `json:"articleId"`
	AlgorithmCombine *string `json:"algorithmCombine"`
}

// Parse decodes one line. loc is the zone of actionTime in the original's
// local "2006-01-02 15:04:05" form; now bounds times from above.
func Parse(line []byte, loc *time.Location, now time.Time) (Action, error) {
	a, err := parse(bytes.TrimSpace(line), loc, now)
	if err != nil {
		return Action{}, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	return a, nil
}

func parse(b []byte, loc *time.Location, now time.Time) (Action, error) {
	if len(b) == 0 {
		return Action{}, errors.New("empty line")
	}
	if len(b) > MaxLineBytes {
		return Action{}, fmt.Errorf("line of %d bytes is over the limit of %d", len(b), MaxLineBytes)
	}
	var l line
	if err := strictDecode(b, &l); err != nil {
		return Action{}, fmt.Errorf("not a JSON object of an action line: %v", err)
	}
	if l.Action != nil {
		if l.ActionTime != nil || l.ReadTime != nil || l.ChannelID != nil || l.Param != nil {
			return Action{}, errors.New(`a track string's fields ("action", …) belong in "param" of a log line, not beside its actionTime, readTime, channelId`)
		}
		a, err := fromParam(l.param)
		a.Channel = -1
		return a, err
	}
	if l.Param == nil {
		return Action{}, errors.New(`"param" is required: the track string of the action`)
	}
	var p param
	if err := strictDecode(l.Param, &p); err != nil {
		return Action{}, fmt.Errorf("param: %v", err)
	}
	a, err := fromParam(p)
	if err != nil {
		return Action{}, fmt.Errorf("param: %v", err)
	}
	if a.Channel, err = parseChannel(l.ChannelID); err != nil {
		return Action{}, err
	}
	if a.Time, err = parseTime(l.ActionTime, loc, now); err != nil {
		return Action{}, err
	}
	if a.ReadMillis, err = parseReadTime(l.ReadTime, a.Kind); err != nil {
		return Action{}, err
	}
	return a, nil
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// anything after the value.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

func fromParam(p param) (Action, error) {
	for _, f := range []struct {
		name string
		v    *string
	}{{"action", p.Action}, {"userId", p.UserID}, {"articleId", p.ArticleID}, {"algorithmCombine", p.AlgorithmCombine}} {
		if f.v == nil {
			return Action{}, fmt.Errorf("%q is required", f.name)
		}
	}
	a := Action{Kind: Kind(*p.Action), User: *p.UserID, Strategy: *p.AlgorithmCombine}
	switch a.Kind {
	case Exposure, Click, Collect, Share, Read:
	default:
		return Action{}, fmt.Errorf("action %.40q is not one of exposure, click, collect, share, read", *p.Action)
	}
	if err := checkName("userId", a.User, MaxUserLen); err != nil {
		return Action{}, err
	}
	if err := checkName("algorithmCombine", a.Strategy, MaxStrategyLen); err != nil {
		return Action{}, err
	}
	if a.Kind == Exposure {
		ids, err := storage.DecodeIDs([]byte(*p.ArticleID))
		if err != nil {
			return Action{}, fmt.Errorf("articleId of an exposure must be a JSON array of article ids as a string: %v", err)
		}
		if len(ids) == 0 || len(ids) > MaxExposed {
			return Action{}, fmt.Errorf("articleId of an exposure must hold 1..%d ids, got %d", MaxExposed, len(ids))
		}
		a.Articles = ids
		return a, nil
	}
	id, err := storage.ParseID(*p.ArticleID)
	if err != nil {
		return Action{}, fmt.Errorf("articleId must be a positive article id as a string: %v", err)
	}
	a.Articles = []int64{id}
	return a, nil
}

// checkName checks a user id or strategy: non-empty, bounded, printable.
func checkName(field, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s must be 1..%d bytes, got %d", field, max, len(s))
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s must not contain control characters, got %q", field, s)
		}
	}
	return nil
}

func parseChannel(b json.RawMessage) (int32, error) {
	if b == nil {
		return 0, errors.New(`"channelId" is required`)
	}
	var ch int64
	if err := json.Unmarshal(b, &ch); err != nil || !feed.ValidChannel(int32(ch)) || int64(int32(ch)) != ch {
		return 0, fmt.Errorf("channelId must be an integer 0..%d, got %.40s", feed.NumChannels-1, b)
	}
	return int32(ch), nil
}

// parseTime reads the original's local "2006-01-02 15:04:05", RFC 3339, or
// epoch milliseconds (a number or a string of digits).
func parseTime(b json.RawMessage, loc *time.Location, now time.Time) (time.Time, error) {
	if b == nil {
		return time.Time{}, errors.New(`"actionTime" is required`)
	}
	var t time.Time
	var ms int64
	var s string
	switch {
	case json.Unmarshal(b, &ms) == nil:
		t = time.UnixMilli(ms)
	case json.Unmarshal(b, &s) == nil:
		var err error
		if t, err = time.ParseInLocation(time.DateTime, s, loc); err != nil {
			if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
				if ms, err = strconv.ParseInt(s, 10, 64); err != nil {
					return time.Time{}, fmt.Errorf("actionTime %.40q is not \"YYYY-MM-DD HH:MM:SS\", RFC 3339 or epoch milliseconds", s)
				}
				t = time.UnixMilli(ms)
			}
		}
	default:
		return time.Time{}, fmt.Errorf("actionTime must be a string or epoch milliseconds, got %.40s", b)
	}
	if t.Before(minTime) || t.After(now.Add(MaxFutureSkew)) {
		return time.Time{}, fmt.Errorf("actionTime %s is outside 2000-01-01 .. now + %s (a time in seconds is read as milliseconds)", t.UTC().Format(time.RFC3339), MaxFutureSkew)
	}
	return t, nil
}

// parseReadTime reads readTime: milliseconds (a number or a string of digits)
// for a read; empty, absent or 0 for any other action.
func parseReadTime(b json.RawMessage, k Kind) (int64, error) {
	var s string
	var ms int64
	switch {
	case b == nil || string(b) == "null":
		return 0, nil
	case json.Unmarshal(b, &ms) == nil:
	case json.Unmarshal(b, &s) == nil:
		if strings.TrimSpace(s) == "" {
			return 0, nil
		}
		var err error
		if ms, err = strconv.ParseInt(s, 10, 64); err != nil {
			return 0, fmt.Errorf("readTime %.40q is not milliseconds", s)
		}
	default:
		return 0, fmt.Errorf("readTime must be milliseconds or empty, got %.40s", b)
	}
	if k != Read && ms != 0 {
		return 0, fmt.Errorf("readTime is only for a read action, got %d for %s", ms, k)
	}
	if ms < 0 || ms > int64(24*time.Hour/time.Millisecond) {
		return 0, fmt.Errorf("readTime must be 0..86400000 ms, got %d", ms)
	}
	return ms, nil
}
