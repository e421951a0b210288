package models

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// NewEvent describes an Event Log entry to write. Data is encoded as JSON
// and must never carry a user code, password or token.
type NewEvent struct {
	AccountID  string
	LocationID string
	// LocationName is the location's name, given by a producer that has
	// the location at hand; left empty, the writer looks it up.
	LocationName string
	RunID        string
	Type         string
	Severity     Severity
	Message      string
	Data         any
	OccurredAt   time.Time
}

// EventPublisher delivers committed events to live subscribers.
type EventPublisher interface {
	PublishEvents(ctx context.Context, events []Event)
}

// EventLog is the one place that writes Event Log entries: it assigns each
// account's offsets inside the caller's transaction and hands the events to
// the publisher once that transaction commits.
type EventLog struct {
	store     *Store
	publisher EventPublisher
}

// NewEventLog returns an EventLog that publishes through p; p may be nil
// when nothing listens.
func NewEventLog(store *Store, p EventPublisher) *EventLog {
	return &EventLog{store: store, publisher: p}
}

// Append writes the events in the transaction carried by ctx, or in a new
// one. Offsets are taken from the account's counter row, whose update lock
// is held until commit: a second writer waits, so offsets are committed in
// the order they were assigned, and ListEvents, reading no further than the
// counter, never lets a reader resuming "after N" skip one.
//
// In a caller's transaction the events are written when that transaction
// has done all its other work, just before it commits, and Append returns
// no rows (their offsets are not known yet). So every transaction takes the
// counter row last and holds it only for that write: one that locked the
// counter and then waited for a location or a run another transaction
// held, while that one waited for the counter, deadlocked them both (a tap
// beside an All Locations batch of the same account).
func (l *EventLog) Append(ctx context.Context, events ...NewEvent) ([]Event, error) {
	if len(events) == 0 {
		return nil, nil
	}
	if state, ok := ctx.Value(txKey{}).(*txState); ok {
		pending, queued := state.pendingEvents[l]
		if !queued {
			if state.pendingEvents == nil {
				state.pendingEvents = map[*EventLog][]NewEvent{}
			}
			state.beforeCommit = append(state.beforeCommit, func(ctx context.Context) error {
				_, err := l.write(ctx, state.pendingEvents[l])
				return err
			})
		}
		state.pendingEvents[l] = append(pending, events...)
		return nil, nil
	}
	var written []Event
	err := l.store.Tx(ctx, func(ctx context.Context) error {
		var err error
		written, err = l.write(ctx, events)
		return err
	})
	return written, err
}

// write assigns the events their offsets and inserts them, in the
// transaction carried by ctx.
func (l *EventLog) write(ctx context.Context, events []NewEvent) ([]Event, error) {
	// Names are read before the offsets are taken, so the lookup does not
	// lengthen the time the account's counter row stays locked.
	names, err := l.store.missingLocationNames(ctx, events)
	if err != nil {
		return nil, err
	}
	byAccount := map[string][]int{}
	var order []string
	for i, e := range events {
		if _, seen := byAccount[e.AccountID]; !seen {
			order = append(order, e.AccountID)
		}
		byAccount[e.AccountID] = append(byAccount[e.AccountID], i)
	}
	// Two transactions that each write events of the same accounts take
	// their counters in the same order, so that they queue instead of
	// deadlocking.
	slices.Sort(order)
	rows := make([]Event, len(events))
	for _, accountID := range order {
		idx := byAccount[accountID]
		last, err := l.store.bumpEventOffset(ctx, accountID, len(idx))
		if err != nil {
			return nil, err
		}
		first := last - int64(len(idx)) + 1
		for n, i := range idx {
			row, err := eventRow(events[i], names, first+int64(n))
			if err != nil {
				return nil, err
			}
			rows[i] = row
		}
	}
	if err := l.store.conn(ctx).Create(&rows).Error; err != nil {
		return nil, fmt.Errorf("write events: %w", err)
	}
	if l.publisher != nil {
		AfterCommit(ctx, func() { l.publisher.PublishEvents(Detach(ctx), rows) })
	}
	return rows, nil
}

// missingLocationNames looks up, in one query, the names of the events'
// locations that their producers left out.
func (s *Store) missingLocationNames(ctx context.Context, events []NewEvent) (map[string]string, error) {
	var ids []string
	seen := map[string]bool{}
	for _, e := range events {
		if e.LocationID != "" && e.LocationName == "" && !seen[e.LocationID] {
			seen[e.LocationID] = true
			ids = append(ids, e.LocationID)
		}
	}
	names := make(map[string]string, len(ids))
	for chunk := range slices.Chunk(ids, 500) {
		var locs []Location
		if err := s.conn(ctx).Select("id", "name").Where("id IN ?", chunk).Find(&locs).Error; err != nil {
			return nil, fmt.Errorf("name the events' locations: %w", err)
		}
		for _, l := range locs {
			names[l.ID] = l.Name
		}
	}
	return names, nil
}

