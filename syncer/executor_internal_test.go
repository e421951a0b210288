package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel"
)

// fakePanel is a Link to one in-memory panel: it answers users.get and
// users.put as a panel would, refuses the users it is told to, and fails
// or panics on the commands it is told to.
type fakePanel struct {
	mu    sync.Mutex
	users map[int]panel.User
	// refuse holds the code with which a users.put refuses a user.
	refuse map[int]string
	// fail, when set, answers a command instead of the panel.
	fail func(name string) error
	// written is every user a users.put carried, in order.
	written []int
}

func newFakePanel(users ...panel.User) *fakePanel {
	f := &fakePanel{users: map[int]panel.User{}, refuse: map[int]string{}}
	for _, u := range users {
		f.users[u.Number] = u
	}
	return f
}

func (f *fakePanel) failWith(fail func(name string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

func (f *fakePanel) Send(ctx context.Context, panelID, name string, args any) (json.RawMessage, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		if err := fail(name); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch name {
	case panel.CmdUsersGet:
		res := panel.UsersGetResult{Full: true, Watermark: fmt.Sprint(len(f.written)), Users: []panel.User{}}
		for _, n := range slices.Sorted(maps.Keys(f.users)) {
			res.Users = append(res.Users, f.users[n])
		}
		return json.Marshal(res)
	case panel.CmdUsersPut:
		put := args.(panel.UsersPutArgs)
		var res panel.UsersPutResult
		for _, u := range put.Users {
			f.written = append(f.written, u.Number)
			if code, no := f.refuse[u.Number]; no {
				res.Results = append(res.Results, panel.UserPutResult{Number: u.Number, Status: panel.UserPutRefused, Code: code})
				continue
			}
			u.Code = ""
			f.users[u.Number] = u
			res.Results = append(res.Results, panel.UserPutResult{Number: u.Number, Status: panel.UserPutOK})
		}
		for _, n := range put.Removed {
			delete(f.users, n)
			res.Results = append(res.Results, panel.UserPutResult{Number: n, Status: panel.UserPutOK})
		}
		return json.Marshal(res)
	}
	return nil, &panel.CommandFailure{Code: panel.FailPanelError, Message: "unknown command " + name}
}

// workerBundle is an engine that is never started, on a real SQLite
// store, with one location whose panel is the fake.
type workerBundle struct {
	engine *Engine
	store  *models.Store
	panel  *fakePanel
	loc    models.LocationView
}

const testOwner = "worker-test"

func setupWorker(t *testing.T, users ...panel.User) *workerBundle {
	t.Helper()
	ctx := context.Background()
	store := dbtest.OpenMigrated(t, dbtest.Backend{Name: "sqlite", Config: models.DBConfig{SQLitePath: filepath.Join(t.TempDir(), "worker.db")}})
	acct, err := store.CreateAccount(ctx, "Acme Alarms")
	if err != nil {
		t.Fatal(err)
	}
	name := "Main Street"
	loc, err := store.CreateLocation(ctx, models.SystemActor(acct.ID, "test"), models.NewLocation{
		Settings: models.LocationSettings{Name: &name}, PanelSerial: "SER-1", SecretHash: "digest",
	})
	if err != nil {
		t.Fatal(err)
	}
	fake := newFakePanel(users...)
	engine := New(Config{Owner: testOwner, Workers: 1, MaxAttempts: 3, RetryBase: 2 * time.Second, RetryMax: time.Minute,
		CodeKey: []byte("test key")}, store, models.NewEventLog(store, nil), fake, nil)
	return &workerBundle{engine: engine, store: store, panel: fake, loc: loc}
}

// enqueue queues a run of kind at the location; data is an import's list.
func (b *workerBundle) enqueue(t *testing.T, kind models.RunKind, data *UsersData) models.Run {
	t.Helper()
	r := models.Run{AccountID: b.loc.Location.AccountID, LocationID: b.loc.Location.ID, Kind: kind, Mode: models.ModeFull,
		TriggerSource: models.TriggerApp, AvailableAt: time.Now().UTC().Add(-time.Second), WorkerRank: b.loc.Location.WorkerRank}
	if data != nil {
		r.Data, _ = json.Marshal(data)
	}
	run, _, err := b.store.EnqueueRun(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// execute claims the run as the producer would at the time given, and
// has the executor take it through one attempt.
func (b *workerBundle) execute(t *testing.T, runID string, at time.Time) models.Run {
	t.Helper()
	ctx := context.Background()
	claimed, err := b.store.ClaimRuns(ctx, testOwner, 1, at, at.Add(time.Minute), 0, nil)
	if err != nil || len(claimed) != 1 || claimed[0].ID != runID {
		t.Fatalf("claimed %v, %v; want run %s", claimed, err, runID)
	}
	b.engine.executor.execute(ctx, claimed[0])
	return b.run(t, runID)
}

func (b *workerBundle) run(t *testing.T, id string) models.Run {
	t.Helper()
	r, err := b.store.RunPayload(context.Background(), b.loc.Location.AccountID, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (b *workerBundle) remoteUsers(t *testing.T) []int {
	t.Helper()
	users, err := b.store.PanelUsers(context.Background(), b.loc.Location.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, u := range users {
		out = append(out, u.UserNumber)
	}
	slices.Sort(out)
	return out
}

func (b *workerBundle) events(t *testing.T, typ string) []models.Event {
	t.Helper()
	evs, err := b.store.ListEvents(context.Background(), models.EventQuery{AccountID: b.loc.Location.AccountID, Type: typ, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func standardUser(n int, name string) panel.User {
	return panel.User{Number: n, Name: name, Authority: panel.AuthorityStandard, Partitions: []int{1}}
}

func TestWorker_ImportWithAUserThePanelRefuses_FailsListingThatUserAndKeepsTheRest(t *testing.T) {
	b := setupWorker(t)
	b.panel.refuse[2] = panel.RefusedFull
	run := b.enqueue(t, models.RunImport, &UsersData{Full: true, Users: []panel.User{standardUser(1, "Ann"), standardUser(2, "Bob")}})

	got := b.execute(t, run.ID, time.Now().UTC())
	if got.State != models.RunFailed || got.ErrorCode != FailUsersRefused || got.Added != 1 {
		t.Fatalf("run %s %s %q, added %d; want failed %s with Ann added", got.State, got.ErrorCode, got.ErrorMessage, got.Added, FailUsersRefused)
	}
	if !slices.Equal(b.panel.written, []int{1, 2}) {
		t.Errorf("the panel was sent %v, want both users once: a refused user is not sent again", b.panel.written)
	}
	if users := b.remoteUsers(t); !slices.Equal(users, []int{1}) {
		t.Errorf("the record holds %v, want only what the panel took", users)
	}
	var changes Changes
	if err := json.Unmarshal(got.Changes, &changes); err != nil {
		t.Fatal(err)
	}
	refused := slices.IndexFunc(changes.Changes, func(c Change) bool {
		return c.Action == changeFailed && c.Number == 2 && c.Code == panel.RefusedFull
	})
	if refused < 0 {
		t.Errorf("changes %+v do not list Bob as refused", changes.Changes)
	}
	if failed := b.events(t, models.EventSyncFailed); len(failed) != 1 {
		t.Errorf("%d sync.failed events, want 1", len(failed))
	}
}

func TestWorker_RunWhoseWorkPanics_FailsInternalAndTheNextRunSucceeds(t *testing.T) {
	for name, breakRun := range map[string]func(b *workerBundle){
		"in the attempt": func(b *workerBundle) {
			b.panel.failWith(func(string) error { panic("the link blew up") })
		},
		"in the apply": func(b *workerBundle) {
			b.engine.SetBeforeSettle(func(models.Run) { panic("the settle blew up") })
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := setupWorker(t, standardUser(1, "Ann"), standardUser(2, "Bob"))
			breakRun(b)
			broken := b.execute(t, b.enqueue(t, models.RunUsers, nil).ID, time.Now().UTC())
			if broken.State != models.RunFailed || broken.ErrorCode != "internal" || broken.ErrorMessage != "the sync failed on an internal error" {
				t.Fatalf("panicked run %s %s %q", broken.State, broken.ErrorCode, broken.ErrorMessage)
			}
			if users := b.remoteUsers(t); len(users) != 0 {
				t.Fatalf("the panicked run left %v on record: its apply must roll back", users)
			}

			b.panel.failWith(nil)
			b.engine.SetBeforeSettle(nil)
			next := b.execute(t, b.enqueue(t, models.RunUsers, nil).ID, time.Now().UTC())
			if next.State != models.RunSucceeded || next.Added != 2 {
				t.Fatalf("the next run %s %s, added %d", next.State, next.ErrorCode, next.Added)
			}
		})
	}
}

func TestWorker_TransientFailure_RetriesAfterTheBackoffAndTheBusDownCountsNoAttempt(t *testing.T) {
	b := setupWorker(t, standardUser(1, "Ann"))
	failure := panel.FailTimeout
	b.panel.failWith(func(string) error { return &panel.CommandFailure{Code: failure, Message: "down"} })
	run := b.enqueue(t, models.RunUsers, nil)
	at := time.Now().UTC()

	// A timeout counts: the first attempt waits 1 to 2 s for the second.
	before := time.Now()
	got := b.execute(t, run.ID, at)
	if got.State != models.RunQueued || got.Attempt != 1 || got.ErrorCode != panel.FailTimeout {
		t.Fatalf("after a timeout: %s, attempt %d, %s", got.State, got.Attempt, got.ErrorCode)
	}
	if wait := got.AvailableAt.Sub(before); wait < time.Second-time.Millisecond || wait > 2*time.Second+time.Since(before) {
		t.Errorf("the second attempt is due after %v, want 1 to 2 s", wait)
	}

	// The bus between the servers down does not use up attempts, however
	// long it lasts, waits as a third failure would, and is told once.
	failure = panel.FailBusUnavailable
	for i := range 4 {
		at = at.Add(time.Hour)
		before = time.Now()
		got = b.execute(t, run.ID, at)
		if got.State != models.RunQueued || got.Attempt != 1 || got.ErrorCode != panel.FailBusUnavailable {
			t.Fatalf("bus down %d: %s, attempt %d, %s", i+1, got.State, got.Attempt, got.ErrorCode)
		}
		if wait := got.AvailableAt.Sub(before); wait < 4*time.Second-time.Millisecond || wait > 8*time.Second+time.Since(before) {
			t.Errorf("bus down %d: the next attempt is due after %v, want 4 to 8 s", i+1, wait)
		}
	}
	if retrying := b.events(t, models.EventSyncRetrying); len(retrying) != 2 {
		t.Errorf("%d sync.retrying events, want the timeout's and the outage's", len(retrying))
	}

	// Counted failures end the run at the bound.
	failure = panel.FailTimeout
	at = at.Add(time.Hour)
	if got = b.execute(t, run.ID, at); got.State != models.RunQueued || got.Attempt != 2 {
		t.Fatalf("second timeout: %s, attempt %d", got.State, got.Attempt)
	}
	at = at.Add(time.Hour)
	if got = b.execute(t, run.ID, at); got.State != models.RunFailed || got.Attempt != 3 || got.ErrorCode != panel.FailTimeout {
		t.Fatalf("third timeout: %s, attempt %d, %s", got.State, got.Attempt, got.ErrorCode)
	}
}
