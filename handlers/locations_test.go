package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
)

func TestLocations_CreateGetListUpdate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		r := tb.do(t, "POST", "/v1/locations", owner, map[string]any{
			"name": "Main Street", "group": "Retail", "panel_serial": "PNL-1001",
			"settings": map[string]any{"sync_interval_minutes": 60, "report_emails": []string{"ops@example.com"}},
		})
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		var created struct {
			Location     locationResp `json:"location"`
			DeviceSecret string       `json:"device_secret"`
		}
		r.json(t, &created)
		loc := created.Location
		if !strings.HasPrefix(created.DeviceSecret, "psd_") || len(created.DeviceSecret) < 40 {
			t.Fatalf("device secret %q", created.DeviceSecret)
		}
		if loc.Panel.Serial != "PNL-1001" || loc.Panel.Connection != "disconnected" || loc.Sync.Status != "never" || loc.Group != "Retail" || loc.Settings.SyncIntervalMinutes != 60 {
			t.Fatalf("created location %+v", loc)
		}
		if r.header.Get("Location") != "/v1/locations/"+loc.ID {
			t.Errorf("Location header %q", r.header.Get("Location"))
		}

		got := tb.do(t, "GET", "/v1/locations/"+loc.ID, owner, nil)
		if got.status != http.StatusOK || strings.Contains(string(got.body), created.DeviceSecret) || strings.Contains(string(got.body), "secret") {
			t.Fatalf("get: %d %s (the device secret must never be shown again)", got.status, got.body)
		}
		for _, key := range []string{`"panel":{`, `"sync":{`, `"last_seen_at":null`, `"force_pending":false`, `"next_scheduled_at":"`, `"users_synced_at":null`} {
			if !strings.Contains(string(got.body), key) {
				t.Errorf("location lacks %s: %s", key, got.body)
			}
		}

		upd := tb.do(t, "PATCH", "/v1/locations/"+loc.ID, owner, map[string]any{"name": "Main St.", "settings": map[string]any{"auto_apply": false}})
		if upd.status != http.StatusOK {
			t.Fatalf("update: %d %s", upd.status, upd.body)
		}
		var updated locationResp
		upd.json(t, &updated)
		if updated.Name != "Main St." || updated.Group != "Retail" {
			t.Fatalf("updated %+v", updated)
		}

		list := tb.do(t, "GET", "/v1/locations", owner, nil)
		var page struct {
			Items      []locationResp `json:"items"`
			NextCursor *string        `json:"next_cursor"`
		}
		list.json(t, &page)
		if len(page.Items) != 1 || page.Items[0].ID != loc.ID || page.NextCursor != nil {
			t.Fatalf("list: %s", list.body)
		}
	})
}

func TestLocations_ListPagesWithCursorAndGroup(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		for i := range 5 {
			tb.createLocation(t, owner, fmt.Sprintf("Site %02d", i), fmt.Sprintf("PNL-%04d", i))
		}
		var ids []string
		path := "/v1/locations?limit=2"
		for {
			r := tb.do(t, "GET", path, owner, nil)
			if r.status != http.StatusOK {
				t.Fatalf("list: %d %s", r.status, r.body)
			}
			var page struct {
				Items      []locationResp `json:"items"`
				NextCursor *string        `json:"next_cursor"`
			}
			r.json(t, &page)
			for _, l := range page.Items {
				ids = append(ids, l.Name)
			}
			if page.NextCursor == nil {
				break
			}
			path = "/v1/locations?limit=2&cursor=" + *page.NextCursor
		}
		if fmt.Sprint(ids) != "[Site 00 Site 01 Site 02 Site 03 Site 04]" {
			t.Fatalf("paged names %v", ids)
		}
		for _, bad := range []string{"?limit=0", "?limit=201", "?limit=x", "?cursor=%25%25"} {
			r := tb.do(t, "GET", "/v1/locations"+bad, owner, nil)
			if r.status != http.StatusBadRequest || r.problem(t).Code != "invalid_request" {
				t.Errorf("%s: %d %s", bad, r.status, r.body)
			}
		}
		r := tb.do(t, "GET", "/v1/locations?group=Nowhere", owner, nil)
		if !strings.Contains(string(r.body), `"items":[]`) {
			t.Errorf("unknown group: %s", r.body)
		}
	})
}

