package panel_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/panel"
)

func TestUsersPutResult_Refused_ListsWhatWasNotApplied(t *testing.T) {
	t.Parallel()
	res := panel.UsersPutResult{Results: []panel.UserPutResult{
		{Number: 3, Status: panel.UserPutOK},
		{Number: 1, Status: panel.UserPutRefused, Code: panel.RefusedProtected, Message: "user 1 is protected on the panel"},
		{Number: 7, Status: "maybe"},
		{Number: 9, Status: panel.UserPutRefused, Code: panel.RefusedDeviceError},
	}}
	var got []int
	for _, r := range res.Refused() {
		got = append(got, r.Number)
	}
	if !slices.Equal(got, []int{1, 7, 9}) {
		t.Fatalf("Refused() = %v, want users 1, 7 (unknown status) and 9", got)
	}
	if r := (panel.UsersPutResult{Watermark: "e:1"}).Refused(); r != nil {
		t.Fatalf("a result without per-user entries refused %v", r)
	}
}

func TestUsersPutResult_WireFormat_AddsResultsOnly(t *testing.T) {
	t.Parallel()
	// A result from a panel that predates per-user outcomes still decodes,
	// and reads as every user applied.
	var old panel.UsersPutResult
	if err := json.Unmarshal([]byte(`{"watermark":"e:4"}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Watermark != "e:4" || old.Refused() != nil {
		t.Fatalf("old result = %+v", old)
	}
	data, err := json.Marshal(panel.UsersPutResult{Watermark: "e:5", Results: []panel.UserPutResult{
		{Number: 2, Status: panel.UserPutOK},
		{Number: 1, Status: panel.UserPutRefused, Code: panel.RefusedProtected, Message: "user 1 is protected on the panel"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"watermark":"e:5","results":[{"number":2,"status":"ok"},{"number":1,"status":"refused","code":"protected","message":"user 1 is protected on the panel"}]}`
	if string(data) != want {
		t.Fatalf("encoded as\n%s\nwant\n%s", data, want)
	}
}

func TestUsersPutResult_Validate(t *testing.T) {
	t.Parallel()
	args := panel.UsersPutArgs{Users: []panel.User{{Number: 4}, {Number: 1}}, Removed: []int{6}}
	ok := func(n int) panel.UserPutResult { return panel.UserPutResult{Number: n, Status: panel.UserPutOK} }
	refused := func(n int, code, msg string) panel.UserPutResult {
		return panel.UserPutResult{Number: n, Status: panel.UserPutRefused, Code: code, Message: msg}
	}
	cases := []struct {
		name    string
		results []panel.UserPutResult
		want    string // "" for valid
	}{
		{"no results from an older panel", nil, ""},
		{"one per user in order", []panel.UserPutResult{ok(4), refused(1, panel.RefusedProtected, "user 1 is protected on the panel"), ok(6)}, ""},
		{"a code the server does not know", []panel.UserPutResult{ok(4), refused(1, "vendor_locked", ""), ok(6)}, ""},
		{"too few", []panel.UserPutResult{ok(4), ok(1)}, "2 results for 3 users"},
		{"out of order", []panel.UserPutResult{ok(1), ok(4), ok(6)}, "is for user 1, want user 4"},
		{"removed out of order", []panel.UserPutResult{ok(4), ok(1), ok(7)}, "is for user 7, want user 6"},
		{"unknown status", []panel.UserPutResult{ok(4), {Number: 1, Status: "maybe"}, ok(6)}, "unknown status"},
		{"refused without a code", []panel.UserPutResult{ok(4), {Number: 1, Status: panel.UserPutRefused}, ok(6)}, "without a code"},
		{"ok with a code", []panel.UserPutResult{ok(4), {Number: 1, Status: panel.UserPutOK, Code: panel.RefusedFull}, ok(6)}, "is ok but has code"},
		{"control characters in the message", []panel.UserPutResult{ok(4), refused(1, panel.RefusedInvalid, "bad\nforged line"), ok(6)}, "control characters"},
		{"an overlong message", []panel.UserPutResult{ok(4), refused(1, panel.RefusedInvalid, strings.Repeat("x", panel.MaxTextRunes+1)), ok(6)}, "at most"},
	}
	for _, c := range cases {
		err := panel.UsersPutResult{Watermark: "e:1", Results: c.results}.Validate(args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}
