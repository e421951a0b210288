package models_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

func ptr[T any](v T) *T { return &v }

func createLocation(t *testing.T, store *models.Store, acct models.Account, name, serial string) models.LocationView {
	t.Helper()
	v, err := store.CreateLocation(context.Background(), models.SystemActor(acct.ID, "test"), models.NewLocation{
		Settings:    models.LocationSettings{Name: ptr(name)},
		PanelSerial: serial,
		SecretHash:  "digest",
	})
	if err != nil {
		t.Fatalf("create location %s: %v", name, err)
	}
	return v
}

func TestCreateLocation_DefaultsPanelAndAudit(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		acct := mustAccount(t, store, "A")
		v := createLocation(t, store, acct, "  Main Street  ", "SER-0001")
		if v.Location.Name != "Main Street" {
			t.Errorf("name %q was not trimmed", v.Location.Name)
		}
		if v.Location.SyncStatus != models.SyncNever || v.Panel.Connection != models.PanelDisconnected {
			t.Errorf("new location: sync %s, panel %s", v.Location.SyncStatus, v.Panel.Connection)
		}
		if v.Location.SyncIntervalMinutes != models.DefaultSyncIntervalMinutes || !v.Location.AutoApply || v.Location.NextScheduledAt == nil {
			t.Errorf("defaults not applied: %+v", v.Location)
		}
		got, err := store.Location(ctx, acct.ID, v.Location.ID)
		if err != nil || got.Panel.Serial != "SER-0001" {
			t.Fatalf("reload: %+v, %v", got, err)
		}
		entries, _, err := store.ListAudit(ctx, models.AuditQuery{AccountID: acct.ID, Limit: 10})
		if err != nil || len(entries) != 1 || entries[0].Action != "location.create" {
			t.Fatalf("audit entries %+v, %v", entries, err)
		}
	})
}

func TestCreateLocation_DuplicateSerial_ConflictsAndWritesNothing(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		a := mustAccount(t, store, "A")
		b := mustAccount(t, store, "B")
		createLocation(t, store, a, "First", "SER-0001")
		_, err := store.CreateLocation(ctx, models.SystemActor(b.ID, "test"), models.NewLocation{
			Settings: models.LocationSettings{Name: ptr("Second")}, PanelSerial: "SER-0001", SecretHash: "d",
		})
		if models.ErrorCode(err) != models.CodeConflict {
			t.Fatalf("duplicate serial gave %v, want conflict", err)
		}
		views, _, err := store.ListLocations(ctx, models.LocationQuery{AccountID: b.ID, Limit: 10})
		if err != nil || len(views) != 0 {
			t.Fatalf("the refused location was kept: %d rows, %v", len(views), err)
		}
		if entries, _, _ := store.ListAudit(ctx, models.AuditQuery{AccountID: b.ID, Limit: 10}); len(entries) != 0 {
			t.Fatalf("the refused location was audited: %+v", entries)
		}
	})
}

func TestLocation_OtherAccount_IsNotFound(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		a := mustAccount(t, store, "A")
		b := mustAccount(t, store, "B")
		v := createLocation(t, store, a, "Mine", "SER-0001")
		if _, err := store.Location(ctx, b.ID, v.Location.ID); models.ErrorCode(err) != models.CodeNotFound {
			t.Fatalf("another account's location gave %v", err)
		}
		_, err := store.UpdateLocation(ctx, models.SystemActor(b.ID, "test"), v.Location.ID, models.LocationSettings{Name: ptr("Stolen")})
		if models.ErrorCode(err) != models.CodeNotFound {
			t.Fatalf("updating another account's location gave %v", err)
		}
	})
}

func TestListLocations_CursorPagesThroughEveryLocationOnce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		a := mustAccount(t, store, "A")
		other := mustAccount(t, store, "Other")
		createLocation(t, store, other, "Foreign", "OTHER-001")
		// Equal names force the id tie-breaker.
		for i := range 7 {
			createLocation(t, store, a, fmt.Sprintf("Site %d", i%3), fmt.Sprintf("SER-%04d", i))
		}
		seen := map[string]bool{}
		cursor := ""
		pages := 0
		for {
			views, next, err := store.ListLocations(ctx, models.LocationQuery{AccountID: a.ID, Cursor: cursor, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, v := range views {
				if seen[v.Location.ID] {
					t.Fatalf("location %s listed twice", v.Location.ID)
				}
				if v.Location.AccountID != a.ID {
					t.Fatalf("another account's location listed")
				}
				seen[v.Location.ID] = true
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != 7 || pages != 3 {
			t.Fatalf("listed %d locations in %d pages, want 7 in 3", len(seen), pages)
		}
		if _, _, err := store.ListLocations(ctx, models.LocationQuery{AccountID: a.ID, Cursor: "garbage!", Limit: 3}); models.ErrorCode(err) != models.CodeInvalidRequest {
			t.Fatalf("bad cursor gave %v", err)
		}
	})
}

func TestUpdateLocation_ValidatesEveryFieldAndAuditsTheChange(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		a := mustAccount(t, store, "A")
		v := createLocation(t, store, a, "Site", "SER-0001")
		actor := models.SystemActor(a.ID, "test")
		bad := []struct {
			field string
			set   models.LocationSettings
		}{
			{"name", models.LocationSettings{Name: ptr("   ")}},
			{"settings.sync_interval_minutes", models.LocationSettings{SyncIntervalMinutes: ptr(1)}},
			{"settings.safety_threshold_percent", models.LocationSettings{SafetyThresholdPercent: ptr(0)}},
			{"settings.report_emails", models.LocationSettings{ReportEmails: ptr([]string{"not an address"})}},
		}
		for _, tc := range bad {
			_, err := store.UpdateLocation(ctx, actor, v.Location.ID, tc.set)
			var de *models.Error
			if models.ErrorCode(err) != models.CodeInvalidRequest || !asError(err, &de) || de.Field != tc.field {
				t.Errorf("%s: got %v", tc.field, err)
			}
		}
		got, err := store.UpdateLocation(ctx, actor, v.Location.ID, models.LocationSettings{
			SyncIntervalMinutes: ptr(60), ReportEmails: ptr([]string{"Ops@Example.com"}), AutoApply: ptr(false),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.Location.SyncIntervalMinutes != 60 || got.Location.AutoApply || fmt.Sprint(got.Location.ReportEmailList()) != "[ops@example.com]" {
			t.Fatalf("update not applied: %+v", got.Location)
		}
		if got.Location.Name != "Site" {
			t.Fatalf("unset field changed: name %q", got.Location.Name)
		}
		entries, _, _ := store.ListAudit(ctx, models.AuditQuery{AccountID: a.ID, Limit: 10})
		if len(entries) != 2 || entries[0].Action != "location.update" {
			t.Fatalf("audit: %+v", entries)
		}
		// The entry keeps only what changed, as it was and as it is.
		if entries[0].Before != `{"auto_apply":true,"report_emails":[],"sync_interval_minutes":1440}` ||
			entries[0].After != `{"auto_apply":false,"report_emails":["ops@example.com"],"sync_interval_minutes":60}` {
			t.Fatalf("audit values: before %s, after %s", entries[0].Before, entries[0].After)
		}
	})
}

func asError(err error, target **models.Error) bool {
	e, ok := err.(*models.Error)
	if ok {
		*target = e
	}
	return ok
}
