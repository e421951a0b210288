package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/models"
)

// The authorization matrix: every route the router registers, asked by
// every kind of caller. Each letter is what one caller must get, in the
// order of matrixCallers:
//
//	y  allowed: any answer but 401 and 403 (a 400 for the test's bare
//	   body, a 404 for something already deleted, a 409 for a panel that
//	   is not linked all mean authorization let the caller through)
//	u  401 unauthorized
//	f  403 forbidden
//	n  404 not found: the record is another account's
//
// A route the router registers without a row here fails the test, so a
// new route cannot ship without its authorization decided.
var matrixCallers = []string{
	"none", "other account's owner", "owner", "admin", "member",
	"support without a grant", "support with a grant", "read key", "sync key", "revoked key",
}

type matrixRow struct {
	route string
	want  string
	// body is sent as JSON with POST, PATCH and PUT.
	body any
}

func matrixRows() []matrixRow {
	empty := map[string]any{}
	return []matrixRow{
		{route: "GET /healthz", want: "yyyyyyyyyy"},
		{route: "GET /readyz", want: "yyyyyyyyyy"},
		{route: "GET /openapi.yaml", want: "yyyyyyyyyy"},
		{route: "GET /docs", want: "yyyyyyyyyy"},
		{route: "GET /docs/assets/:name", want: "yyyyyyyyyy"},
		// The web console's pages and files are public; the API they call
		// is not.
		{route: "GET /accept-invitation", want: "yyyyyyyyyy"},
		{route: "GET /reset-password", want: "yyyyyyyyyy"},
		{route: "GET /app/*", want: "yyyyyyyyyy"},

		{route: "POST /v1/auth/login", want: "yyyyyyyyyy", body: empty},
		{route: "POST /v1/auth/refresh", want: "yyyyyyyyyy", body: empty},
		{route: "POST /v1/auth/invitations/accept", want: "yyyyyyyyyy", body: empty},
		{route: "POST /v1/auth/password-reset", want: "yyyyyyyyyy", body: empty},
		{route: "POST /v1/auth/password-reset/confirm", want: "yyyyyyyyyy", body: empty},
		{route: "POST /v1/auth/password", want: "uyyyyfyffu", body: map[string]string{"current_password": "not the password", "new_password": "a long enough new password"}},
		{route: "GET /v1/me", want: "uyyyyfyyfu"},

		{route: "GET /v1/logins", want: "uyyyfffffu"},
		{route: "POST /v1/logins", want: "uyyyfffffu", body: empty},
		{route: "GET /v1/logins/:id", want: "unyyfffffu"},
		{route: "PATCH /v1/logins/:id", want: "unyyfffffu", body: map[string]string{"name": "Matrix Victim"}},
		{route: "POST /v1/logins/:id/deactivate", want: "unyyfffffu"},
		{route: "POST /v1/logins/:id/reactivate", want: "unyyfffffu"},
		{route: "POST /v1/logins/:id/invitation", want: "unyyfffffu"},

		{route: "POST /v1/logins/:id/force-sync", want: "unyyfffffu"},
		{route: "POST /v1/links/load", want: "uyyyfffffu", body: empty},
		{route: "POST /v1/links/auto", want: "uyyyfffffu", body: empty},
		{route: "POST /v1/links/save", want: "uyyyfffffu", body: empty},
		{route: "POST /v1/links", want: "uyyyfffffu", body: empty},
		{route: "GET /v1/links", want: "uyyyfffffu"},
		{route: "PATCH /v1/links/:id", want: "unyyfffffu", body: map[string]any{"options": map[string]bool{"code": true}}},
		{route: "DELETE /v1/links/:id", want: "unyyfffffu"},

		{route: "GET /v1/audit", want: "uyyyffyffu"},

		{route: "GET /v1/locations", want: "uyyyyfyyfu"},
		{route: "POST /v1/locations", want: "uyyyfffffu", body: empty},
		{route: "GET /v1/locations/:id", want: "unyyyfyyfu"},
		{route: "PATCH /v1/locations/:id", want: "unyyfffffu", body: map[string]string{"name": "Matrix Site"}},
		{route: "POST /v1/locations/:id/sync", want: "unyyyfffyu", body: map[string]string{"kind": "refresh"}},
		{route: "POST /v1/locations/:id/panel/credential", want: "unyyfffffu"},
		{route: "POST /v1/locations/:id/panel/credential/revoke", want: "unyyfffffu"},
		{route: "GET /v1/locations/:id/users", want: "unyyyfyyfu"},
		{route: "GET /v1/locations/:id/panel", want: "unyyyfyyfu"},
		{route: "GET /v1/locations/:id/status", want: "unyyyfyyfu"},
		{route: "POST /v1/locations/:id/force-sync", want: "unyyfffffu"},
		{route: "POST /v1/force-sync", want: "uyyyfffffu", body: empty},
		{route: "PUT /v1/groups/:name/rank", want: "unyyfffffu", body: map[string]int{"rank": 0}},

		{route: "GET /v1/runs", want: "uyyyyfyyfu"},
		{route: "GET /v1/runs/:id", want: "unyyyfyyfu"},
		{route: "GET /v1/runs/:id/data", want: "unyyyfyyfu"},
		{route: "GET /v1/runs/:id/changes", want: "unyyyfyyfu"},
		{route: "POST /v1/runs/:id/cancel", want: "unyyyfffyu"},
		{route: "POST /v1/runs/:id/apply", want: "unyyfffffu"},
		{route: "POST /v1/runs/:id/mark-cancelled", want: "unyyfffffu", body: map[string]bool{"confirm": true}},
		{route: "POST /v1/runs/:id/reapply", want: "unyyfffffu"},
		{route: "GET /v1/runs/:id/control", want: "unyyyfyyfu"},

		// An API key needs the import scope, which neither key here has;
		// the syncer tests upload with one.
		{route: "POST /v1/imports", want: "uyyyfffffu", body: empty},

		{route: "POST /v1/sync", want: "uyyyyfffyu", body: empty},
		{route: "GET /v1/batches", want: "uyyyyfyyfu"},
		{route: "GET /v1/batches/:id", want: "unyyyfyyfu"},
		{route: "POST /v1/batches/:id/cancel", want: "unyyyfffyu"},

		// A read key looks people up: it reads the same panel users
		// through GET /v1/locations/:id/users already.
		{route: "GET /v1/people", want: "uyyyyfyyfu"},

		{route: "GET /v1/events", want: "uyyyyfyyfu"},
		{route: "POST /v1/realtime/tickets", want: "uyyyyfyffu"},
		{route: "GET /v1/realtime", want: "uyyyyyyyfu"},

		{route: "POST /v1/staff-grants", want: "uyyyfffffu", body: empty},
		{route: "GET /v1/staff-grants", want: "uyyyfffffu"},
		{route: "DELETE /v1/staff-grants/:id", want: "unyyfffffu"},

		{route: "POST /v1/api-keys", want: "uyyyfffffu", body: empty},
		{route: "GET /v1/api-keys", want: "uyyyfffffu"},
		{route: "GET /v1/api-keys/:id", want: "unyyfffffu"},
		{route: "DELETE /v1/api-keys/:id", want: "unyyfffffu"},

		{route: "GET /device/v1/link", want: "uuuuuuuuuu"},

		// Signing out ends the caller's session, so it runs last.
		{route: "POST /v1/auth/logout", want: "uyyyyfyyyu"},
	}
}

