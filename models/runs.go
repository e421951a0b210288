package models

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ActiveKey is the value of Run.ActiveKey while a run is queued or running:
// one per location and kind.
func ActiveKey(locationID string, kind RunKind) string { return locationID + ":" + string(kind) }

// IsActive reports whether a run is still queued or running.
func (r Run) IsActive() bool { return r.State == RunQueued || r.State == RunRunning }

// EnqueueRun inserts a queued run in the caller's transaction. When a run of
// the same kind is already queued or running at the location, nothing is
// inserted and that run is returned with deduplicated true.
func (s *Store) EnqueueRun(ctx context.Context, r Run) (Run, bool, error) {
	key := ActiveKey(r.LocationID, r.Kind)
	r.ActiveKey = &key
	r.State = RunQueued
	if r.ID == "" {
		r.ID = NewID()
	}
	var out Run
	dedup := false
	// A savepoint keeps a duplicate-key failure from poisoning the caller's
	// transaction on databases that abort it on error.
	err := s.Tx(ctx, func(ctx context.Context) error {
		out, dedup = Run{}, false
		db := s.conn(ctx)
		err := db.Transaction(func(tx *gorm.DB) error { return tx.Create(&r).Error })
		if err == nil {
			out = r
			return nil
		}
		if !isDuplicate(err) {
			return fmt.Errorf("enqueue run: %w", err)
		}
		existing, err := s.activeRun(ctx, key)
		if err != nil {
			return err
		}
		out, dedup = existing, true
		return nil
	})
	return out, dedup, err
}

func (s *Store) activeRun(ctx context.Context, key string) (Run, error) {
	var r Run
	// Under read committed this read sees the row whose insert made ours a
	// duplicate. It takes no lock: concurrent duplicates all hold a shared
	// lock on that index entry, and upgrading it would deadlock them.
	if err := s.conn(ctx).Omit("data", "changes", "pending", "codes").Where("active_key = ?", key).Take(&r).Error; err != nil {
		return Run{}, notFound(err, "active run")
	}
	return r, nil
}

// ClaimRuns takes up to n runs that are due and marks them running under
// owner until leaseUntil. Runs whose lease expired (their worker died)
// come first; taking one over counts a takeover, not an attempt, since the
// attempt it resumes was cut short by its node rather than failed by its
// panel. A queued run counts its next attempt. Queued runs are shared fairly: each
// account with due work is offered a slot in turn, oldest waiting first,
// and no account has more than perAccount runs in flight across all nodes
// (0: no cap). Only runs of a rank in ranks are taken; rank 0 is always
// among them, as every node serves it. On MySQL, SKIP LOCKED lets workers
// on many nodes claim side by side without waiting on each other's rows.
func (s *Store) ClaimRuns(ctx context.Context, owner string, n int, now, leaseUntil time.Time, perAccount int, ranks []int) ([]Run, error) {
	if n <= 0 {
		return nil, nil
	}
	served := ServedRanks(ranks)
	var claimed []Run
	err := s.Tx(ctx, func(ctx context.Context) error {
		claimed = nil
		db := s.conn(ctx)
		skipLocked := func(q *gorm.DB) *gorm.DB {
			if IsMySQL(db) {
				return q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
			}
			return q
		}
		var expired []string
		if err := skipLocked(db.Model(&Run{}).Select("id").
			Where("state = ? AND worker_rank IN ? AND available_at <= ?", RunRunning, served, now).
			Order("available_at").Limit(n)).Pluck("id", &expired).Error; err != nil {
			return fmt.Errorf("find expired leases: %w", err)
		}
		var queued []string
		if free := n - len(expired); free > 0 {
			var err error
			if queued, err = s.claimFairly(ctx, skipLocked, free, now, perAccount, served); err != nil {
				return err
			}
		}
		claim := func(ids []string, count string) error {
			if len(ids) == 0 {
				return nil
			}
			err := db.Model(&Run{}).Where("id IN ?", ids).Updates(map[string]any{
				"state":            RunRunning,
				"lease_owner":      owner,
				"lease_expires_at": leaseUntil,
				"available_at":     leaseUntil,
				count:              gorm.Expr(count + " + 1"),
				"started_at":       gorm.Expr("COALESCE(started_at, ?)", now),
			}).Error
			if err != nil {
				return fmt.Errorf("claim runs: %w", err)
			}
			return nil
		}
		if err := claim(expired, "takeovers"); err != nil {
			return err
		}
		if err := claim(queued, "attempt"); err != nil {
			return err
		}
		ids := append(expired, queued...)
		if len(ids) == 0 {
			return nil
		}
		return db.Omit("data", "changes", "pending", "codes").Where("id IN ?", ids).Order("available_at").Find(&claimed).Error
	})
	return claimed, err
}