func TestLocations_OtherAccount_Answers404(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		ownerA := tb.signIn(t, "owner@a.test").AccessToken
		ownerB := tb.signIn(t, "owner@b.test").AccessToken
		loc := tb.createLocation(t, ownerA, "A's site", "PNL-A001")
		for _, req := range []struct {
			method string
			body   any
		}{{"GET", nil}, {"PATCH", map[string]any{"name": "mine now"}}} {
			r := tb.do(t, req.method, "/v1/locations/"+loc.ID, ownerB, req.body)
			if r.status != http.StatusNotFound || r.problem(t).Code != "not_found" {
				t.Errorf("%s another account's location: %d %s", req.method, r.status, r.body)
			}
		}
		r := tb.do(t, "GET", "/v1/locations", ownerB, nil)
		if strings.Contains(string(r.body), loc.ID) {
			t.Fatalf("another account's location is listed: %s", r.body)
		}
		if r := tb.do(t, "GET", "/v1/locations/"+loc.ID, ownerA, nil); r.status != http.StatusOK {
			t.Fatalf("own location: %d", r.status)
		}
	})
}

func TestLocations_MemberMayReadButNotChange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		member := tb.signIn(t, "member@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Site", "PNL-0001")
		if r := tb.do(t, "GET", "/v1/locations/"+loc.ID, member, nil); r.status != http.StatusOK {
			t.Fatalf("member read: %d", r.status)
		}
		beforeLoc, beforeAudit := tb.counts(t)
		r := tb.do(t, "POST", "/v1/locations", member, map[string]any{"name": "x", "panel_serial": "PNL-0002"})
		if r.status != http.StatusForbidden || r.problem(t).Code != "forbidden" {
			t.Fatalf("member create: %d %s", r.status, r.body)
		}
		if r := tb.do(t, "PATCH", "/v1/locations/"+loc.ID, member, map[string]any{"name": "x"}); r.status != http.StatusForbidden {
			t.Fatalf("member update: %d", r.status)
		}
		if l, a := tb.counts(t); l != beforeLoc || a != beforeAudit {
			t.Fatalf("a refused request wrote rows: locations %d→%d, audit %d→%d", beforeLoc, l, beforeAudit, a)
		}
	})
}

func TestLocations_BadInput_Answers4xxAndWritesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		existing := tb.createLocation(t, owner, "Existing", "PNL-0001")
		cases := []struct {
			name        string
			method      string
			path        string
			body        any
			contentType string
			status      int
			code        string
			field       string
		}{
			{"malformed JSON", "POST", "/v1/locations", `{"name": "x",`, "", 400, "invalid_request", ""},
			{"not an object", "POST", "/v1/locations", `[1,2]`, "", 400, "invalid_request", ""},
			{"two values", "POST", "/v1/locations", `{"name":"a","panel_serial":"PNL-0009"} {}`, "", 400, "invalid_request", ""},
			{"unknown field", "POST", "/v1/locations", `{"name":"a","panel_serial":"PNL-0009","colour":"red"}`, "", 400, "invalid_request", "colour"},
			{"wrong type", "POST", "/v1/locations", `{"name":5,"panel_serial":"PNL-0009"}`, "", 400, "invalid_request", "name"},
			{"missing name", "POST", "/v1/locations", `{"panel_serial":"PNL-0009"}`, "", 400, "invalid_request", "name"},
			{"bad serial", "POST", "/v1/locations", `{"name":"a","panel_serial":"no spaces allowed"}`, "", 400, "invalid_request", "panel_serial"},
			{"duplicate serial", "POST", "/v1/locations", `{"name":"a","panel_serial":"PNL-0001"}`, "", 409, "conflict", "panel_serial"},
			{"bad interval", "POST", "/v1/locations", `{"name":"a","panel_serial":"PNL-0009","settings":{"sync_interval_minutes":1}}`, "", 400, "invalid_request", "settings.sync_interval_minutes"},
			{"unknown nested field", "PATCH", "/v1/locations/" + existing.ID, `{"settings":{"colour":"red"}}`, "", 400, "invalid_request", "settings.colour"},
			{"empty patch", "PATCH", "/v1/locations/" + existing.ID, `{}`, "", 400, "invalid_request", ""},
			{"empty body", "POST", "/v1/locations", ``, "", 400, "invalid_request", ""},
			{"wrong content type", "POST", "/v1/locations", `{"name":"a","panel_serial":"PNL-0009"}`, "text/plain", 415, "unsupported_media_type", ""},
		}
		beforeLoc, beforeAudit := tb.counts(t)
		for _, tc := range cases {
			var headers []string
			if tc.contentType != "" {
				headers = []string{"Content-Type", tc.contentType}
			}
			r := tb.do(t, tc.method, tc.path, owner, tc.body, headers...)
			if r.status != tc.status {
				t.Errorf("%s: status %d, want %d: %s", tc.name, r.status, tc.status, r.body)
				continue
			}
			p := r.problem(t)
			if p.Code != tc.code || p.Field != tc.field || p.Status != tc.status || p.Detail == "" || p.Title == "" || p.Type == "" {
				t.Errorf("%s: problem %+v, want code %s field %q", tc.name, p, tc.code, tc.field)
			}
		}
		if l, a := tb.counts(t); l != beforeLoc || a != beforeAudit {
			t.Fatalf("refused requests wrote rows: locations %d→%d, audit %d→%d", beforeLoc, l, beforeAudit, a)
		}
		r := tb.do(t, "GET", "/v1/locations/"+existing.ID, owner, nil)
		var after locationResp
		r.json(t, &after)
		if after.Name != "Existing" {
			t.Fatalf("a refused update changed the location: %+v", after)
		}
	})
}

