package handlers_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
)

// batchResp is the Batch the tests read.
type batchResp struct {
	ID          string  `json:"id"`
	Kind        string  `json:"kind"`
	State       string  `json:"state"`
	Total       int     `json:"total"`
	Queued      int     `json:"queued"`
	Failed      int     `json:"failed"`
	RequestedBy string  `json:"requested_by"`
	CreatedAt   string  `json:"created_at"`
	FinishedAt  *string `json:"finished_at"`
}

type batchPage struct {
	Items      []batchResp `json:"items"`
	NextCursor *string     `json:"next_cursor"`
}

type runPage struct {
	Items []struct {
		ID         string  `json:"id"`
		LocationID string  `json:"location_id"`
		BatchID    *string `json:"batch_id"`
		State      string  `json:"state"`
	} `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// startBatch asks for an All-Locations sync and returns its batch.
func (tb *testBundle) startBatch(t *testing.T, token string, body map[string]any) batchResp {
	t.Helper()
	r := tb.do(t, "POST", "/v1/sync", token, body)
	if r.status != http.StatusAccepted {
		t.Fatalf("start a batch: %d %s", r.status, r.body)
	}
	var out struct {
		Batch batchResp `json:"batch"`
	}
	r.json(t, &out)
	return out.Batch
}

// getOK reads path as token and decodes its answer, failing the test on
// anything but a 200.
func getOK[T any](t *testing.T, tb *testBundle, token, path string) T {
	t.Helper()
	r := tb.do(t, "GET", path, token, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	var v T
	r.json(t, &v)
	return v
}

// listBatches reads one page of batches, failing on anything but a 200.
func (tb *testBundle) listBatches(t *testing.T, token, query string) batchPage {
	t.Helper()
	return getOK[batchPage](t, tb, token, "/v1/batches"+query)
}

// listRuns reads one page of runs, failing on anything but a 200.
func (tb *testBundle) listRuns(t *testing.T, token, query string) runPage {
	t.Helper()
	return getOK[runPage](t, tb, token, "/v1/runs"+query)
}

// waitBatchesDone waits until every batch of the account has finished.
func (tb *testBundle) waitBatchesDone(t *testing.T, token string) {
	t.Helper()
	apptest.Eventually(t, 10*time.Second, func() (bool, string) {
		for _, b := range tb.listBatches(t, token, "?limit=200").Items {
			if b.State != "done" {
				return false, "batch " + b.ID + " is " + b.State
			}
		}
		return true, ""
	})
}

func TestBatches_List_NewestFirstWithWhoAskedAndWhenItFinished(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		member := tb.signIn(t, "member@a.test").AccessToken
		harbour := tb.createLocation(t, owner, "Harbour Street", "PNL-BATCH-1")
		tb.createLocation(t, owner, "Quay Side", "PNL-BATCH-2")

		// No worker runs yet: the first batch is listed as still running.
		first := tb.startBatch(t, member, map[string]any{"kind": "users", "scope": "all"})
		page := tb.listBatches(t, owner, "")
		if len(page.Items) != 1 || page.NextCursor != nil {
			t.Fatalf("one batch listed as %+v", page)
		}
		if b := page.Items[0]; b.ID != first.ID || b.State != "running" || b.FinishedAt != nil || b.Queued != 2 || b.RequestedBy != "member@a.test" || b.CreatedAt == "" {
			t.Fatalf("a running batch is listed as %+v", b)
		}

		tb.serve(t)
		second := tb.startBatch(t, owner, map[string]any{"kind": "refresh", "scope": "locations", "location_ids": []string{harbour.ID}})
		third := tb.startBatch(t, owner, map[string]any{"kind": "panel", "scope": "all"})
		tb.waitBatchesDone(t, owner)

		// Two pages of two, newest first, through the cursor.
		page = tb.listBatches(t, owner, "?limit=2")
		if len(page.Items) != 2 || page.Items[0].ID != third.ID || page.Items[1].ID != second.ID || page.NextCursor == nil {
			t.Fatalf("first page %+v, want the third and second batches and a cursor", page)
		}
		last := tb.listBatches(t, owner, "?limit=2&cursor="+*page.NextCursor)
		if len(last.Items) != 1 || last.Items[0].ID != first.ID || last.NextCursor != nil {
			t.Fatalf("last page %+v, want the first batch and no cursor", last)
		}
		// Every panel is away, so every child run failed at once.
		b := last.Items[0]
		if b.State != "done" || b.FinishedAt == nil || b.Total != 2 || b.Failed != 2 || b.RequestedBy != "member@a.test" {
			t.Errorf("the finished first batch is listed as %+v", b)
		}
		if b.FinishedAt != nil {
			created, errC := time.Parse(time.RFC3339Nano, b.CreatedAt)
			finished, errF := time.Parse(time.RFC3339Nano, *b.FinishedAt)
			if errC != nil || errF != nil || finished.Before(created) {
				t.Errorf("the batch was created at %s and finished at %s", b.CreatedAt, *b.FinishedAt)
			}
		}

		// The answer for one batch has the same fields.
		var one batchResp
		r := tb.do(t, "GET", "/v1/batches/"+first.ID, owner, nil)
		r.json(t, &one)
		if one.FinishedAt == nil || b.FinishedAt == nil || *one.FinishedAt != *b.FinishedAt {
			t.Errorf("GET /v1/batches/{id} says finished at %v, the list %v", one.FinishedAt, b.FinishedAt)
		}
		one.FinishedAt = b.FinishedAt
		if one != b {
			t.Errorf("GET /v1/batches/{id} answers %+v, the list %+v", one, b)
		}

		// Another account sees none of them.
		other := tb.signIn(t, "owner@b.test").AccessToken
		if page := tb.listBatches(t, other, ""); len(page.Items) != 0 || page.NextCursor != nil {
			t.Errorf("another account lists %+v", page)
		}
	})
}

func TestBatches_List_RefusesBadPaging(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		for _, tc := range []struct{ query, field string }{
			{"?cursor=not-a-cursor", "cursor"},
			{"?limit=0", "limit"},
			{"?limit=201", "limit"},
			{"?limit=ten", "limit"},
			{"?state=done", "state"},
			{"?limit=5&limit=6", "limit"},
		} {
			r := tb.do(t, "GET", "/v1/batches"+tc.query, owner, nil)
			if r.status != http.StatusBadRequest {
				t.Errorf("GET /v1/batches%s: %d %s, want 400", tc.query, r.status, r.body)
				continue
			}
			if p := r.problem(t); p.Code != "invalid_request" || p.Field != tc.field {
				t.Errorf("GET /v1/batches%s: problem %+v, want field %s", tc.query, p, tc.field)
			}
		}
		if page := tb.listBatches(t, owner, "?limit=200"); len(page.Items) != 0 || page.NextCursor != nil {
			t.Errorf("an account without batches lists %+v", page)
		}
	})
}

func TestRuns_FilterByBatch_ListsOnlyThatBatchsRuns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		harbour := tb.createLocation(t, owner, "Harbour Street", "PNL-RUNB-1")
		quay := tb.createLocation(t, owner, "Quay Side", "PNL-RUNB-2")
		tb.serve(t)
		all := tb.startBatch(t, owner, map[string]any{"kind": "users", "scope": "all"})
		one := tb.startBatch(t, owner, map[string]any{"kind": "refresh", "scope": "locations", "location_ids": []string{quay.ID}})
		tb.waitBatchesDone(t, owner)

		page := tb.listRuns(t, owner, "?batch_id="+all.ID)
		if len(page.Items) != 2 {
			t.Fatalf("the all-locations batch lists %d runs, want 2", len(page.Items))
		}
		at := map[string]bool{}
		for _, r := range page.Items {
			if r.BatchID == nil || *r.BatchID != all.ID {
				t.Errorf("run %s of batch %v listed under batch %s", r.ID, r.BatchID, all.ID)
			}
			at[r.LocationID] = true
		}
		if !at[harbour.ID] || !at[quay.ID] {
			t.Errorf("the batch's runs are at %v, want both locations", at)
		}

		// Paging and the other filters still apply.
		first := tb.listRuns(t, owner, "?batch_id="+all.ID+"&limit=1")
		if len(first.Items) != 1 || first.NextCursor == nil {
			t.Fatalf("first page of one: %+v", first)
		}
		rest := tb.listRuns(t, owner, "?batch_id="+all.ID+"&limit=1&cursor="+*first.NextCursor)
		if len(rest.Items) != 1 || rest.Items[0].ID == first.Items[0].ID || rest.NextCursor != nil {
			t.Errorf("second page of one: %+v after %+v", rest, first)
		}
		if p := tb.listRuns(t, owner, "?batch_id="+one.ID+"&location_id="+harbour.ID); len(p.Items) != 0 {
			t.Errorf("the refresh batch lists %d runs at a location it left out", len(p.Items))
		}
		if p := tb.listRuns(t, owner, "?batch_id="+one.ID+"&state=failed&kind=refresh"); len(p.Items) != 1 || p.Items[0].LocationID != quay.ID {
			t.Errorf("the refresh batch's failed runs: %+v", p)
		}

		// A batch the caller cannot see is not found, as a location is.
		other := tb.signIn(t, "owner@b.test").AccessToken
		for _, tc := range []struct{ token, batchID string }{
			{other, all.ID},
			{owner, "00000000-0000-7000-8000-000000000000"},
			{owner, "not-a-batch"},
		} {
			r := tb.do(t, "GET", "/v1/runs?batch_id="+tc.batchID, tc.token, nil)
			if r.status != http.StatusNotFound {
				t.Errorf("runs of batch %q: %d %s, want 404", tc.batchID, r.status, r.body)
				continue
			}
			if p := r.problem(t); p.Code != "not_found" {
				t.Errorf("runs of batch %q: problem %+v", tc.batchID, p)
			}
		}
		if r := tb.do(t, "GET", "/v1/runs?batch_id="+all.ID+"&batch_id="+one.ID, owner, nil); r.status != http.StatusBadRequest {
			t.Errorf("two batch_id parameters: %d %s, want 400", r.status, r.body)
		}
	})
}
