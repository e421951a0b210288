package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

const (
	testSigningKey = "test-signing-key-0123456789abcdef0123456789"
	testPassword   = "correct horse battery"
)

// testBundle is one running node on one backend, with two accounts.
type testBundle struct {
	app     *app.App
	store   *models.Store
	acctA   models.Account
	acctB   models.Account
	ownerA  models.Login
	memberA models.Login
	ownerB  models.Login
	serving bool
	// dataDir is the node's data folder, where its mail outbox is.
	dataDir string
}

// serve runs the node on a loopback port until the test ends and returns
// its base URL.
func (tb *testBundle) serve(t *testing.T) string {
	t.Helper()
	ln, err := tb.app.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.app.Serve(ctx, ln) }()
	tb.serving = true
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// forEachBackend runs fn on a fresh node per database backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, tb *testBundle)) {
	t.Helper()
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, setup(t, b, nil))
		})
	}
}

func testConfig(t *testing.T, b dbtest.Backend) app.Config {
	cfg := app.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.DatabaseURL = b.Config.MySQLDSN
	cfg.DBMaxOpenConns = 10
	cfg.JWTSecret = testSigningKey
	cfg.RefreshTokenTTL = 24 * time.Hour
	cfg.BcryptCost = 4
	cfg.LoginPerMinutePerClient = 1000
	cfg.LoginPerMinutePerEmail = 1000
	cfg.LoginFreeFailures = 1000
	cfg.BodyLimit = 64 * 1024
	cfg.ShutdownTimeout = time.Second
	cfg.LogLevel = "error"
	return cfg
}

func setup(t *testing.T, b dbtest.Backend, tweak func(*app.Config)) *testBundle {
	t.Helper()
	return setupLogged(t, b, tweak, slog.New(slog.DiscardHandler))
}

// setupLogged is setup with the node logging to log, for tests that read
// what the node logs.
func setupLogged(t *testing.T, b dbtest.Backend, tweak func(*app.Config), log *slog.Logger) *testBundle {
	t.Helper()
	ctx := context.Background()
	cfg := testConfig(t, b)
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start node on %s: %v", b.Name, err)
	}
	tb := &testBundle{app: a, store: a.Store(), dataDir: cfg.DataDir}
	t.Cleanup(func() {
		if !tb.serving {
			_ = a.Close()
		}
	})
	tb.acctA = mustCreate(t, func() (models.Account, error) { return tb.store.CreateAccount(ctx, "Account A") })
	tb.acctB = mustCreate(t, func() (models.Account, error) { return tb.store.CreateAccount(ctx, "Account B") })
	tb.ownerA = tb.login(t, tb.acctA, "owner@a.test", models.RoleOwner)
	tb.memberA = tb.login(t, tb.acctA, "member@a.test", models.RoleMember)
	tb.ownerB = tb.login(t, tb.acctB, "owner@b.test", models.RoleOwner)
	return tb
}

func mustCreate[T any](t *testing.T, f func() (T, error)) T {
	t.Helper()
	v, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (tb *testBundle) login(t *testing.T, acct models.Account, email string, role models.Role) models.Login {
	t.Helper()
	return mustCreate(t, func() (models.Login, error) {
		return tb.app.Auth().CreateLogin(context.Background(), acct.ID, email, "Test "+string(role), role, testPassword)
	})
}

// response is a finished HTTP exchange with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problem decodes an error answer and checks its media type.
func (r response) problem(t *testing.T) problemDoc {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("error answered with Content-Type %q: %s", ct, r.body)
	}
	var p problemDoc
	r.json(t, &p)
	return p
}

type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Field  string `json:"field"`
}

// do sends a request through app.Test. body may be nil, a string (sent
// as is) or a value (sent as JSON).
func (tb *testBundle) do(t *testing.T, method, path, token string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
		contentType = "application/json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
		contentType = "application/json"
	}
	req := httptest.NewRequest(method, path, rd)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := tb.app.HTTP().Test(req, 10_000)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// signIn logs in and returns the tokens, failing the test otherwise.
func (tb *testBundle) signIn(t *testing.T, email string) tokenPair {
	t.Helper()
	r := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": email, "password": testPassword})
	if r.status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.status, r.body)
	}
	var tp tokenPair
	r.json(t, &tp)
	return tp
}

// locationResp is the part of a Location the tests read.
type locationResp struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Group string `json:"group"`
	Panel struct {
		Serial     string  `json:"serial"`
		Connection string  `json:"connection"`
		LastSeenAt *string `json:"last_seen_at"`
		ArmedState string  `json:"armed_state"`
	} `json:"panel"`
	Sync struct {
		Status          string  `json:"status"`
		ForcePending    bool    `json:"force_pending"`
		NextScheduledAt *string `json:"next_scheduled_at"`
	} `json:"sync"`
	Settings struct {
		SyncIntervalMinutes int      `json:"sync_interval_minutes"`
		ReportEmails        []string `json:"report_emails"`
	} `json:"settings"`
}

// createLocation creates a location as the given token and returns it.
func (tb *testBundle) createLocation(t *testing.T, token, name, serial string) locationResp {
	t.Helper()
	r := tb.do(t, "POST", "/v1/locations", token, map[string]any{"name": name, "panel_serial": serial})
	if r.status != http.StatusCreated {
		t.Fatalf("create location: %d %s", r.status, r.body)
	}
	var out struct {
		Location     locationResp `json:"location"`
		DeviceSecret string       `json:"device_secret"`
	}
	r.json(t, &out)
	return out.Location
}

// counts returns how many locations and audit entries exist, to prove a
// refused request wrote nothing.
func (tb *testBundle) counts(t *testing.T) (locations, audit int64) {
	t.Helper()
	db := tb.store.DB()
	if err := db.Model(&models.Location{}).Count(&locations).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Model(&models.AuditEntry{}).Count(&audit).Error; err != nil {
		t.Fatal(err)
	}
	return locations, audit
}