// matrixFixture is what the matrix's requests act on: account A's records,
// and a token or header set per caller.
type matrixFixture struct {
	ids     map[string]string
	callers [][]string
}

func TestAuthorizationMatrix_EveryRoute_EveryCaller(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		base := tb.serve(t)
		fx := newMatrixFixture(t, tb)
		rows := matrixRows()

		registered := map[string]bool{}
		for _, r := range tb.app.HTTP().GetRoutes(true) {
			if r.Method == http.MethodHead || r.Method == "USE" || r.Path == "/" {
				continue
			}
			registered[r.Method+" "+r.Path] = true
		}
		covered := map[string]bool{}
		for _, row := range rows {
			if len(row.want) != len(matrixCallers) {
				t.Fatalf("row %s has %d expectations for %d callers", row.route, len(row.want), len(matrixCallers))
			}
			covered[row.route] = true
			if !registered[row.route] {
				t.Errorf("the matrix has a row for %s, which the router does not register", row.route)
			}
		}
		var missing []string
		for route := range registered {
			if !covered[route] {
				missing = append(missing, route)
			}
		}
		slices.Sort(missing)
		for _, route := range missing {
			t.Errorf("route %s has no row in the authorization matrix", route)
		}

		for _, row := range rows {
			method, path, _ := strings.Cut(row.route, " ")
			for i, caller := range matrixCallers {
				var got, detail string
				if row.route == "GET /v1/realtime" {
					got = realtimeVerdict(t, base, fx.callers[i])
				} else {
					status := matrixRequest(t, base, method, fx.path(path), row.body, fx.callers[i])
					got, detail = verdict(status), " ("+http.StatusText(status)+")"
				}
				// Allowed means let through: a 404 for a record an earlier
				// caller deleted is still not a refusal.
				allowed := row.want[i] == 'y' && (got == "y" || got == "n")
				if !allowed && got[0] != row.want[i] {
					t.Errorf("%s by %s: got %s%s, want %c", row.route, caller, got, detail, row.want[i])
				}
			}
		}
	})
}