func TestUnknownRoute_AnswersProblem404(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		for _, path := range []string{"/v1/nothing-here", "/nope"} {
			r := tb.do(t, "GET", path, "", nil)
			if r.status != http.StatusNotFound || r.problem(t).Code != "not_found" {
				t.Errorf("%s: %d %s", path, r.status, r.body)
			}
		}
	})
}

// TestOversizedBody_Answers413 goes through a real socket: the body limit
// is enforced by the HTTP server before routing, which app.Test bypasses.
func TestOversizedBody_Answers413(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		base := tb.serve(t)
		huge := `{"name":"` + strings.Repeat("x", 70*1024) + `","panel_serial":"PNL-0009"}`
		req, _ := http.NewRequest("POST", base+"/v1/locations", strings.NewReader(huge))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+owner)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		r := response{status: resp.StatusCode, header: resp.Header, body: raw}
		if r.status != http.StatusRequestEntityTooLarge || r.problem(t).Code != "payload_too_large" {
			t.Fatalf("oversized body: %d %s", r.status, r.body)
		}
		if l, _ := tb.counts(t); l != 0 {
			t.Fatalf("oversized request wrote %d locations", l)
		}
	})
}

// syncCauseResp is the part of a location's sync block that says why it
// is in its status.
type syncCauseResp struct {
	ID   string `json:"id"`
	Sync struct {
		Status      string `json:"status"`
		LastFailure *struct {
			RunID   string `json:"run_id"`
			Code    string `json:"code"`
			Message string `json:"message"`
			At      string `json:"at"`
		} `json:"last_failure"`
		HeldRunID *string `json:"held_run_id"`
	} `json:"sync"`
}