func eventRow(e NewEvent, names map[string]string, offset int64) (Event, error) {
	row := Event{
		ID:         NewID(),
		AccountID:  e.AccountID,
		Offset:     offset,
		Type:       e.Type,
		Severity:   e.Severity,
		Message:    e.Message,
		OccurredAt: e.OccurredAt,
	}
	if row.Severity == "" {
		row.Severity = SeverityInfo
	}
	if row.OccurredAt.IsZero() {
		row.OccurredAt = time.Now().UTC()
	}
	if e.LocationID != "" {
		row.LocationID = &e.LocationID
		name, known := e.LocationName, e.LocationName != ""
		if !known {
			name, known = names[e.LocationID]
		}
		if known {
			row.LocationName = &name
		}
	}
	if e.RunID != "" {
		row.RunID = &e.RunID
	}
	if e.Data != nil {
		b, err := json.Marshal(e.Data)
		if err != nil {
			return Event{}, fmt.Errorf("encode %s event data: %w", e.Type, err)
		}
		row.Data = string(b)
	}
	return row, nil
}

// bumpEventOffset advances the account's counter by n and returns the new
// last offset. The UPDATE takes the row lock first, so concurrent writers
// of one account queue here rather than deadlocking on a read-then-write.
func (s *Store) bumpEventOffset(ctx context.Context, accountID string, n int) (int64, error) {
	db := s.conn(ctx)
	if IsMySQL(db) {
		// The counter row stays locked until the transaction commits, so
		// every statement spent here is spent by all of the account's
		// writers in turn. LAST_INSERT_ID(expr) hands the new value back
		// in the UPDATE's own answer, saving the read that follows it.
		res, err := db.Statement.ConnPool.ExecContext(ctx,
			"UPDATE accounts SET last_event_offset = LAST_INSERT_ID(last_event_offset + ?) WHERE id = ?", n, accountID)
		if err != nil {
			return 0, fmt.Errorf("advance event offset: %w", err)
		}
		if affected, err := res.RowsAffected(); err != nil || affected == 0 {
			return 0, NotFound("account")
		}
		last, err := res.LastInsertId()
		if err != nil {
			return 0, fmt.Errorf("read event offset: %w", err)
		}
		return last, nil
	}
	res := db.Model(&Account{}).Where("id = ?", accountID).
		UpdateColumn("last_event_offset", gorm.Expr("last_event_offset + ?", n))
	if res.Error != nil {
		return 0, fmt.Errorf("advance event offset: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return 0, NotFound("account")
	}
	var acct Account
	if err := db.Select("last_event_offset").Where("id = ?", accountID).Take(&acct).Error; err != nil {
		return 0, fmt.Errorf("read event offset: %w", err)
	}
	return acct.LastEventOffset, nil
}

// EventQuery selects a page of one account's Event Log.
type EventQuery struct {
	AccountID  string
	LocationID string
	Type       string
	// After pages oldest first from the offset after it; Before pages
	// newest first from the offset before it. At most one is set.
	After  *int64
	Before *int64
	// Newest pages newest first: from Before when it is set, otherwise
	// from the latest entry.
	Newest bool
	Limit  int
}

// ListEvents returns a page of events in the order the query asks for.
//
// The page ends at the account's counter as a statement before it read
// it. MariaDB builds a statement's snapshot by walking the transactions
// still running one at a time, so a snapshot can take in a commit made
// while it walked and miss one made just before: the Event Log could show
// offset 73 without 72, and a client resuming after 71 would step past
// 72 for good. Every offset up to the counter one statement saw was
// committed before the next statement began, so the next one sees them
// all. Outside a transaction each statement takes its own snapshot; in a
// caller's transaction both share one, and the bound is merely harmless.
func (s *Store) ListEvents(ctx context.Context, q EventQuery) ([]Event, error) {
	horizon, err := s.LastEventOffset(ctx, q.AccountID)
	switch {
	case ErrorCode(err) == CodeNotFound:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("list events: %w", err)
	}
	db := s.conn(ctx).Where("account_id = ? AND log_offset <= ?", q.AccountID, horizon)
	if q.LocationID != "" {
		db = db.Where("location_id = ?", q.LocationID)
	}
	if q.Type != "" {
		db = db.Where("type = ?", q.Type)
	}
	desc := q.Before != nil || q.Newest
	switch {
	case q.Before != nil:
		db = db.Where("log_offset < ?", *q.Before)
	case q.After != nil:
		db = db.Where("log_offset > ?", *q.After)
	}
	var events []Event
	err = db.Order(clause.OrderByColumn{Column: clause.Column{Name: "log_offset"}, Desc: desc}).
		Limit(q.Limit).Find(&events).Error
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return events, nil
}

// LastEventOffset returns the newest offset of the account's Event Log.
func (s *Store) LastEventOffset(ctx context.Context, accountID string) (int64, error) {
	var acct Account
	if err := s.conn(ctx).Select("last_event_offset").Where("id = ?", accountID).Take(&acct).Error; err != nil {
		return 0, notFound(err, "account")
	}
	return acct.LastEventOffset, nil
}