// claimFairly picks up to free queued runs of the served ranks, a slot per
// account in turn. The per-account cap counts the account's runs in flight
// of every rank: it protects the other accounts, whichever nodes run them.
func (s *Store) claimFairly(ctx context.Context, skipLocked func(*gorm.DB) *gorm.DB, free int, now time.Time, perAccount int, served []int) ([]string, error) {
	db := s.conn(ctx)
	// Accounts with due work, the one waiting longest first.
	var accounts []string
	err := db.Model(&Run{}).
		Where("state = ? AND worker_rank IN ? AND available_at <= ?", RunQueued, served, now).
		Group("account_id").Order("MIN(available_at)").Limit(100).Pluck("account_id", &accounts).Error
	if err != nil {
		return nil, fmt.Errorf("find accounts with due runs: %w", err)
	}
	if len(accounts) == 0 {
		return nil, nil
	}
	var inFlight []struct {
		AccountID string
		N         int
	}
	err = db.Model(&Run{}).Select("account_id, COUNT(*) AS n").
		Where("state = ? AND account_id IN ?", RunRunning, accounts).
		Group("account_id").Scan(&inFlight).Error
	if err != nil {
		return nil, fmt.Errorf("count runs in flight: %w", err)
	}
	running := make(map[string]int, len(inFlight))
	for _, f := range inFlight {
		running[f.AccountID] = f.N
	}
	// The account with the fewest runs in flight is served first (then
	// the one waiting longest): a single tap is not queued behind another
	// account's batch that already holds the workers.
	sort.SliceStable(accounts, func(i, j int) bool { return running[accounts[i]] < running[accounts[j]] })
	room := make(map[string]int, len(accounts))
	for _, a := range accounts {
		room[a] = free
		if perAccount > 0 {
			room[a] = max(0, perAccount-running[a])
		}
	}
	// Deal the free slots one per account per round.
	quota := map[string]int{}
	for left := free; left > 0; {
		dealt := false
		for _, a := range accounts {
			if left > 0 && quota[a] < room[a] {
				quota[a]++
				left--
				dealt = true
			}
		}
		if !dealt {
			break
		}
	}
	var ids []string
	for _, a := range accounts {
		if quota[a] == 0 {
			continue
		}
		var got []string
		err := skipLocked(db.Model(&Run{}).Select("id").
			Where("state = ? AND worker_rank IN ? AND account_id = ? AND available_at <= ?", RunQueued, served, a, now).
			Order("available_at").Limit(quota[a])).Pluck("id", &got).Error
		if err != nil {
			return nil, fmt.Errorf("claim runs of an account: %w", err)
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// ExtendLease renews a running run's lease. It reports false when the run
// is no longer this owner's: cancelled, finished, or taken over.
func (s *Store) ExtendLease(ctx context.Context, runID, owner string, until time.Time) (bool, error) {
	res := s.conn(ctx).Model(&Run{}).
		Where("id = ? AND state = ? AND lease_owner = ?", runID, RunRunning, owner).
		Updates(map[string]any{"lease_expires_at": until, "available_at": until})
	if res.Error != nil {
		return false, fmt.Errorf("extend lease: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// RunOutcome is what a finished attempt writes onto its run.
type RunOutcome struct {
	State        RunState
	Mode         RunMode
	Added        int
	Updated      int
	Removed      int
	Unchanged    int
	ErrorCode    string
	ErrorMessage string
	Data         []byte
	Changes      []byte
	// Pending is kept with a held run for its apply (see Run.Pending).
	Pending []byte
}

// errLeaseLost tells the caller's transaction to roll back: the run is no
// longer this worker's to finish.
var errLeaseLost = errors.New("run lease lost")

// IsLeaseLost reports whether err says a run had been taken from its
// worker before it finished.
func IsLeaseLost(err error) bool { return errors.Is(err, errLeaseLost) }

// FinishRun writes a run's outcome, guarded by its state and owner: when
// the run is no longer running under owner it returns an error for which
// IsLeaseLost is true, so the transaction that applied the run's changes
// rolls back and nothing is applied twice. The run keeps owner in
// lease_owner, so that an operator can tell which node ran it (with
// ranks, that it was a node of its rank); only a running run's owner
// holds a lease.
func (s *Store) FinishRun(ctx context.Context, runID, owner string, out RunOutcome, now time.Time) error {
	updates := map[string]any{
		"state":         out.State,
		"active_key":    nil,
		"finished_at":   now,
		"added":         out.Added,
		"updated":       out.Updated,
		"removed":       out.Removed,
		"unchanged":     out.Unchanged,
		"error_code":    out.ErrorCode,
		"error_message": out.ErrorMessage,
	}
	if out.Mode != "" {
		updates["mode"] = out.Mode
	}
	if out.Data != nil {
		updates["data"] = out.Data
	}
	if out.Changes != nil {
		updates["changes"] = out.Changes
	}
	if out.Pending != nil {
		updates["pending"] = out.Pending
	}
	if out.State == RunAwaitingApply {
		// A run held for a person keeps its place: no second run of its
		// kind starts at the location until it is applied or cancelled.
		delete(updates, "active_key")
		delete(updates, "finished_at")
	}
	res := s.conn(ctx).Model(&Run{}).Where("id = ? AND state = ? AND lease_owner = ?", runID, RunRunning, owner).Updates(updates)
	if res.Error != nil {
		return fmt.Errorf("finish run: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return errLeaseLost
	}
	return nil
}

// RetryRun puts a failed attempt back in the queue until availableAt,
// keeping the error for whoever looks meanwhile. An attempt that failed
// for a reason that is neither the panel's nor the run's (the bus between
// the servers down) is not counted: counted false takes back the claim's
// increment, as a hand-back does.
func (s *Store) RetryRun(ctx context.Context, runID, owner string, availableAt time.Time, code, message string, counted bool) error {
	updates := map[string]any{
		"state":            RunQueued,
		"available_at":     availableAt,
		"lease_owner":      "",
		"lease_expires_at": nil,
		"error_code":       code,
		"error_message":    message,
	}
	if !counted {
		updates["attempt"] = gorm.Expr("CASE WHEN attempt > 0 THEN attempt - 1 ELSE 0 END")
	}
	res := s.conn(ctx).Model(&Run{}).Where("id = ? AND state = ? AND lease_owner = ?", runID, RunRunning, owner).Updates(updates)
	if res.Error != nil {
		return fmt.Errorf("retry run: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return errLeaseLost
	}
	return nil
}

// ReleaseRun hands a running run back to the queue, due at once, when its
// worker stops before the attempt has an outcome: the attempt is not
// counted, so the next claim starts it again under the same number. It
// is guarded by the lease like FinishRun, and returns an error for which
// IsLeaseLost is true when the run is no longer owner's.
func (s *Store) ReleaseRun(ctx context.Context, runID, owner string, now time.Time) error {
	res := s.conn(ctx).Model(&Run{}).Where("id = ? AND state = ? AND lease_owner = ?", runID, RunRunning, owner).Updates(map[string]any{
		"state":            RunQueued,
		"available_at":     now,
		"lease_owner":      "",
		"lease_expires_at": nil,
		"attempt":          gorm.Expr("CASE WHEN attempt > 0 THEN attempt - 1 ELSE 0 END"),
	})
	if res.Error != nil {
		return fmt.Errorf("release run: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return errLeaseLost
	}
	return nil
}

// Run loads one run of the account, without its data and changes.
func (s *Store) Run(ctx context.Context, accountID, id string) (Run, error) {
	var r Run
	err := s.conn(ctx).Omit("data", "changes", "pending", "codes").Where("id = ? AND account_id = ?", id, accountID).Take(&r).Error
	if err != nil {
		return Run{}, notFound(err, "run")
	}
	return r, nil
}

// RunForUpdate loads one run of the account and locks it for the change
// that follows in the caller's transaction.
func (s *Store) RunForUpdate(ctx context.Context, accountID, id string) (Run, error) {
	var r Run
	err := lockForUpdate(s.conn(ctx)).Omit("data", "changes", "pending", "codes").Where("id = ? AND account_id = ?", id, accountID).Take(&r).Error
	if err != nil {
		return Run{}, notFound(err, "run")
	}
	return r, nil
}

// RunForWorker loads a run by id alone, for the worker that claimed it.
func (s *Store) RunForWorker(ctx context.Context, id string) (Run, error) {
	var r Run
	if err := s.conn(ctx).Omit("data", "changes", "pending", "codes").Where("id = ?", id).Take(&r).Error; err != nil {
		return Run{}, notFound(err, "run")
	}
	return r, nil
}

// RunPayload loads what a run received and the changes it computed.
func (s *Store) RunPayload(ctx context.Context, accountID, id string) (Run, error) {
	var r Run
	if err := s.conn(ctx).Where("id = ? AND account_id = ?", id, accountID).Take(&r).Error; err != nil {
		return Run{}, notFound(err, "run")
	}
	return r, nil
}

// RunQuery selects a page of an account's runs, newest first.
type RunQuery struct {
	AccountID  string
	LocationID string
	BatchID    string
	State      RunState
	Kind       RunKind
	// Before is the id of the last run of the previous page.
	Before string
	Limit  int
}

// ListRuns returns a page of runs, newest first, and the cursor of the
// next page (empty on the last). Ids are time-ordered, so paging by id is
// paging by creation.
func (s *Store) ListRuns(ctx context.Context, q RunQuery) ([]Run, string, error) {
	db := s.conn(ctx).Omit("data", "changes", "pending", "codes").Where("account_id = ?", q.AccountID)
	if q.LocationID != "" {
		db = db.Where("location_id = ?", q.LocationID)
	}
	if q.BatchID != "" {
		db = db.Where("batch_id = ?", q.BatchID)
	}
	if q.State != "" {
		db = db.Where("state = ?", q.State)
	}
	if q.Kind != "" {
		db = db.Where("kind = ?", q.Kind)
	}
	if q.Before != "" {
		db = db.Where("id < ?", q.Before)
	}
	var runs []Run
	if err := db.Order("id DESC").Limit(q.Limit + 1).Find(&runs).Error; err != nil {
		return nil, "", fmt.Errorf("list runs: %w", err)
	}
	next := ""
	if len(runs) > q.Limit {
		runs = runs[:q.Limit]
		next = runs[len(runs)-1].ID
	}
	return runs, next, nil
}

// CountActiveRuns counts the runs queued or running at a location.
func (s *Store) CountActiveRuns(ctx context.Context, locationID string) (int64, error) {
	var n int64
	err := s.conn(ctx).Model(&Run{}).Where("location_id = ? AND state IN ?", locationID, []RunState{RunQueued, RunRunning}).Count(&n).Error
	return n, err
}
