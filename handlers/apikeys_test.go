package handlers_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

// apiKeyResp is the APIKey of the API.
type apiKeyResp struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Prefix    string   `json:"prefix"`
	Scopes    []string `json:"scopes"`
	CreatedBy string   `json:"created_by"`
	Creator   struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"creator"`
	CreatedAt  string  `json:"created_at"`
	LastUsedAt *string `json:"last_used_at"`
	ExpiresAt  *string `json:"expires_at"`
	RevokedAt  *string `json:"revoked_at"`
}

var apiKeyFormat = regexp.MustCompile(`^psk_[a-z2-7]{8}_[A-Za-z0-9_-]{43}$`)

// createKey creates an API key as token and returns it with its secret.
func (tb *testBundle) createKey(t *testing.T, token string, body map[string]any) (apiKeyResp, string) {
	t.Helper()
	r := tb.do(t, "POST", "/v1/api-keys", token, body)
	if r.status != http.StatusCreated {
		t.Fatalf("create API key: %d %s", r.status, r.body)
	}
	var out struct {
		APIKey apiKeyResp `json:"api_key"`
		Secret string     `json:"secret"`
	}
	r.json(t, &out)
	return out.APIKey, out.Secret
}

// keyRows counts the API keys stored, to prove a refused request wrote
// nothing.
func (tb *testBundle) keyRows(t *testing.T) int64 {
	t.Helper()
	var n int64
	if err := tb.store.DB().Model(&models.APIKey{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// auditActions returns the audit actions recorded on the account's keys,
// oldest first, with the kind of actor of each.
func (tb *testBundle) auditActions(t *testing.T, accountID string) []string {
	t.Helper()
	var entries []models.AuditEntry
	err := tb.store.DB().Where("account_id = ? AND target_type = ?", accountID, "api_key").Order("created_at, id").Find(&entries).Error
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Action + " by " + e.ActorKind + " " + e.ActorID
	}
	return out
}

// connectPanel marks the location's panel as linked, so that a sync can
// be requested without a simulated panel behind it.
func (tb *testBundle) connectPanel(t *testing.T, locationID string) {
	t.Helper()
	err := tb.store.DB().Model(&models.Panel{}).Where("location_id = ?", locationID).Update("connection", models.PanelConnected).Error
	if err != nil {
		t.Fatal(err)
	}
}

func TestAPIKeys_CreateShowsTheSecretOnce_ListAndGetNever(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		expires := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
		r := tb.do(t, "POST", "/v1/api-keys", owner, map[string]any{
			"name": "  Nightly import  ", "scopes": []string{"sync", "read"}, "expires_at": expires.Format(time.RFC3339),
		})
		if r.status != http.StatusCreated || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("create: %d Cache-Control %q %s", r.status, r.header.Get("Cache-Control"), r.body)
		}
		var created struct {
			APIKey apiKeyResp `json:"api_key"`
			Secret string     `json:"secret"`
		}
		r.json(t, &created)
		k, secret := created.APIKey, created.Secret
		if !apiKeyFormat.MatchString(secret) || k.Prefix != secret[:12] {
			t.Fatalf("secret %q with prefix %q is not psk_ + 8 lookup characters + _ + 32 bytes", secret, k.Prefix)
		}
		if k.Name != "Nightly import" || fmt.Sprint(k.Scopes) != "[sync read]" || k.CreatedBy != tb.ownerA.ID ||
			k.ExpiresAt == nil || *k.ExpiresAt != expires.Format(time.RFC3339) || k.LastUsedAt != nil || k.RevokedAt != nil {
			t.Fatalf("created key %+v", k)
		}
		// Who made the key is named, not only identified.
		if k.Creator.ID != tb.ownerA.ID || k.Creator.Email != "owner@a.test" || k.Creator.Name != tb.ownerA.Name || k.Creator.Name == "" {
			t.Fatalf("created key's creator %+v, want %s (%s)", k.Creator, tb.ownerA.Name, tb.ownerA.Email)
		}
		if loc := r.header.Get("Location"); loc != "/v1/api-keys/"+k.ID {
			t.Errorf("Location %q", loc)
		}

		// Only the digest is stored.
		var row models.APIKey
		if err := tb.store.DB().Where("id = ?", k.ID).Take(&row).Error; err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(secret))
		if row.SecretHash != hex.EncodeToString(sum[:]) || row.Prefix != k.Prefix || row.Scopes != "sync,read" {
			t.Fatalf("stored row %+v", row)
		}

		second, _ := tb.createKey(t, owner, map[string]any{"name": "Dashboard", "scopes": []string{"read"}})
		secretPart := secret[13:]
		for _, path := range []string{"/v1/api-keys", "/v1/api-keys/" + k.ID} {
			got := tb.do(t, "GET", path, owner, nil)
			if got.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, got.status, got.body)
			}
			body := string(got.body)
			if strings.Contains(body, secretPart) || strings.Contains(body, row.SecretHash) || strings.Contains(body, `"secret"`) {
				t.Fatalf("GET %s shows the secret or its digest: %s", path, body)
			}
		}
		var list struct {
			Items []apiKeyResp `json:"items"`
		}
		tb.do(t, "GET", "/v1/api-keys", owner, nil).json(t, &list)
		if len(list.Items) != 2 || list.Items[0].ID != second.ID || list.Items[1].ID != k.ID {
			t.Fatalf("list is not newest first: %+v", list.Items)
		}
		var one apiKeyResp
		tb.do(t, "GET", "/v1/api-keys/"+k.ID, owner, nil).json(t, &one)
		if one.Name != k.Name || one.Prefix != k.Prefix || fmt.Sprint(one.Scopes) != "[sync read]" || one.Creator != k.Creator {
			t.Fatalf("get %+v", one)
		}
		for _, item := range list.Items {
			if item.Creator != k.Creator {
				t.Fatalf("listed key %s names its creator %+v, want %+v", item.ID, item.Creator, k.Creator)
			}
		}

		want := fmt.Sprint([]string{"api_key.created by login " + tb.ownerA.ID, "api_key.created by login " + tb.ownerA.ID})
		if got := fmt.Sprint(tb.auditActions(t, tb.acctA.ID)); got != want {
			t.Fatalf("audit %s, want %s", got, want)
		}
	})
}

func TestAPIKeys_ReadKey_ReadsButCannotSync(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Main Street", "SER-READ-1")
		tb.connectPanel(t, loc.ID)
		k, key := tb.createKey(t, owner, map[string]any{"name": "Dashboard", "scopes": []string{"read"}})

		r := tb.do(t, "GET", "/v1/locations", key, nil)
		var page struct {
			Items []locationResp `json:"items"`
		}
		r.json(t, &page)
		if r.status != http.StatusOK || len(page.Items) != 1 || page.Items[0].ID != loc.ID {
			t.Fatalf("GET /v1/locations with a read key: %d %s", r.status, r.body)
		}

		r = tb.do(t, "GET", "/v1/me", key, nil)
		var me map[string]any
		r.json(t, &me)
		if r.status != http.StatusOK || me["id"] != k.ID || me["name"] != "Dashboard" || me["role"] != "member" ||
			me["account_id"] != tb.acctA.ID || me["email"] != "" || me["kind"] != "api_key" || fmt.Sprint(me["scopes"]) != "[read]" {
			t.Fatalf("me with a key: %d %s", r.status, r.body)
		}

		r = tb.do(t, "POST", "/v1/locations/"+loc.ID+"/sync", key, map[string]string{"kind": "users"})
		if p := r.problem(t); r.status != http.StatusForbidden || p.Code != "forbidden" || !strings.Contains(p.Detail, "sync") {
			t.Fatalf("sync with a read-only key: %d %s", r.status, r.body)
		}
		var runs int64
		if err := tb.store.DB().Model(&models.Run{}).Count(&runs).Error; err != nil || runs != 0 {
			t.Fatalf("a refused sync wrote %d runs (%v)", runs, err)
		}

		// The key's use is recorded.
		var got apiKeyResp
		tb.do(t, "GET", "/v1/api-keys/"+k.ID, owner, nil).json(t, &got)
		if got.LastUsedAt == nil {
			t.Fatal("last_used_at is not set after the key was used")
		}
	})
}

func TestAPIKeys_SyncKey_StartsSyncsWithTriggerAPI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Main Street", "SER-SYNC-1")
		tb.connectPanel(t, loc.ID)
		k, key := tb.createKey(t, owner, map[string]any{"name": "Integrator", "scopes": []string{"sync"}})

		r := tb.do(t, "POST", "/v1/locations/"+loc.ID+"/sync", key, map[string]string{"kind": "users"})
		if r.status != http.StatusAccepted {
			t.Fatalf("sync with a sync key: %d %s", r.status, r.body)
		}
		var started struct {
			Run struct {
				ID          string `json:"id"`
				Trigger     string `json:"trigger"`
				RequestedBy string `json:"requested_by"`
			} `json:"run"`
		}
		r.json(t, &started)
		if started.Run.Trigger != "api" || !strings.Contains(started.Run.RequestedBy, k.Prefix) || !strings.Contains(started.Run.RequestedBy, "Integrator") {
			t.Fatalf("run %+v: want trigger api and requested_by naming the key", started.Run)
		}

		r = tb.do(t, "POST", "/v1/sync", key, map[string]any{"kind": "panel", "scope": "all"})
		if r.status != http.StatusAccepted {
			t.Fatalf("batch with a sync key: %d %s", r.status, r.body)
		}
		var batch struct {
			Batch struct {
				ID string `json:"id"`
			} `json:"batch"`
		}
		r.json(t, &batch)
		var row models.Batch
		if err := tb.store.DB().Where("id = ?", batch.Batch.ID).Take(&row).Error; err != nil {
			t.Fatal(err)
		}
		if row.TriggerSource != models.TriggerAPI || !strings.Contains(row.RequestedBy, k.Prefix) {
			t.Fatalf("batch trigger %q requested by %q", row.TriggerSource, row.RequestedBy)
		}

		// A sync-only key reads nothing, not even the run it started.
		r = tb.do(t, "GET", "/v1/runs/"+started.Run.ID, key, nil)
		if p := r.problem(t); r.status != http.StatusForbidden || !strings.Contains(p.Detail, "read") {
			t.Fatalf("GET with a sync-only key: %d %s", r.status, r.body)
		}
		if r := tb.do(t, "POST", "/v1/runs/"+started.Run.ID+"/cancel", key, nil); r.status != http.StatusOK {
			t.Fatalf("cancel with a sync key: %d %s", r.status, r.body)
		}

		// A login's runs stay "app".
		r = tb.do(t, "POST", "/v1/locations/"+loc.ID+"/sync", owner, map[string]string{"kind": "refresh"})
		r.json(t, &started)
		if r.status != http.StatusAccepted || started.Run.Trigger != "app" {
			t.Fatalf("login's sync: %d %s", r.status, r.body)
		}
	})
}

func TestAPIKeys_NeverDoWhatNeedsOwnerOrAdmin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		loc := tb.createLocation(t, owner, "Main Street", "SER-ADMIN-1")
		k, key := tb.createKey(t, owner, map[string]any{"name": "Everything", "scopes": []string{"read", "sync"}})
		locations, audit := tb.counts(t)
		keys := tb.keyRows(t)

		cases := []struct {
			method, path string
			body         any
		}{
			{"POST", "/v1/locations", map[string]any{"name": "New", "panel_serial": "SER-NEW"}},
			{"PATCH", "/v1/locations/" + loc.ID, map[string]any{"name": "Renamed"}},
			{"POST", "/v1/locations/" + loc.ID + "/force-sync", nil},
			{"POST", "/v1/force-sync", map[string]any{"scope": "all"}},
			{"POST", "/v1/locations/" + loc.ID + "/panel/credential", nil},
			{"POST", "/v1/api-keys", map[string]any{"name": "Child", "scopes": []string{"read"}}},
			{"GET", "/v1/api-keys", nil},
			{"GET", "/v1/api-keys/" + k.ID, nil},
			{"DELETE", "/v1/api-keys/" + k.ID, nil},
			{"GET", "/v1/staff-grants", nil},
			{"POST", "/v1/staff-grants", map[string]any{"email": "someone@b.test"}},
		}
		for _, tc := range cases {
			r := tb.do(t, tc.method, tc.path, key, tc.body)
			if p := r.problem(t); r.status != http.StatusForbidden || p.Code != "forbidden" || !strings.Contains(p.Detail, "API keys cannot") {
				t.Errorf("%s %s with a key: %d %s", tc.method, tc.path, r.status, r.body)
			}
		}
		if l, a := tb.counts(t); l != locations || a != audit || tb.keyRows(t) != keys {
			t.Fatalf("refused requests wrote: locations %d→%d, audit %d→%d", locations, l, audit, a)
		}

		r := tb.do(t, "POST", "/v1/auth/logout", key, nil)
		if p := r.problem(t); r.status != http.StatusBadRequest || p.Code != "invalid_request" || !strings.Contains(p.Detail, "DELETE /v1/api-keys/{id}") {
			t.Errorf("logout with a key: %d %s", r.status, r.body)
		}
		r = tb.do(t, "POST", "/v1/realtime/tickets", key, nil)
		if p := r.problem(t); r.status != http.StatusForbidden || !strings.Contains(p.Detail, "send the key as Bearer on the upgrade") {
			t.Errorf("ticket with a key: %d %s", r.status, r.body)
		}
		if r := tb.do(t, "GET", "/v1/locations", key, nil); r.status != http.StatusOK {
			t.Fatalf("the key stopped working: %d %s", r.status, r.body)
		}
	})
}

func TestAPIKeys_RevokedExpiredOrWrong_Answer401(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		revoked, revokedKey := tb.createKey(t, owner, map[string]any{"name": "Old script", "scopes": []string{"read"}})
		expired, expiredKey := tb.createKey(t, owner, map[string]any{
			"name": "Trial", "scopes": []string{"read"}, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
		_, goodKey := tb.createKey(t, owner, map[string]any{"name": "Good", "scopes": []string{"read"}})
		for _, key := range []string{revokedKey, expiredKey, goodKey} {
			if r := tb.do(t, "GET", "/v1/locations", key, nil); r.status != http.StatusOK {
				t.Fatalf("fresh key: %d %s", r.status, r.body)
			}
		}

		for range 2 {
			if r := tb.do(t, "DELETE", "/v1/api-keys/"+revoked.ID, owner, nil); r.status != http.StatusNoContent {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
		}
		var got apiKeyResp
		tb.do(t, "GET", "/v1/api-keys/"+revoked.ID, owner, nil).json(t, &got)
		if got.RevokedAt == nil {
			t.Fatal("revoked_at is not set")
		}
		past := time.Now().Add(-time.Minute)
		if err := tb.store.DB().Model(&models.APIKey{}).Where("id = ?", expired.ID).Update("expires_at", past).Error; err != nil {
			t.Fatal(err)
		}

		wrongSecret := goodKey[:13] + strings.Repeat("A", len(goodKey)-13)
		cases := []struct{ name, key, detail string }{
			{"revoked", revokedKey, "API key has been revoked"},
			{"expired", expiredKey, "API key has expired"},
			{"wrong secret, valid prefix", wrongSecret, "API key is invalid"},
			{"unknown prefix", "psk_zzzzzzzz_" + goodKey[13:], "API key is invalid"},
			{"malformed", "psk_short", "API key is invalid"},
		}
		for _, tc := range cases {
			r := tb.do(t, "GET", "/v1/locations", tc.key, nil)
			if p := r.problem(t); r.status != http.StatusUnauthorized || p.Code != "unauthorized" || p.Detail != tc.detail {
				t.Errorf("%s key: %d %s", tc.name, r.status, r.body)
			}
		}
		if r := tb.do(t, "GET", "/v1/locations", goodKey, nil); r.status != http.StatusOK {
			t.Fatalf("good key after the others: %d", r.status)
		}
		want := fmt.Sprint([]string{
			"api_key.created by login " + tb.ownerA.ID, "api_key.created by login " + tb.ownerA.ID,
			"api_key.created by login " + tb.ownerA.ID, "api_key.revoked by login " + tb.ownerA.ID,
		})
		if got := fmt.Sprint(tb.auditActions(t, tb.acctA.ID)); got != want {
			t.Fatalf("audit %s, want %s (a repeated revoke records nothing)", got, want)
		}
	})
}

func TestAPIKeys_OtherAccountsKey_Answers404(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		ownerA := tb.signIn(t, "owner@a.test").AccessToken
		ownerB := tb.signIn(t, "owner@b.test").AccessToken
		k, key := tb.createKey(t, ownerA, map[string]any{"name": "A's script", "scopes": []string{"read"}})
		for _, method := range []string{"GET", "DELETE"} {
			r := tb.do(t, method, "/v1/api-keys/"+k.ID, ownerB, nil)
			if r.status != http.StatusNotFound || r.problem(t).Code != "not_found" {
				t.Errorf("%s another account's key: %d %s", method, r.status, r.body)
			}
		}
		var list struct {
			Items []apiKeyResp `json:"items"`
		}
		tb.do(t, "GET", "/v1/api-keys", ownerB, nil).json(t, &list)
		if len(list.Items) != 0 {
			t.Fatalf("B lists A's keys: %+v", list.Items)
		}
		if r := tb.do(t, "GET", "/v1/locations", key, nil); r.status != http.StatusOK {
			t.Fatalf("A's key after B tried to revoke it: %d", r.status)
		}
	})
}

func TestAPIKeys_BadBodies_Answer400AndWriteNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		cases := []struct {
			name  string
			body  any
			field string
		}{
			{"unknown scope", map[string]any{"name": "k", "scopes": []string{"read", "admin"}}, "scopes"},
			{"no scopes", map[string]any{"name": "k", "scopes": []string{}}, "scopes"},
			{"missing scopes", map[string]any{"name": "k"}, "scopes"},
			{"repeated scope", map[string]any{"name": "k", "scopes": []string{"read", "read"}}, "scopes"},
			{"scopes not a list", map[string]any{"name": "k", "scopes": "read"}, "scopes"},
			{"empty name", map[string]any{"name": "", "scopes": []string{"read"}}, "name"},
			{"blank name", map[string]any{"name": "   ", "scopes": []string{"read"}}, "name"},
			{"missing name", map[string]any{"scopes": []string{"read"}}, "name"},
			{"long name", map[string]any{"name": strings.Repeat("n", 201), "scopes": []string{"read"}}, "name"},
			{"past expiry", map[string]any{"name": "k", "scopes": []string{"read"}, "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"},
			{"expiry not RFC 3339", map[string]any{"name": "k", "scopes": []string{"read"}, "expires_at": "tomorrow"}, "expires_at"},
			{"unknown field", map[string]any{"name": "k", "scopes": []string{"read"}, "expires_at": future, "role": "owner"}, "role"},
		}
		for _, tc := range cases {
			r := tb.do(t, "POST", "/v1/api-keys", owner, tc.body)
			if p := r.problem(t); r.status != http.StatusBadRequest || p.Code != "invalid_request" || p.Field != tc.field {
				t.Errorf("%s: %d %s, want 400 with field %s", tc.name, r.status, r.body, tc.field)
			}
		}
		if n := tb.keyRows(t); n != 0 {
			t.Fatalf("refused bodies wrote %d keys", n)
		}
		if _, audit := tb.counts(t); audit != 0 {
			t.Fatalf("refused bodies wrote %d audit entries", audit)
		}
		// A missing scopes list names every scope there is.
		if p := tb.do(t, "POST", "/v1/api-keys", owner, map[string]any{"name": "k"}).problem(t); !strings.Contains(p.Detail, "read, sync and import") {
			t.Errorf("missing scopes says %q, want it to name read, sync and import", p.Detail)
		}
		// A name of exactly 200 characters, not bytes, is accepted.
		tb.createKey(t, owner, map[string]any{"name": strings.Repeat("é", 200), "scopes": []string{"read"}})
	})
}

func TestAPIKeys_MemberAndSupportLogins_CannotManageKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		k, _ := tb.createKey(t, owner, map[string]any{"name": "Owner's", "scopes": []string{"read"}})
		tb.login(t, tb.acctA, "support@a.test", models.RoleSupport)
		for _, email := range []string{"member@a.test", "support@a.test"} {
			token := tb.signIn(t, email).AccessToken
			for _, req := range []struct {
				method, path string
				body         any
			}{
				{"POST", "/v1/api-keys", map[string]any{"name": "Mine", "scopes": []string{"read"}}},
				{"GET", "/v1/api-keys", nil},
				{"GET", "/v1/api-keys/" + k.ID, nil},
				{"DELETE", "/v1/api-keys/" + k.ID, nil},
			} {
				r := tb.do(t, req.method, req.path, token, req.body)
				if r.status != http.StatusForbidden || r.problem(t).Code != "forbidden" {
					t.Errorf("%s: %s %s answered %d %s", email, req.method, req.path, r.status, r.body)
				}
			}
		}
		if n := tb.keyRows(t); n != 1 {
			t.Fatalf("%d keys stored, want the owner's one", n)
		}
		var got apiKeyResp
		tb.do(t, "GET", "/v1/api-keys/"+k.ID, owner, nil).json(t, &got)
		if got.RevokedAt != nil {
			t.Fatal("a member or support login revoked the key")
		}
	})
}

func TestAPIKeys_AccountHoldsAtMost100ActiveKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		now := time.Now().UTC()
		past := now.Add(-time.Hour)
		var rows []models.APIKey
		for i := range models.MaxActiveAPIKeys + 1 {
			k := models.APIKey{
				ID: models.NewID(), AccountID: tb.acctA.ID, Name: fmt.Sprintf("seeded %d", i),
				Prefix: fmt.Sprintf("psk_seed%04d", i), SecretHash: strings.Repeat("0", 64), Scopes: "read",
				CreatedBy: tb.ownerA.ID, CreatedAt: now,
			}
			// One more than the cap, of which one has expired: it does
			// not count.
			if i == 0 {
				k.ExpiresAt = &past
			}
			rows = append(rows, k)
		}
		if err := tb.store.DB().Create(&rows).Error; err != nil {
			t.Fatal(err)
		}
		r := tb.do(t, "POST", "/v1/api-keys", owner, map[string]any{"name": "One too many", "scopes": []string{"read"}})
		if r.status != http.StatusConflict || r.problem(t).Code != "conflict" {
			t.Fatalf("101st active key: %d %s", r.status, r.body)
		}
		if n := tb.keyRows(t); n != int64(len(rows)) {
			t.Fatalf("the refused key was stored: %d rows", n)
		}
		if r := tb.do(t, "DELETE", "/v1/api-keys/"+rows[1].ID, owner, nil); r.status != http.StatusNoContent {
			t.Fatalf("revoke: %d", r.status)
		}
		tb.createKey(t, owner, map[string]any{"name": "After a revoke", "scopes": []string{"read"}})
	})
}

func TestAPIKeys_SecretNeverAppearsInTheLogs(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			var logs apptest.Buffer
			tb := setupLogged(t, b, nil, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			owner := tb.signIn(t, "owner@a.test").AccessToken
			loc := tb.createLocation(t, owner, "Main Street", "SER-LOG-1")
			k, key := tb.createKey(t, owner, map[string]any{"name": "Logged", "scopes": []string{"read", "sync"}})
			tb.do(t, "GET", "/v1/locations", key, nil)
			tb.do(t, "POST", "/v1/locations/"+loc.ID+"/sync", key, map[string]string{"kind": "users"})
			tb.do(t, "GET", "/v1/locations", key[:13]+strings.Repeat("B", len(key)-13), nil)
			tb.do(t, "GET", "/v1/locations?key="+key, key, nil)
			tb.do(t, "DELETE", "/v1/api-keys/"+k.ID, owner, nil)
			tb.do(t, "GET", "/v1/locations", key, nil)

			out := logs.String()
			if !strings.Contains(out, "/v1/api-keys") {
				t.Fatalf("the requests were not logged, so this test proves nothing:\n%s", out)
			}
			if strings.Contains(out, key[13:]) {
				t.Fatalf("the key's secret appears in the logs:\n%s", out)
			}
		})
	}
}

func TestAPIKeys_RealtimeSocket_NeedsTheReadScope(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		owner := tb.signIn(t, "owner@a.test").AccessToken
		_, key := tb.createKey(t, owner, map[string]any{
			"name": "Watcher", "scopes": []string{"sync"}, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
		base := tb.serve(t)
		h := http.Header{}
		h.Set("Authorization", "Bearer "+key)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/realtime", h)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err = conn.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4003 {
			t.Fatalf("socket opened with a key without the read scope: %v, want close 4003", err)
		}
	})
}
