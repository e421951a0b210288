package handlers_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

// mysqlBackend returns the MySQL backend, skipping the test where none is
// configured (never in CI, where Backends requires one).
func mysqlBackend(t *testing.T) dbtest.Backend {
	t.Helper()
	for _, b := range dbtest.Backends(t) {
		if b.Config.MySQLDSN != "" {
			return b
		}
	}
	t.Skipf("no MySQL: set %s", dbtest.MySQLEnv)
	return dbtest.Backend{}
}

func TestRoutes_DatabaseBlackHoled_Answer503WithinTheBoundThenRecover(t *testing.T) {
	const bound = time.Second
	// The answer comes within the bound; the slack is for a loaded machine.
	const slack = 2 * time.Second
	b, proxy := dbtest.Proxied(t, mysqlBackend(t))
	// A small pool, so that most requests wait for a connection as well
	// as on the database.
	tb := setup(t, b, func(cfg *app.Config) {
		cfg.DBTimeout = bound
		cfg.DBMaxOpenConns = 2
	})
	owner := tb.signIn(t, "owner@a.test").AccessToken
	loc := tb.createLocation(t, owner, "Frozen", "FRZ-1")
	base := tb.serve(t)

	routes := []struct {
		name, method, path string
		body               any
		token              string
	}{
		{"read", "GET", "/v1/locations", nil, owner},
		{"write", "PATCH", "/v1/locations/" + loc.ID, map[string]any{"name": "Thawed"}, owner},
		{"tap", "POST", "/v1/locations/" + loc.ID + "/sync", map[string]any{"kind": "users"}, owner},
		{"sign-in", "POST", "/v1/auth/login", map[string]string{"email": "owner@a.test", "password": testPassword}, ""},
	}
	proxy.Hold()
	// Each kind of route several times at once.
	const rounds = 4
	type answer struct {
		route   string
		status  int
		code    string
		retry   string
		elapsed time.Duration
		err     error
	}
	answers := make(chan answer, rounds*len(routes))
	var wg sync.WaitGroup
	for range rounds {
		for _, route := range routes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				a := answer{route: route.name}
				status, header, p, err := send(base, route.method, route.path, route.token, route.body)
				a.err = err
				a.status, a.code, a.retry, a.elapsed = status, p.Code, header.Get("Retry-After"), time.Since(start)
				answers <- a
			}()
		}
	}
	wg.Wait()
	close(answers)
	var slowest time.Duration
	for a := range answers {
		if a.err != nil {
			t.Errorf("%s with the database black-holed: %v after %s", a.route, a.err, a.elapsed)
			continue
		}
		if a.status != http.StatusServiceUnavailable || a.code != models.CodeServiceUnavailable || a.retry != "5" {
			t.Errorf("%s with the database black-holed: %d %q Retry-After %q after %s", a.route, a.status, a.code, a.retry, a.elapsed)
		}
		if a.elapsed > bound+slack {
			t.Errorf("%s answered after %s; the bound is %s", a.route, a.elapsed, bound)
		}
		slowest = max(slowest, a.elapsed)
	}
	t.Logf("with the database black-holed, %d requests answered 503 within %s (bound %s)", rounds*len(routes), slowest.Round(time.Millisecond), bound)

	// Readiness has a bound of its own, shorter than a request's.
	start := time.Now()
	status, _, _, err := send(base, "GET", "/readyz", "", nil)
	elapsed := time.Since(start)
	if err != nil || status != http.StatusServiceUnavailable || elapsed > 2*time.Second+slack {
		t.Errorf("readyz with the database black-holed: %d %v after %s", status, err, elapsed)
	}
	if r := tb.do(t, "GET", "/readyz", "", nil); !strings.Contains(string(r.body), `"database":"failing"`) || !strings.Contains(string(r.body), `"bus":"ok"`) {
		t.Errorf("readyz with the database black-holed must blame the database alone: %s", r.body)
	}
	t.Logf("readyz answered %d after %s", status, elapsed.Round(time.Millisecond))

	proxy.Release()
	thawed := time.Now()
	deadline := thawed.Add(10 * time.Second)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for ; ; <-poll.C {
		r := tb.do(t, "GET", "/v1/locations", owner, nil)
		if r.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the database came back, a read still answers %d %s", r.status, r.body)
		}
	}
	t.Logf("reads answered 200 again %s after the database came back", time.Since(thawed).Round(time.Millisecond))
	for _, route := range routes {
		if r := tb.do(t, route.method, route.path, route.token, route.body); r.status >= 500 {
			t.Errorf("%s after the database came back: %d %s", route.name, r.status, r.body)
		}
	}
}

// send makes one request to a served node, with no test failure of its
// own so that it can run on any goroutine, and decodes a problem document
// when that is the answer.
func send(base, method, path, token string, body any) (int, http.Header, problemDoc, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, problemDoc{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, problemDoc{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, problemDoc{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, problemDoc{}, err
	}
	var p problemDoc
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		if err := json.Unmarshal(raw, &p); err != nil {
			return resp.StatusCode, resp.Header, p, fmt.Errorf("decode %s: %w", raw, err)
		}
	}
	return resp.StatusCode, resp.Header, p, nil
}

func TestReadyz_SQLiteRefusesWrites_SaysDatabaseFailingWhileReadsWork(t *testing.T) {
	tb := setup(t, dbtest.Backends(t)[0], nil)
	owner := tb.signIn(t, "owner@a.test").AccessToken
	tb.createLocation(t, owner, "Before", "RO-1")
	if r := tb.do(t, "GET", "/readyz", "", nil); r.status != http.StatusOK {
		t.Fatalf("readyz before: %d %s", r.status, r.body)
	}
	readOnly(t, tb.store)

	r := tb.do(t, "GET", "/readyz", "", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"database":"failing"`) {
		t.Errorf("readyz with writes refused: %d %s", r.status, r.body)
	}
	if r := tb.do(t, "GET", "/v1/locations", owner, nil); r.status != http.StatusOK {
		t.Errorf("a read with writes refused: %d %s", r.status, r.body)
	}
	r = tb.do(t, "POST", "/v1/locations", owner, map[string]any{"name": "After", "panel_serial": "RO-2"})
	if p := r.problem(t); r.status != http.StatusServiceUnavailable || p.Code != models.CodeServiceUnavailable || r.header.Get("Retry-After") != "5" {
		t.Errorf("a write with writes refused: %d %q Retry-After %q", r.status, p.Code, r.header.Get("Retry-After"))
	}
}

// readOnly makes SQLite refuse every write on each of the store's pooled
// connections, as it does once its file or folder turns read-only or its
// disk fills: with the same SQLITE_READONLY answer, and reads still
// served. Tests may run as root, whom a file's mode does not stop, and a
// connection open before a chmod keeps writing; query_only is SQLite's
// own switch and holds for anyone.
func readOnly(t *testing.T, store *models.Store) {
	t.Helper()
	sqlDB, err := store.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Every connection the pool may hold is taken at once, so that each
	// is switched; the pool keeps them all when they are returned.
	open := sqlDB.Stats().MaxOpenConnections
	conns := make([]*sql.Conn, 0, open)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range open {
		c, err := sqlDB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.ExecContext(ctx, "PRAGMA query_only = 1"); err != nil {
			t.Fatal(err)
		}
	}
}
