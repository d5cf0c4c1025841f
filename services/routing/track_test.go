package routing

import "testing"

// The wants are Python's json.dumps({"action": "click", "userId": u,
// "articleId": "5", "algorithmCombine": "Algo-1"}), the original's track code.
func TestTrackStringsMatchPythonJSONDumps(t *testing.T) {
	tests := []struct{ user, want string }{
		{"u1", `{"action": "click", "userId": "u1", "articleId": "5", "algorithmCombine": "Algo-1"}`},
		{`a"b\c`, `{"action": "click", "userId": "a\"b\\c", "articleId": "5", "algorithmCombine": "Algo-1"}`},
		{"é中", `{"action": "click", "userId": "\u00e9\u4e2d", "articleId": "5", "algorithmCombine": "Algo-1"}`},
		{"😀", `{"action": "click", "userId": "\ud83d\ude00", "articleId": "5", "algorithmCombine": "Algo-1"}`},
		{"\x01\n\t", `{"action": "click", "userId": "\u0001\n\t", "articleId": "5", "algorithmCombine": "Algo-1"}`},
		{"\x7f/<>&", `{"action": "click", "userId": "\u007f/<>&", "articleId": "5", "algorithmCombine": "Algo-1"}`},
	}
	for _, tt := range tests {
		if got := string(action(nil, "click", tt.user, "5", "Algo-1")); got != tt.want {
			t.Errorf("user %q:\n got %s\nwant %s", tt.user, got, tt.want)
		}
	}
}

func TestHistoryPageHasNoExposure(t *testing.T) {
	tr := track("u1", "Algo-2", []int64{1, 2, 3}, false, 7)
	want := `{"action": "exposure", "userId": "u1", "articleId": "[1, 2, 3]", "algorithmCombine": "Algo-2"}`
	if tr.GetExposure() != want || tr.GetTimeStamp() != 7 || len(tr.GetRecommends()) != 3 {
		t.Errorf("refresh track = %v; want exposure %s", tr, want)
	}
	if h := track("u1", "Algo-2", []int64{1}, true, 0); h.GetExposure() != "" || h.GetRecommends()[0].GetParams().GetRead() == "" {
		t.Errorf("history track = %v; want no exposure but per-article params", h)
	}
}
