// Package apptest runs real panelsync nodes for tests: served on a loopback
// port, on a real database, with simulated panels dialling the real device
// link.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel/sim"
)

// Password is every test login's password.
const Password = "correct horse battery"

// Node is one running node.
type Node struct {
	App     *app.App
	BaseURL string
	Store   *models.Store
	serial  atomic.Int64
	stop    func()
	// client sends the node's requests. It is the node's own, so that
	// stopping the node can close its idle connections: among them can
	// be connections the transport dialled for concurrent requests and
	// never used, which the server counts as reading a request and would
	// wait on, until its read timeout, before it finishes shutting down.
	client *http.Client
}

// Stop shuts the node down now, as a SIGTERM would; the test's cleanup
// then has nothing left to do.
func (n *Node) Stop() { n.stop() }

// Config returns a configuration for a test node on b: quick timeouts and
// cheap hashing, so failure paths run in test time.
func Config(t testing.TB, b dbtest.Backend) app.Config {
	cfg := app.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.DatabaseURL = b.Config.MySQLDSN
	cfg.DBMaxOpenConns = 20
	cfg.BcryptCost = 4
	cfg.LoginPerMinutePerClient = 10000
	cfg.LoginPerMinutePerEmail = 10000
	cfg.CommandTimeout = 2 * time.Second
	cfg.RetryBase = 20 * time.Millisecond
	// Shutdowns get room: on a busy machine a node stopping with runs and
	// sockets in flight can take longer than a quiet one would.
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.LogLevel = "error"
	return cfg
}

// Start serves a node built from cfg until the test ends.
func Start(t testing.TB, cfg app.Config) *Node {
	t.Helper()
	return StartLogged(t, cfg, slog.New(slog.DiscardHandler))
}