func TestLocations_SyncPointsAtTheFailedRunOrTheHeldRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		ctx := context.Background()
		owner := tb.signIn(t, "owner@a.test").AccessToken
		failing := tb.createLocation(t, owner, "A Failing Site", "PNL-CAUSE-1")
		held := tb.createLocation(t, owner, "B Held Site", "PNL-CAUSE-2")
		untouched := tb.createLocation(t, owner, "C Untouched Site", "PNL-CAUSE-3")
		tb.serve(t)

		// Every panel is away, so a batch's runs fail at once.
		fail := func(locationID string) string {
			t.Helper()
			b := tb.startBatch(t, owner, map[string]any{"kind": "users", "scope": "locations", "location_ids": []string{locationID}})
			tb.waitBatchesDone(t, owner)
			runs := tb.listRuns(t, owner, "?batch_id="+b.ID)
			if len(runs.Items) != 1 || runs.Items[0].State != "failed" {
				t.Fatalf("the batch's runs: %+v", runs)
			}
			return runs.Items[0].ID
		}
		fail(failing.ID)
		latest := fail(failing.ID)

		// Two runs wait for Apply at the held site, which had failed too.
		fail(held.ID)
		var heldIDs []string
		for _, kind := range []models.RunKind{models.RunUsers, models.RunImport} {
			now := time.Now().UTC()
			r := models.Run{
				ID: models.NewID(), AccountID: tb.acctA.ID, LocationID: held.ID, Kind: kind, Mode: models.ModeFull,
				TriggerSource: models.TriggerApp, State: models.RunAwaitingApply, CreatedAt: now, AvailableAt: now,
			}
			if err := tb.store.DB().Create(&r).Error; err != nil {
				t.Fatal(err)
			}
			heldIDs = append(heldIDs, r.ID)
		}
		if err := tb.store.RecordRunHeld(ctx, held.ID); err != nil {
			t.Fatal(err)
		}

		read := func() map[string]syncCauseResp {
			t.Helper()
			r := tb.do(t, "GET", "/v1/locations", owner, nil)
			var page struct {
				Items []syncCauseResp `json:"items"`
			}
			r.json(t, &page)
			out := map[string]syncCauseResp{}
			for _, l := range page.Items {
				one := tb.do(t, "GET", "/v1/locations/"+l.ID, owner, nil)
				if !strings.Contains(string(one.body), `"last_failure":`) || !strings.Contains(string(one.body), `"held_run_id":`) {
					t.Errorf("location %s lacks last_failure or held_run_id: %s", l.ID, one.body)
				}
				var got syncCauseResp
				one.json(t, &got)
				alone, _ := json.Marshal(got)
				listed, _ := json.Marshal(l)
				if string(alone) != string(listed) {
					t.Errorf("location %s reads %s alone, %s in the list", l.ID, alone, listed)
				}
				out[l.ID] = l
			}
			return out
		}
		locs := read()

		f := locs[failing.ID].Sync
		if f.Status != "sync_failure" || f.HeldRunID != nil || f.LastFailure == nil {
			t.Fatalf("the failing site's sync: %+v", f)
		}
		if lf := f.LastFailure; lf.RunID != latest || lf.Code != "panel_disconnected" || !strings.HasPrefix(lf.Message, "the panel is not connected") || lf.At == "" {
			t.Errorf("last_failure %+v, want the latest failed run %s", *lf, latest)
		}
		run := tb.do(t, "GET", "/v1/runs/"+latest, owner, nil)
		var failed struct {
			FinishedAt string `json:"finished_at"`
		}
		run.json(t, &failed)
		if f.LastFailure.At != failed.FinishedAt {
			t.Errorf("last_failure.at %s, the run finished at %s", f.LastFailure.At, failed.FinishedAt)
		}

		h := locs[held.ID].Sync
		if h.Status != "held" || h.LastFailure != nil || h.HeldRunID == nil || *h.HeldRunID != heldIDs[1] {
			t.Errorf("the held site's sync: %+v, want held_run_id %s (the newest held run)", h, heldIDs[1])
		}
		if u := locs[untouched.ID].Sync; u.Status != "never" || u.LastFailure != nil || u.HeldRunID != nil {
			t.Errorf("the untouched site's sync: %+v", u)
		}

		// A success after the failure clears it.
		now := time.Now().UTC()
		ok := models.Run{
			ID: models.NewID(), AccountID: tb.acctA.ID, LocationID: failing.ID, Kind: models.RunRefresh, Mode: models.ModeFull,
			TriggerSource: models.TriggerApp, State: models.RunSucceeded, CreatedAt: now, AvailableAt: now, FinishedAt: &now,
		}
		if err := tb.store.DB().Create(&ok).Error; err != nil {
			t.Fatal(err)
		}
		if err := tb.store.RecordRunFinished(ctx, failing.ID, models.RunRefresh, true, now); err != nil {
			t.Fatal(err)
		}
		if f := read()[failing.ID].Sync; f.Status != "ok" || f.LastFailure != nil || f.HeldRunID != nil {
			t.Errorf("after a success the site's sync is %+v", f)
		}
	})
}
