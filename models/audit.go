package models

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Actor is who performs a change, for the audit log and for "requested by".
type Actor struct {
	// Kind is "login", "api_key" or "system".
	Kind      string
	ID        string
	Name      string
	AccountID string
	Role      Role
	ClientIP  string
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the id of the request being served,
// so that what the request changes is audited under it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// SystemActor is the service acting on its own (schedules, seeding).
func SystemActor(accountID, name string) Actor {
	return Actor{Kind: "system", Name: name, AccountID: accountID, Role: RoleOwner}
}

// AuditTarget is the record a change was made to.
type AuditTarget struct {
	Type string
	ID   string
	// Name is how a person recognises the record (a location's name, a
	// login's e-mail), kept as it was at the time of the change.
	Name string
}

// LoginTarget is how the audit log names a login: by its e-mail, which
// tells people apart even where they share a name.
func LoginTarget(l Login) AuditTarget {
	return AuditTarget{Type: "login", ID: l.ID, Name: l.Email}
}

// PersonName is how a login is shown as a person: by name, or by e-mail
// for a login that has no name.
func (l Login) PersonName() string {
	if strings.TrimSpace(l.Name) != "" {
		return l.Name
	}
	return l.Email
}

// LocationNames returns the names of the account's locations among ids,
// by id; an id of no such location is left out.
func (s *Store) LocationNames(ctx context.Context, accountID string, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var locs []Location
	if err := s.conn(ctx).Select("id", "name").Where("account_id = ? AND id IN ?", accountID, ids).Find(&locs).Error; err != nil {
		return nil, fmt.Errorf("load location names: %w", err)
	}
	for _, l := range locs {
		out[l.ID] = l.Name
	}
	return out, nil
}

// AuditChange is one audited change: what was done to which record, and
// the record's values before and after (nil where there is no such side).
// Neither may hold a secret.
type AuditChange struct {
	Action string
	Target AuditTarget
	Before any
	After  any
}

// Audit records one change in the transaction carried by ctx, so the entry
// exists exactly when the change does.
func (s *Store) Audit(ctx context.Context, actor Actor, change AuditChange) error {
	return s.AuditAll(ctx, actor, []AuditChange{change})
}

// auditInsertChunk bounds one multi-row insert of audit entries, well
// below the placeholders a statement may carry.
const auditInsertChunk = 500

// AuditAll records several changes by one actor in the transaction carried
// by ctx, in as few statements as it can: a force sync of a whole group
// is one entry per location.
func (s *Store) AuditAll(ctx context.Context, actor Actor, changes []AuditChange) error {
	if len(changes) == 0 {
		return nil
	}
	now := time.Now().UTC()
	// The entry names the request that made the change, as logged and as
	// answered in X-Request-Id.
	requestID := RequestID(ctx)
	entries := make([]AuditEntry, len(changes))
	for i, ch := range changes {
		before, err := auditJSON(ch.Before)
		if err != nil {
			return err
		}
		after, err := auditJSON(ch.After)
		if err != nil {
			return err
		}
		entries[i] = AuditEntry{
			ID:         NewID(),
			AccountID:  actor.AccountID,
			ActorKind:  actor.Kind,
			ActorID:    actor.ID,
			ActorName:  truncateRunes(actor.Name, 254),
			Action:     ch.Action,
			TargetType: ch.Target.Type,
			TargetID:   ch.Target.ID,
			TargetName: truncateRunes(ch.Target.Name, 254),
			Before:     before,
			After:      after,
			RequestID:  requestID,
			ClientIP:   actor.ClientIP,
			CreatedAt:  now,
		}
	}
	if err := s.conn(ctx).CreateInBatches(entries, auditInsertChunk).Error; err != nil {
		return fmt.Errorf("write audit entries: %w", err)
	}
	return nil
}

func auditJSON(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode audit values: %w", err)
	}
	if string(b) == "null" {
		return "", nil
	}
	return string(b), nil
}

func truncateRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// AuditQuery filters an account's audit log. Empty fields match anything.
type AuditQuery struct {
	AccountID  string
	TargetType string
	TargetID   string
	ActorID    string
	Action     string
	// Before is the cursor of the last entry of the previous page.
	Before string
	Limit  int
}

// Audit log page sizes.
const (
	DefaultAuditPageSize = 50
	MaxAuditPageSize     = 200
)

// ListAudit returns a page of an account's audit log, newest first, and
// the cursor of the next page (empty on the last).
func (s *Store) ListAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, string, error) {
	db := s.conn(ctx).Where("account_id = ?", q.AccountID)
	if q.TargetType != "" {
		db = db.Where("target_type = ?", q.TargetType)
	}
	if q.TargetID != "" {
		db = db.Where("target_id = ?", q.TargetID)
	}
	if q.ActorID != "" {
		db = db.Where("actor_id = ?", q.ActorID)
	}
	if q.Action != "" {
		db = db.Where("action = ?", q.Action)
	}
	if q.Before != "" {
		if _, err := uuid.Parse(q.Before); err != nil {
			return nil, "", FieldError("before", "before must be the id of an audit entry")
		}
		db = db.Where("id < ?", q.Before)
	}
	var entries []AuditEntry
	// Ids are time-ordered (UUIDv7), so their order is the log's order and
	// the last id of a page is the cursor of the next.
	if err := db.Order("id DESC").Limit(q.Limit + 1).Find(&entries).Error; err != nil {
		return nil, "", fmt.Errorf("list audit entries: %w", err)
	}
	next := ""
	if len(entries) > q.Limit {
		entries = entries[:q.Limit]
		next = entries[len(entries)-1].ID
	}
	return entries, next, nil
}