// verdict reads a status as the matrix's letter.
func verdict(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "u"
	case http.StatusForbidden:
		return "f"
	case http.StatusNotFound:
		return "n"
	}
	return "y"
}

func newMatrixFixture(t *testing.T, tb *testBundle) matrixFixture {
	t.Helper()
	ctx := context.Background()
	tb.login(t, tb.acctA, "admin@a.test", models.RoleAdmin)
	victim := tb.login(t, tb.acctA, "victim@a.test", models.RoleMember)
	staff, err := tb.store.StaffAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tb.login(t, staff, "granted@staff.test", models.RoleSupport)
	tb.login(t, staff, "ungranted@staff.test", models.RoleSupport)
	tb.login(t, staff, "victim@staff.test", models.RoleSupport)

	owner := tb.signIn(t, "owner@a.test").AccessToken
	loc := tb.createLocation(t, owner, "Matrix Site", "PNL-MATRIX-1")
	spare := tb.createLocation(t, owner, "Spare Site", "PNL-MATRIX-2")
	if r := tb.do(t, "PATCH", "/v1/locations/"+loc.ID, owner, map[string]any{"group": "Matrix-Group"}); r.status != http.StatusOK {
		t.Fatalf("file the location in a group: %d %s", r.status, r.body)
	}
	for _, email := range []string{"granted@staff.test", "victim@staff.test"} {
		if r := tb.do(t, "POST", "/v1/staff-grants", owner, map[string]any{"email": email}); r.status != http.StatusCreated {
			t.Fatalf("grant %s: %d %s", email, r.status, r.body)
		}
	}
	grants, err := tb.store.StaffGrants(ctx, tb.acctA.ID)
	if err != nil {
		t.Fatal(err)
	}
	victimGrant := ""
	for _, g := range grants {
		if l, _ := tb.store.LoginByID(ctx, g.LoginID); l.Email == "victim@staff.test" {
			victimGrant = g.ID
		}
	}
	in := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	_, readKey := tb.createKey(t, owner, map[string]any{"name": "Reader", "scopes": []string{"read"}, "expires_at": in})
	_, syncKey := tb.createKey(t, owner, map[string]any{"name": "Syncer", "scopes": []string{"sync"}, "expires_at": in})
	revoked, revokedKey := tb.createKey(t, owner, map[string]any{"name": "Gone", "scopes": []string{"read", "sync"}, "expires_at": in})
	if r := tb.do(t, "DELETE", "/v1/api-keys/"+revoked.ID, owner, nil); r.status != http.StatusNoContent {
		t.Fatalf("revoke key: %d", r.status)
	}
	victimKey, _ := tb.createKey(t, owner, map[string]any{"name": "Victim", "scopes": []string{"read"}, "expires_at": in})

	run := models.Run{
		ID: models.NewID(), AccountID: tb.acctA.ID, LocationID: loc.ID, Kind: models.RunRefresh, Mode: models.ModeFull,
		TriggerSource: models.TriggerApp, State: models.RunSucceeded, CreatedAt: time.Now().UTC(), AvailableAt: time.Now().UTC(),
	}
	if err := tb.store.DB().Create(&run).Error; err != nil {
		t.Fatal(err)
	}
	batch := models.Batch{
		ID: models.NewID(), AccountID: tb.acctA.ID, Kind: models.RunUsers, Scope: "all", State: "done", Expanded: true,
		CreatedAt: time.Now().UTC(),
	}
	if err := tb.store.DB().Create(&batch).Error; err != nil {
		t.Fatal(err)
	}

	link := models.Link{
		ID: models.NewID(), AccountID: tb.acctA.ID, LoginID: victim.ID, LocationID: loc.ID, UserNumber: 7,
		State: models.LinkDraft, SyncCode: true, SyncSchedule: true, SyncPartitions: true, Propagate: models.PropagateNone,
	}
	if err := tb.store.DB().Create(&link).Error; err != nil {
		t.Fatal(err)
	}

	bearer := func(token string) []string { return []string{"Authorization", "Bearer " + token} }
	onA := func(token string) []string { return append(bearer(token), "X-Account-Id", tb.acctA.ID) }
	return matrixFixture{
		ids: map[string]string{
			"/v1/locations/:id/panel/credential": spare.ID,
			"/v1/locations/:id":                  loc.ID,
			"/v1/runs/:id":                       run.ID,
			"/v1/batches/:id":                    batch.ID,
			"/v1/links/:id":                      link.ID,
			"/v1/logins/:id":                     victim.ID,
			"/v1/api-keys/:id":                   victimKey.ID,
			"/v1/staff-grants/:id":               victimGrant,
			"/docs/assets/:name":                 "redoc.standalone.js",
			"/v1/groups/:name":                   "Matrix-Group",
		},
		callers: [][]string{
			nil,
			bearer(tb.signIn(t, "owner@b.test").AccessToken),
			bearer(owner),
			bearer(tb.signIn(t, "admin@a.test").AccessToken),
			bearer(tb.signIn(t, "member@a.test").AccessToken),
			onA(tb.signIn(t, "ungranted@staff.test").AccessToken),
			onA(tb.signIn(t, "granted@staff.test").AccessToken),
			bearer(readKey),
			bearer(syncKey),
			bearer(revokedKey),
		},
	}
}

