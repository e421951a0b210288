package models_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

// rankedLocation creates a location of the rank and queues a users run
// there, as the engine does: the run carries the location's rank.
func rankedLocation(t *testing.T, store *models.Store, acct models.Account, name string, rank int, at time.Time) (models.LocationView, models.Run) {
	t.Helper()
	ctx := context.Background()
	v := createLocation(t, store, acct, name, "SER-"+name)
	v, err := store.UpdateLocation(ctx, models.SystemActor(acct.ID, "test"), v.Location.ID, models.LocationSettings{Rank: ptr(rank)})
	if err != nil {
		t.Fatalf("rank %s: %v", name, err)
	}
	r, _, err := store.EnqueueRun(ctx, models.Run{AccountID: acct.ID, LocationID: v.Location.ID, Kind: models.RunUsers,
		Mode: models.ModeFull, TriggerSource: models.TriggerApp, AvailableAt: at, WorkerRank: v.Location.WorkerRank})
	if err != nil {
		t.Fatal(err)
	}
	return v, r
}

func claimedLocations(t *testing.T, runs []models.Run, names map[string]string) []string {
	t.Helper()
	var out []string
	for _, r := range runs {
		out = append(out, names[r.LocationID])
	}
	slices.Sort(out)
	return out
}

func TestClaimRuns_Ranks_TakeOnlyServedRanksAndRankZeroEverywhere(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		acct := mustAccount(t, store, "A")
		now := time.Now().UTC()
		names := map[string]string{}
		for _, l := range []struct {
			name string
			rank int
		}{{"zero", 0}, {"one", 1}, {"two", 2}, {"three", 3}} {
			v, _ := rankedLocation(t, store, acct, l.name, l.rank, now.Add(-time.Second))
			names[v.Location.ID] = l.name
		}

		// A node serving ranks 1 and 2 leaves rank 0 to be shared and
		// rank 3 to its own nodes; asked for one run it takes the oldest
		// of its ranks only.
		got, err := store.ClaimRuns(ctx, "node-12", 10, now, now.Add(time.Minute), 0, []int{2, 1})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"one", "two", "zero"}; !slices.Equal(claimedLocations(t, got, names), want) {
			t.Fatalf("node serving 1,2 claimed %v, want %v", claimedLocations(t, got, names), want)
		}
		// A node serving no rank but 0 finds nothing left for it.
		got, err = store.ClaimRuns(ctx, "node-0", 10, now, now.Add(time.Minute), 0, nil)
		if err != nil || len(got) != 0 {
			t.Fatalf("node serving rank 0 only claimed %v, %v", claimedLocations(t, got, names), err)
		}
		got, err = store.ClaimRuns(ctx, "node-3", 10, now, now.Add(time.Minute), 0, []int{3})
		if err != nil || !slices.Equal(claimedLocations(t, got, names), []string{"three"}) {
			t.Fatalf("node serving 3 claimed %v, %v", claimedLocations(t, got, names), err)
		}

		// Leases that expire are taken over only by a node of the run's
		// rank (or any node, for rank 0).
		later := now.Add(2 * time.Minute)
		got, err = store.ClaimRuns(ctx, "node-0b", 10, later, later.Add(time.Minute), 0, nil)
		if err != nil || !slices.Equal(claimedLocations(t, got, names), []string{"zero"}) {
			t.Fatalf("takeover by a rank-0 node: %v, %v", claimedLocations(t, got, names), err)
		}
		got, err = store.ClaimRuns(ctx, "node-2", 10, later, later.Add(time.Minute), 0, []int{2})
		if err != nil || !slices.Equal(claimedLocations(t, got, names), []string{"two"}) {
			t.Fatalf("takeover by a rank-2 node: %v, %v", claimedLocations(t, got, names), err)
		}
	})
}

func TestUpdateLocation_Rank_MovesOpenRunsKeepsFinishedOnesAndIsAudited(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		acct := mustAccount(t, store, "A")
		actor := models.SystemActor(acct.ID, "test")
		now := time.Now().UTC()
		v, queued := rankedLocation(t, store, acct, "site", 0, now.Add(time.Hour))
		done := models.Run{ID: models.NewID(), AccountID: acct.ID, LocationID: v.Location.ID, Kind: models.RunRefresh,
			Mode: models.ModeFull, TriggerSource: models.TriggerApp, State: models.RunSucceeded, AvailableAt: now}
		if err := store.DB().Create(&done).Error; err != nil {
			t.Fatal(err)
		}

		for _, bad := range []int{-1, models.MaxRank + 1} {
			_, err := store.UpdateLocation(ctx, actor, v.Location.ID, models.LocationSettings{Rank: ptr(bad)})
			var de *models.Error
			if !errors.As(err, &de) || de.Code != models.CodeInvalidRequest || de.Field != "rank" {
				t.Errorf("rank %d: %v, want invalid_request on rank", bad, err)
			}
		}
		got, err := store.UpdateLocation(ctx, actor, v.Location.ID, models.LocationSettings{Rank: ptr(7)})
		if err != nil || got.Location.WorkerRank != 7 {
			t.Fatalf("set rank 7: %+v, %v", got.Location, err)
		}
		for id, want := range map[string]int{queued.ID: 7, done.ID: 0} {
			var r models.Run
			if err := store.DB().Where("id = ?", id).Take(&r).Error; err != nil {
				t.Fatal(err)
			}
			if r.WorkerRank != want {
				t.Errorf("run in state %s has rank %d, want %d", r.State, r.WorkerRank, want)
			}
		}
		entries, _, err := store.ListAudit(ctx, models.AuditQuery{AccountID: acct.ID, Limit: 1})
		if err != nil || len(entries) != 1 || entries[0].Action != "location.update" || !strings.Contains(entries[0].After, `"rank":7`) {
			t.Fatalf("audit of the rank change: %+v, %v", entries, err)
		}
	})
}

