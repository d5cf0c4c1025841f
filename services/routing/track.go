package routing

import (
	"strconv"
	"unicode/utf8"

	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// The track strings are what the app logs and the log pipelines parse
// (DESIGN.md §2.2). They are byte-for-byte what the original produced with
// Python's json.dumps: keys in the order action, userId, articleId,
// algorithmCombine; ", " and ": " separators; every value a string; non-ASCII
// escaped as \uXXXX (ensure_ascii). The exposure's articleId is itself the JSON
// array of the ids, as a string.

// track builds the response for ids served to user under strategy. A history
// page carries no exposure: re-showing history is not a new exposure.
func track(user, strategy string, ids []int64, history bool, stamp int64) *userreco.Track {
	t := &userreco.Track{TimeStamp: stamp, Recommends: make([]*userreco.Param1, len(ids))}
	if !history {
		t.Exposure = string(action(nil, "exposure", user, string(storage.EncodeIDs(ids)), strategy))
	}
	var buf []byte
	for i, id := range ids {
		aid := strconv.FormatInt(id, 10)
		p := &userreco.Param2{}
		for _, a := range []struct {
			name string
			dst  *string
		}{{"click", &p.Click}, {"collect", &p.Collect}, {"share", &p.Share}, {"read", &p.Read}} {
			buf = action(buf[:0], a.name, user, aid, strategy)
			*a.dst = string(buf)
		}
		t.Recommends[i] = &userreco.Param1{ArticleId: id, Params: p}
	}
	return t
}

// action appends one tracking object to b.
func action(b []byte, name, user, articleID, strategy string) []byte {
	b = append(b, `{"action": `...)
	b = pyString(b, name)
	b = append(b, `, "userId": `...)
	b = pyString(b, user)
	b = append(b, `, "articleId": `...)
	b = pyString(b, articleID)
	b = append(b, `, "algorithmCombine": `...)
	b = pyString(b, strategy)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// pyString appends s as Python's json.dumps writes a string with ensure_ascii.
func pyString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"':
			b = append(b, `\"`...)
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r == '\b':
			b = append(b, `\b`...)
		case r == '\f':
			b = append(b, `\f`...)
		case r < 0x20 || r > 0x7e:
			if r > 0xffff {
				// Outside the BMP: a UTF-16 surrogate pair, as Python writes it.
				r -= 0x10000
				b = appendU(b, 0xd800+(r>>10))
				r = 0xdc00 + (r & 0x3ff)
			}
			if r == utf8.RuneError {
				r = 0xfffd
			}
			b = appendU(b, r)
		default:
			b = append(b, byte(r))
		}
	}
	return append(b, '"')
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}