// StartLogged is Start with the node's logs going to log, for tests that
// read what a node logs.
func StartLogged(t testing.TB, cfg app.Config, log *slog.Logger) *Node {
	t.Helper()
	a, err := app.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	ln, err := a.Listen()
	if err != nil {
		_ = a.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			client.CloseIdleConnections()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node stopped with: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &Node{App: a, BaseURL: "http://" + ln.Addr().String(), Store: a.Store(), stop: stop, client: client}
}

// Account creates an account with an owner and returns it with the
// owner's access token.
func (n *Node) Account(t testing.TB, name string) (models.Account, string) {
	t.Helper()
	ctx := context.Background()
	acct, err := n.Store.CreateAccount(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	email := fmt.Sprintf("owner+%s@%s.test", models.NewID()[24:], "acct")
	if _, err := n.App.Auth().CreateLogin(ctx, acct.ID, email, name+" Owner", models.RoleOwner, Password); err != nil {
		t.Fatal(err)
	}
	return acct, n.Token(t, email)
}

// Login adds a login with role to the account and returns its token.
func (n *Node) Login(t testing.TB, accountID string, role models.Role) string {
	t.Helper()
	email := fmt.Sprintf("%s+%s@acct.test", role, models.NewID()[24:])
	if _, err := n.App.Auth().CreateLogin(context.Background(), accountID, email, "Test", role, Password); err != nil {
		t.Fatal(err)
	}
	return n.Token(t, email)
}

// Token signs in and returns an access token.
func (n *Node) Token(t testing.TB, email string) string {
	t.Helper()
	tokens, err := n.App.Auth().Login(context.Background(), email, Password, "127.0.0.1")
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return tokens.AccessToken
}

// Location creates a location with a panel in the account and returns it
// with the panel's credentials.
func (n *Node) Location(t testing.TB, accountID, name string) (models.LocationView, sim.Credentials) {
	t.Helper()
	secret, digest := auth.NewDeviceSecret()
	serial := fmt.Sprintf("TEST-%s-%04d", models.NewID()[30:], n.serial.Add(1))
	v, err := n.Store.CreateLocation(context.Background(), models.SystemActor(accountID, "test"), models.NewLocation{
		Settings: models.LocationSettings{Name: &name}, PanelSerial: serial, SecretHash: digest,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v, sim.Credentials{Serial: serial, Secret: secret, LocationID: v.Location.ID, Name: name}
}

// Panel runs a simulated panel with cred against the node until the test
// ends or stop is called, as RunPanel does.
func (n *Node) Panel(t testing.TB, cred sim.Credentials, opts sim.Options) (p *sim.Panel, stop func()) {
	t.Helper()
	p = sim.NewPanel(cred, opts)
	return p, n.RunPanel(t, p)
}

// RunPanel runs p against the node until the test ends or stop is called,
// and waits until the node has recorded it connected. A panel that links
// to a location whose users have never synced, with no users run queued,
// running or held there, starts a full users sync of its own; RunPanel
// then also waits until that run has settled (succeeded, failed or held
// for apply), so that what the test does next starts from a quiet
// location and cannot race with it. FirstSync returns that run. A stopped
// panel may be run again.
func (n *Node) RunPanel(t testing.TB, p *sim.Panel) (stop func()) {
	t.Helper()
	cred := p.Credentials()
	loc, err := n.Store.LocationByID(context.Background(), cred.LocationID)
	if err != nil {
		t.Fatal(err)
	}
	before := n.usersRuns(t, cred.LocationID)
	firstLink := loc.Location.UsersSyncedAt == nil && !slices.ContainsFunc(before, func(r models.Run) bool {
		return r.IsActive() || r.State == models.RunAwaitingApply
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx, n.BaseURL)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := p.WaitConnected(wctx); err != nil {
		t.Fatalf("panel %s did not connect: %v", cred.Serial, err)
	}
	n.WaitPanel(t, cred.LocationID, models.PanelConnected)
	if firstLink {
		n.waitFirstSync(t, cred.LocationID, before)
	}
	return stop
}

// usersRuns returns the location's users runs, oldest first.
func (n *Node) usersRuns(t testing.TB, locationID string) []models.Run {
	t.Helper()
	var runs []models.Run
	err := n.Store.DB().Omit("data", "changes", "pending", "codes").
		Where("location_id = ? AND kind = ?", locationID, models.RunUsers).Order("created_at, id").Find(&runs).Error
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// waitFirstSync waits until the users run that a panel's first link
// started, one not among before, has settled.
func (n *Node) waitFirstSync(t testing.TB, locationID string, before []models.Run) {
	t.Helper()
	known := map[string]bool{}
	for _, r := range before {
		known[r.ID] = true
	}
	Eventually(t, 30*time.Second, func() (bool, string) {
		started := false
		for _, r := range n.usersRuns(t, locationID) {
			if r.IsActive() {
				return false, "the first users sync is " + string(r.State)
			}
			started = started || (!known[r.ID] && r.TriggerSource == models.TriggerCheckin)
		}
		return started, "the panel's first link started no users sync"
	})
}

// FirstSync returns the users run that the location's panel started by
// linking for the first time, once it has settled: the oldest users run
// there with trigger checkin.
func (n *Node) FirstSync(t testing.TB, token, locationID string) Run {
	t.Helper()
	for _, r := range n.usersRuns(t, locationID) {
		if r.TriggerSource == models.TriggerCheckin {
			return n.WaitRun(t, token, r.ID)
		}
	}
	t.Fatalf("location %s has no users run started by its panel", locationID)
	return Run{}
}

// MarkUsersSynced records the location's users as synced before, as for a
// panel that linked and synced in the past: its next link is a
// reconnection and starts no first users sync. Tests that speak the device
// protocol by hand, and answer no commands, use it.
func (n *Node) MarkUsersSynced(t testing.TB, locationID string) {
	t.Helper()
	err := n.Store.DB().Model(&models.Location{}).Where("id = ?", locationID).Update("users_synced_at", time.Now().UTC()).Error
	if err != nil {
		t.Fatal(err)
	}
}

// WaitPanel waits until the location's panel shows the connection state.
func (n *Node) WaitPanel(t testing.TB, locationID string, want models.PanelConnection) {
	t.Helper()
	Eventually(t, 10*time.Second, func() (bool, string) {
		v, err := n.Store.LocationByID(context.Background(), locationID)
		if err != nil {
			return false, err.Error()
		}
		return v.Panel.Connection == want, "panel is " + string(v.Panel.Connection)
	})
}

// Eventually polls cond until it holds or the time is up.
func Eventually(t testing.TB, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("condition not met within %v: %s", within, last)
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Do sends a request with an optional bearer token and JSON body.
func (n *Node) Do(t testing.TB, method, path, token string, body any) Response {
	t.Helper()
	resp, err := n.client.Do(n.Request(t, method, path, token, body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Request builds the request Do sends, for a test that sends it its own
// way.
func (n *Node) Request(t testing.TB, method, path, token string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.BaseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// ImportFile is one file part of an upload.
type ImportFile struct {
	// Part is the form part's name: data or control.
	Part        string
	Filename    string
	ContentType string
	Body        []byte
}

// Upload posts a user import as multipart/form-data: the files, then the
// form fields.
func (n *Node) Upload(t testing.TB, token string, files []ImportFile, fields url.Values) Response {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, f.Part, f.Filename))
		if f.ContentType != "" {
			h.Set("Content-Type", f.ContentType)
		}
		part, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := part.Write(f.Body); err != nil {
			t.Fatal(err)
		}
	}
	for name, values := range fields {
		for _, v := range values {
			if err := w.WriteField(name, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", n.BaseURL+"/v1/imports", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Run is the part of a run the tests read.
type Run struct {
	ID            string  `json:"id"`
	BatchID       *string `json:"batch_id"`
	ReappliedFrom *string `json:"reapplied_from"`
	ImportID      *string `json:"import_id"`
	LocationID    string  `json:"location_id"`
	Kind          string  `json:"kind"`
	Mode          string  `json:"mode"`
	Trigger       string  `json:"trigger"`
	RequestedBy   string  `json:"requested_by"`
	State         string  `json:"state"`
	Attempt       int     `json:"attempt"`
	Changes       struct {
		Added     int `json:"added"`
		Updated   int `json:"updated"`
		Removed   int `json:"removed"`
		Unchanged int `json:"unchanged"`
	} `json:"changes"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// SyncResult is the answer to a sync request.
type SyncResult struct {
	Run          Run    `json:"run"`
	Message      string `json:"message"`
	Deduplicated bool   `json:"deduplicated"`
}

// Sync requests a sync and fails the test unless it is accepted.
func (n *Node) Sync(t testing.TB, token, locationID, kind string) SyncResult {
	t.Helper()
	r := n.Do(t, "POST", "/v1/locations/"+locationID+"/sync", token, map[string]string{"kind": kind})
	if r.Status != http.StatusAccepted {
		t.Fatalf("sync %s: %d %s", kind, r.Status, r.Body)
	}
	var out SyncResult
	r.JSON(t, &out)
	return out
}

// WaitRun waits until the run reaches a final state and returns it.
func (n *Node) WaitRun(t testing.TB, token, runID string) Run {
	t.Helper()
	var run Run
	Eventually(t, 20*time.Second, func() (bool, string) {
		r := n.Do(t, "GET", "/v1/runs/"+runID, token, nil)
		if r.Status != http.StatusOK {
			return false, string(r.Body)
		}
		run = Run{}
		r.JSON(t, &run)
		switch run.State {
		case "succeeded", "failed", "cancelled", "awaiting_apply":
			return true, ""
		}
		return false, "run is " + run.State
	})
	return run
}

// Event is the part of an event the tests read.
type Event struct {
	Offset     int64           `json:"offset"`
	Type       string          `json:"type"`
	Severity   string          `json:"severity"`
	Message    string          `json:"message"`
	RunID      *string         `json:"run_id"`
	LocationID *string         `json:"location_id"`
	Data       json.RawMessage `json:"data"`
}

// Events returns the location's Event Log, oldest first.
func (n *Node) Events(t testing.TB, token, locationID string) []Event {
	t.Helper()
	r := n.Do(t, "GET", "/v1/events?limit=1000&location_id="+locationID, token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("events: %d %s", r.Status, r.Body)
	}
	var page struct {
		Items []Event `json:"items"`
	}
	r.JSON(t, &page)
	return page.Items
}

// EventsOfRun returns the types of the run's events in order.
func EventsOfRun(events []Event, runID string) []string {
	var out []string
	for _, e := range events {
		if e.RunID != nil && *e.RunID == runID {
			out = append(out, e.Type)
		}
	}
	return out
}