// path fills a route's parameters with the fixture's record of the kind
// the route names, matching the longest prefix first.
func (fx matrixFixture) path(route string) string {
	best := ""
	for prefix := range fx.ids {
		if strings.HasPrefix(route, prefix) && len(prefix) > len(best) {
			best = prefix
		}
	}
	if best == "" {
		return route
	}
	param := best[strings.LastIndex(best, ":"):]
	if end := strings.IndexByte(param, '/'); end >= 0 {
		param = param[:end]
	}
	return strings.Replace(route, param, fx.ids[best], 1)
}

func matrixRequest(t *testing.T, base, method, path string, body any, headers []string) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if path == "/device/v1/link" {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// realtimeVerdict opens the realtime socket as the caller and reads the
// matrix's letter from the outcome: a subscription, or a close code.
func realtimeVerdict(t *testing.T, base string, headers []string) string {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/realtime", h)
	if err != nil {
		if resp != nil {
			return verdict(resp.StatusCode)
		}
		t.Fatalf("dial realtime: %v", err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteJSON(map[string]any{"op": "subscribe"}); err != nil {
		return "u"
	}
	var f struct {
		Type string `json:"type"`
	}
	err = conn.ReadJSON(&f)
	var ce *websocket.CloseError
	switch {
	case err == nil && f.Type == "subscribed":
		return "y"
	case errors.As(err, &ce) && (ce.Code == 4001 || ce.Code == 4010):
		return "u"
	case errors.As(err, &ce) && ce.Code == 4003:
		return "f"
	}
	t.Fatalf("realtime answered %+v, %v", f, err)
	return ""
}
