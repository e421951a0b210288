package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/panel"
)

func TestClassify_EachPanelFailure_GivesItsCodeAndWhetherToRetry(t *testing.T) {
	for _, tc := range []struct {
		failure   string
		message   string
		permanent bool
		uncounted bool
	}{
		{panel.FailTimeout, "the panel did not answer in time", false, false},
		{panel.FailDisconnected, "the panel is not connected", false, false},
		{panel.FailBusy, "the panel is busy with other commands", false, false},
		{panel.FailBusUnavailable, "the servers cannot reach each other", false, true},
		{panel.FailPanelError, "the servers cannot reach each other", true, false},
		{"vendor_refusal", "the servers cannot reach each other", true, false},
	} {
		// The failure arrives wrapped, as it does from the link.
		err := fmt.Errorf("send users.get: %w", &panel.CommandFailure{Code: tc.failure, Message: "the servers cannot reach each other"})
		got := classify(err)
		if got.code != tc.failure || got.message != tc.message || got.permanent != tc.permanent || got.uncounted != tc.uncounted {
			t.Errorf("%s: %+v, want message %q, permanent %v, uncounted %v", tc.failure, *got, tc.message, tc.permanent, tc.uncounted)
		}
	}
}

func TestClassify_RunErrorsCancellationAndAnythingElse(t *testing.T) {
	own := &runError{code: "users_refused", message: "m", permanent: true}
	if got := classify(fmt.Errorf("push: %w", own)); got != own {
		t.Errorf("a run error is kept as it is: %+v", got)
	}
	if got := classify(fmt.Errorf("read: %w", context.Canceled)); got.code != "cancelled" || !got.permanent {
		t.Errorf("cancelled: %+v", got)
	}
	got := classify(errors.New("database is locked: SELECT secret FROM users"))
	if got.code != "internal" || got.permanent || got.uncounted || strings.Contains(got.message, "database") {
		t.Errorf("an unknown error is a transient internal failure in words that give nothing away: %+v", got)
	}
}

func TestBackoff_GrowsFromTheBaseToTheCapWithJitterInTheUpperHalf(t *testing.T) {
	c := &completer{retryBase: 2 * time.Second, retryMax: time.Minute}
	for _, tc := range []struct {
		attempt int
		ceiling time.Duration
	}{
		{1, 2 * time.Second},
		{2, 4 * time.Second},
		{3, 8 * time.Second},
		{5, 32 * time.Second},
		{6, time.Minute},
		{40, time.Minute},
	} {
		low, high := tc.ceiling, time.Duration(0)
		for range 200 {
			d := c.backoff(tc.attempt)
			low, high = min(low, d), max(high, d)
		}
		if low < tc.ceiling/2 || high > tc.ceiling {
			t.Errorf("attempt %d waits %v to %v, want within %v to %v", tc.attempt, low, high, tc.ceiling/2, tc.ceiling)
		}
		if low == high {
			t.Errorf("attempt %d always waits %v: runs failing together would retry together", tc.attempt, low)
		}
	}
}

func TestValidateUsers_OutOfBoundsAnswers_RefusedSayingWhy(t *testing.T) {
	ann := panel.User{Number: 7, Name: "Ann", Authority: panel.AuthorityStandard, Partitions: []int{1}}
	with := func(mod func(*panel.User)) panel.UsersGetResult {
		u := ann
		mod(&u)
		return panel.UsersGetResult{Full: true, Users: []panel.User{u}}
	}
	many := panel.UsersGetResult{Full: true}
	for n := 1; n <= maxPanelUsers+1; n++ {
		many.Users = append(many.Users, panel.User{Number: n%maxUserNumber + 1, Authority: panel.AuthorityGuest})
	}
	for want, res := range map[string]panel.UsersGetResult{
		"user number 0 is outside":         with(func(u *panel.User) { u.Number = 0 }),
		"user number 10000 is outside":     with(func(u *panel.User) { u.Number = 10000 }),
		"user number 7 appears twice":      {Full: true, Users: []panel.User{ann, ann}},
		"unknown authority \"boss\"":       with(func(u *panel.User) { u.Authority = "boss" }),
		"partition 65 is outside":          with(func(u *panel.User) { u.Partitions = []int{65} }),
		"partition 0 is outside":           with(func(u *panel.User) { u.Partitions = []int{0} }),
		"e-mail is longer than 254":        with(func(u *panel.User) { u.Email = strings.Repeat("a", 250) + "@x.io" }),
		"code is longer than 16":           with(func(u *panel.User) { u.Code = strings.Repeat("1", 17) }),
		"too many partitions":              with(func(u *panel.User) { u.Partitions = make([]int, maxPartitionNo+1) }),
		"watermark is longer than 64":      {Full: true, Watermark: strings.Repeat("w", 65)},
		"removed user number 0 is outside": {Removed: []int{0}},
		"10001 users is more than":         many,
	} {
		if err := validateUsers(res); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v, want a refusal saying %q", err, want)
		}
	}
	full := ann
	full.Email, full.AccessSchedule, full.Code, full.Partitions = "ann@example.com", "weekdays", "1234", []int{1, 64}
	if err := validateUsers(panel.UsersGetResult{Full: true, Watermark: "w1", Users: []panel.User{full}, Removed: []int{9999}}); err != nil {
		t.Fatalf("a valid answer: %v", err)
	}
}