func TestSetGroupRank_SetsEveryLocationOfTheGroupOnceAudited(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		a, b := mustAccount(t, store, "A"), mustAccount(t, store, "B")
		actor := models.SystemActor(a.ID, "test")
		var north []string
		for i, group := range []string{"North", "North", "South"} {
			v := createLocation(t, store, a, fmt.Sprintf("Site %d", i), fmt.Sprintf("SER-%d", i))
			if _, err := store.UpdateLocation(ctx, actor, v.Location.ID, models.LocationSettings{Group: ptr(group)}); err != nil {
				t.Fatal(err)
			}
			if group == "North" {
				north = append(north, v.Location.ID)
			}
		}
		createLocation(t, store, b, "B site", "SER-B")

		n, err := store.SetGroupRank(ctx, actor, "North", 4)
		if err != nil || n != 2 {
			t.Fatalf("set North's rank: %d, %v", n, err)
		}
		var locs []models.Location
		if err := store.DB().Find(&locs).Error; err != nil {
			t.Fatal(err)
		}
		for _, l := range locs {
			want := 0
			if slices.Contains(north, l.ID) {
				want = 4
			}
			if l.WorkerRank != want {
				t.Errorf("%s has rank %d, want %d", l.Name, l.WorkerRank, want)
			}
		}
		entries, _, err := store.ListAudit(ctx, models.AuditQuery{AccountID: a.ID, Action: "group.rank", Limit: 10})
		if err != nil || len(entries) != 1 || !strings.Contains(entries[0].After, `"locations":2`) {
			t.Fatalf("audit of the group's rank: %+v, %v", entries, err)
		}

		for _, tc := range []struct {
			name  string
			actor models.Actor
			group string
			rank  int
			code  string
		}{
			{"unknown group", actor, "West", 1, models.CodeNotFound},
			{"another account's group", models.SystemActor(b.ID, "test"), "North", 1, models.CodeNotFound},
			{"negative rank", actor, "North", -1, models.CodeInvalidRequest},
			{"rank too high", actor, "North", models.MaxRank + 1, models.CodeInvalidRequest},
		} {
			_, err := store.SetGroupRank(ctx, tc.actor, tc.group, tc.rank)
			var de *models.Error
			if !errors.As(err, &de) || de.Code != tc.code {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			}
		}
	})
}

func TestStrandedRuns_CountRanksNoLiveNodeServesAndWarnOncePerEpisode(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		a, b := mustAccount(t, store, "A"), mustAccount(t, store, "B")
		now := time.Now().UTC()
		if err := store.NodeHeartbeat(ctx, "live", "1", now); err != nil {
			t.Fatal(err)
		}
		if err := store.NodeHeartbeat(ctx, "gone", "2", now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		rankedLocation(t, store, a, "a0", 0, now)
		rankedLocation(t, store, a, "a1", 1, now)
		rankedLocation(t, store, a, "a2", 2, now)
		rankedLocation(t, store, a, "a2b", 2, now)
		rankedLocation(t, store, b, "b2", 2, now)
		rankedLocation(t, store, b, "b3", 3, now)

		got, err := store.StrandedRuns(ctx, now.Add(-time.Minute), nil)
		if err != nil {
			t.Fatal(err)
		}
		want := []models.RankBacklog{{AccountID: a.ID, Rank: 2, Queued: 2}, {AccountID: b.ID, Rank: 2, Queued: 1}, {AccountID: b.ID, Rank: 3, Queued: 1}}
		slices.SortFunc(want, func(x, y models.RankBacklog) int {
			if x.Rank != y.Rank {
				return x.Rank - y.Rank
			}
			return strings.Compare(x.AccountID, y.AccountID)
		})
		if !slices.Equal(got, want) {
			t.Fatalf("stranded %+v, want %+v", got, want)
		}
		// The caller serves its own ranks, heartbeat written or not.
		got, err = store.StrandedRuns(ctx, now.Add(-time.Minute), []int{2})
		if err != nil || len(got) != 1 || got[0].Rank != 3 {
			t.Fatalf("stranded with the caller serving 2: %+v, %v", got, err)
		}

		// The first node to notice starts the episode; the others find it
		// started.
		for i, want := range []bool{true, false} {
			started, err := store.MarkStranded(ctx, b.ID, 3, now)
			if err != nil || started != want {
				t.Fatalf("mark %d: %v, %v; want %v", i, started, err, want)
			}
		}
		// Once the rank is served (or its runs are gone) the episode ends,
		// and a new one is warned about anew.
		if err := store.EndStranded(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if started, err := store.MarkStranded(ctx, b.ID, 3, now); err != nil || !started {
			t.Fatalf("mark after the episode ended: %v, %v", started, err)
		}
	})
}

func TestParseRanks_AcceptsAListOfDistinctRanks(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"", nil, true},
		{"1", []int{1}, true},
		{" 1, 2 ,1000", []int{1, 2, 1000}, true},
		{"0,3", []int{0, 3}, true},
		{"1,1", nil, false},
		{"-1", nil, false},
		{"1001", nil, false},
		{"1,,2", nil, false},
		{"a", nil, false},
		{strings.Repeat("1,", models.MaxNodeRanks) + "1", nil, false},
	} {
		got, err := models.ParseRanks(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("ParseRanks(%q) = %v, %v", tc.in, got, err)
		}
	}
	if got := models.ServedRanks([]int{3, 1, 0}); !slices.Equal(got, []int{0, 1, 3}) {
		t.Errorf("ServedRanks = %v", got)
	}
}
