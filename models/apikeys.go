package models

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaxActiveAPIKeys is how many unrevoked, unexpired API keys one account
// may hold. Keys are for a handful of integrations; a script that creates
// one per run would otherwise fill the table.
const MaxActiveAPIKeys = 100

// CreateAPIKey stores a new key of the actor's account and writes its
// audit entry. An account already holding MaxActiveAPIKeys active keys
// answers conflict, and nothing is written. prefixTaken reports that
// another key has the same lookup prefix, so the caller may draw another.
func (s *Store) CreateAPIKey(ctx context.Context, actor Actor, k APIKey, now time.Time) (_ APIKey, prefixTaken bool, _ error) {
	k.AccountID = actor.AccountID
	k.CreatedBy = actor.ID
	k.CreatedAt = now
	err := s.Tx(ctx, func(ctx context.Context) error {
		prefixTaken = false
		db := s.conn(ctx)
		// Locking the account row queues concurrent creations of one
		// account, so two of them cannot both pass the cap.
		var acct Account
		if err := lockForUpdate(db).Select("id").Where("id = ?", actor.AccountID).Take(&acct).Error; err != nil {
			return notFound(err, "account")
		}
		var active int64
		err := db.Model(&APIKey{}).
			Where("account_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", actor.AccountID, now).
			Count(&active).Error
		if err != nil {
			return fmt.Errorf("count API keys: %w", err)
		}
		if active >= MaxActiveAPIKeys {
			return Errorf(CodeConflict, "the account already has %d active API keys; revoke one first", MaxActiveAPIKeys)
		}
		if err := db.Create(&k).Error; err != nil {
			if isDuplicate(err) {
				prefixTaken = true
				return Errorf(CodeConflict, "an API key with that prefix already exists")
			}
			return fmt.Errorf("create API key: %w", err)
		}
		return s.Audit(ctx, actor, AuditChange{
			Action: "api_key.created", Target: AuditTarget{Type: "api_key", ID: k.ID, Name: k.Name},
			After: apiKeyAuditValues(k),
		})
	})
	if err != nil {
		return APIKey{}, prefixTaken, err
	}
	return k, false, nil
}

// APIKeyView is a key with the login that created it, so that a list of
// keys says who made each by name rather than by id.
type APIKeyView struct {
	APIKey
	Creator LoginRef
}

// LoginRef names a login for people. Name and Email are empty when the
// login cannot be found.
type LoginRef struct {
	ID    string
	Name  string
	Email string
}

// APIKeys lists every key of the account, revoked and expired ones
// included, newest first, each with its creator.
func (s *Store) APIKeys(ctx context.Context, accountID string) ([]APIKeyView, error) {
	var keys []APIKey
	err := s.conn(ctx).Where("account_id = ?", accountID).Order("created_at DESC, id DESC").Find(&keys).Error
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return s.withCreators(ctx, keys)
}

// APIKey loads one key of the account, with its creator; another
// account's key is not found.
func (s *Store) APIKey(ctx context.Context, accountID, id string) (APIKeyView, error) {
	var k APIKey
	if err := s.conn(ctx).Where("id = ? AND account_id = ?", id, accountID).Take(&k).Error; err != nil {
		return APIKeyView{}, notFound(err, "API key")
	}
	views, err := s.withCreators(ctx, []APIKey{k})
	if err != nil {
		return APIKeyView{}, err
	}
	return views[0], nil
}

// withCreators pairs keys with the logins that created them, in one
// query for all of them.
func (s *Store) withCreators(ctx context.Context, keys []APIKey) ([]APIKeyView, error) {
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		if !slices.Contains(ids, k.CreatedBy) {
			ids = append(ids, k.CreatedBy)
		}
	}
	refs, err := s.LoginRefs(ctx, ids)
	if err != nil {
		return nil, err
	}
	views := make([]APIKeyView, len(keys))
	for i, k := range keys {
		ref, ok := refs[k.CreatedBy]
		if !ok {
			ref = LoginRef{ID: k.CreatedBy}
		}
		views[i] = APIKeyView{APIKey: k, Creator: ref}
	}
	return views, nil
}

// LoginRefs names the logins with the given ids, by id; an id no login
// has is left out.
func (s *Store) LoginRefs(ctx context.Context, ids []string) (map[string]LoginRef, error) {
	out := make(map[string]LoginRef, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var logins []Login
	if err := s.conn(ctx).Select("id", "name", "email").Where("id IN ?", ids).Find(&logins).Error; err != nil {
		return nil, fmt.Errorf("load logins: %w", err)
	}
	for _, l := range logins {
		out[l.ID] = LoginRef{ID: l.ID, Name: l.Name, Email: l.Email}
	}
	return out, nil
}

// APIKeyByPrefix finds a key by its public lookup part, whatever its
// account: the step before its secret is checked.
func (s *Store) APIKeyByPrefix(ctx context.Context, prefix string) (APIKey, error) {
	var k APIKey
	if err := s.conn(ctx).Where("prefix = ?", prefix).Take(&k).Error; err != nil {
		return APIKey{}, notFound(err, "API key")
	}
	return k, nil
}

// RevokeAPIKey revokes a key of the actor's account and returns it.
// Revoking a key already revoked changes nothing and writes no audit
// entry, so the call can be repeated safely.
func (s *Store) RevokeAPIKey(ctx context.Context, actor Actor, id string, now time.Time) (APIKey, error) {
	var k APIKey
	err := s.Tx(ctx, func(ctx context.Context) error {
		// Reset, or a second attempt's Take would add the first one's
		// primary key to its conditions.
		k = APIKey{}
		db := s.conn(ctx)
		if err := lockForUpdate(db).Where("id = ? AND account_id = ?", id, actor.AccountID).Take(&k).Error; err != nil {
			return notFound(err, "API key")
		}
		if k.RevokedAt != nil {
			return nil
		}
		res := db.Model(&APIKey{}).Where("id = ? AND revoked_at IS NULL", k.ID).Update("revoked_at", now)
		if res.Error != nil {
			return fmt.Errorf("revoke API key: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		before := apiKeyAuditValues(k)
		k.RevokedAt = &now
		return s.Audit(ctx, actor, AuditChange{
			Action: "api_key.revoked", Target: AuditTarget{Type: "api_key", ID: k.ID, Name: k.Name},
			Before: before, After: apiKeyAuditValues(k),
		})
	})
	if err != nil {
		return APIKey{}, err
	}
	return k, nil
}

// TouchAPIKey records that a key was used at now, unless that was already
// recorded less than every ago: the guard keeps a busy key from writing on
// every request, across all nodes.
func (s *Store) TouchAPIKey(ctx context.Context, id string, now time.Time, every time.Duration) error {
	err := s.conn(ctx).Model(&APIKey{}).
		Where("id = ? AND (last_used_at IS NULL OR last_used_at <= ?)", id, now.Add(-every)).
		Update("last_used_at", now).Error
	if err != nil {
		return fmt.Errorf("record API key use: %w", err)
	}
	return nil
}

// apiKeyAuditValues is what the audit log keeps of a key: never its secret
// or the secret's digest.
func apiKeyAuditValues(k APIKey) map[string]any {
	return map[string]any{
		"name": k.Name, "prefix": k.Prefix, "scopes": strings.Split(k.Scopes, ","),
		"expires_at": k.ExpiresAt, "revoked_at": k.RevokedAt,
	}
}
