package models

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Login page sizes.
const (
	DefaultLoginPageSize = 50
	MaxLoginPageSize     = 200
)

// ListLogins returns a page of the account's logins in the order they
// were created, and the cursor of the next page (empty on the last).
func (s *Store) ListLogins(ctx context.Context, accountID, after string, limit int) ([]Login, string, error) {
	db := s.conn(ctx).Where("account_id = ?", accountID)
	if after != "" {
		if _, err := uuid.Parse(after); err != nil {
			return nil, "", FieldError("cursor", "cursor must be the id of a login")
		}
		db = db.Where("id > ?", after)
	}
	var logins []Login
	// Ids are time-ordered (UUIDv7), so id order is creation order.
	if err := db.Order("id").Limit(limit + 1).Find(&logins).Error; err != nil {
		return nil, "", fmt.Errorf("list logins: %w", err)
	}
	next := ""
	if len(logins) > limit {
		logins = logins[:limit]
		next = logins[len(logins)-1].ID
	}
	return logins, next, nil
}

// LoginInAccount loads one login of the account, locked for the change
// that follows when forUpdate is set. Another account's login is not found.
func (s *Store) LoginInAccount(ctx context.Context, accountID, id string, forUpdate bool) (Login, error) {
	db := s.conn(ctx)
	if forUpdate {
		db = lockForUpdate(db)
	}
	var l Login
	if err := db.Where("id = ? AND account_id = ?", id, accountID).Take(&l).Error; err != nil {
		return Login{}, notFound(err, "login")
	}
	return l, nil
}

// LockAccount takes the account's row lock for the rest of the
// transaction carried by ctx. Changes to an account's logins take it
// first, so two admins demoting the last two owners at once cannot both
// pass the last-owner check.
func (s *Store) LockAccount(ctx context.Context, accountID string) (Account, error) {
	var acct Account
	if err := lockForUpdate(s.conn(ctx)).Where("id = ?", accountID).Take(&acct).Error; err != nil {
		return Account{}, notFound(err, "account")
	}
	return acct, nil
}

// CountActiveOwners counts the account's owners who can sign in: not
// deactivated and past their invitation.
func (s *Store) CountActiveOwners(ctx context.Context, accountID string) (int64, error) {
	var n int64
	err := s.conn(ctx).Model(&Login{}).
		Where("account_id = ? AND role = ? AND disabled_at IS NULL AND password_hash <> ''", accountID, RoleOwner).
		Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("count owners: %w", err)
	}
	return n, nil
}

// UpdateLoginFields writes the given columns of one login.
func (s *Store) UpdateLoginFields(ctx context.Context, id string, fields map[string]any) error {
	fields["updated_at"] = time.Now().UTC()
	if err := s.conn(ctx).Model(&Login{}).Where("id = ?", id).Updates(fields).Error; err != nil {
		return fmt.Errorf("update login: %w", err)
	}
	return nil
}

// LoginByEmailAnyState finds a login by e-mail whatever its state.
func (s *Store) LoginByEmailAnyState(ctx context.Context, email string) (Login, error) {
	var l Login
	if err := s.conn(ctx).Where("email = ?", NormalizeEmail(email)).Take(&l).Error; err != nil {
		return Login{}, notFound(err, "login")
	}
	return l, nil
}

// RevokeLoginSessions ends every live session of the login but keep (which
// may be empty) and returns the ids of those it ended, so their live
// connections can be closed.
func (s *Store) RevokeLoginSessions(ctx context.Context, loginID, keep, reason string, now time.Time) ([]string, error) {
	var ids []string
	err := s.conn(ctx).Model(&Session{}).
		Where("login_id = ? AND revoked_at IS NULL AND id <> ?", loginID, keep).
		Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("find sessions: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	err = s.conn(ctx).Model(&Session{}).Where("id IN ? AND revoked_at IS NULL", ids).
		Updates(map[string]any{"revoked_at": now, "revoke_reason": reason}).Error
	if err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", err)
	}
	return ids, nil
}

// CreateLoginToken stores a mailed token. Earlier unused tokens of the same
// purpose for the login stop working, so only the newest mail's link does.
func (s *Store) CreateLoginToken(ctx context.Context, tok LoginToken) error {
	return s.Tx(ctx, func(ctx context.Context) error {
		if err := s.ExpireLoginTokens(ctx, tok.LoginID, tok.Purpose, tok.CreatedAt); err != nil {
			return err
		}
		if err := s.conn(ctx).Create(&tok).Error; err != nil {
			return fmt.Errorf("store login token: %w", err)
		}
		return nil
	})
}

// ExpireLoginTokens uses up the login's unused tokens of purpose; an empty
// purpose means every purpose.
func (s *Store) ExpireLoginTokens(ctx context.Context, loginID string, purpose TokenPurpose, now time.Time) error {
	db := s.conn(ctx).Model(&LoginToken{}).Where("login_id = ? AND used_at IS NULL", loginID)
	if purpose != "" {
		db = db.Where("purpose = ?", purpose)
	}
	if err := db.Update("used_at", now).Error; err != nil {
		return fmt.Errorf("expire login tokens: %w", err)
	}
	return nil
}

// ConsumeLoginToken uses up an unused, unexpired token of purpose and
// returns it. Only one of two concurrent uses of a token wins.
func (s *Store) ConsumeLoginToken(ctx context.Context, hash string, purpose TokenPurpose, now time.Time) (LoginToken, error) {
	var tok LoginToken
	err := s.conn(ctx).Where("token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?", hash, purpose, now).Take(&tok).Error
	if err != nil {
		return LoginToken{}, notFound(err, "token")
	}
	res := s.conn(ctx).Model(&LoginToken{}).Where("id = ? AND used_at IS NULL", tok.ID).Update("used_at", now)
	if res.Error != nil {
		return LoginToken{}, fmt.Errorf("use login token: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return LoginToken{}, NotFound("token")
	}
	return tok, nil
}

// RecentLoginToken reports whether a token of purpose was issued to the
// login since the given time, so a form cannot be used to flood a mailbox.
func (s *Store) RecentLoginToken(ctx context.Context, loginID string, purpose TokenPurpose, since time.Time) (bool, error) {
	var n int64
	err := s.conn(ctx).Model(&LoginToken{}).
		Where("login_id = ? AND purpose = ? AND created_at > ?", loginID, purpose, since).Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("find recent tokens: %w", err)
	}
	return n > 0, nil
}

// StaffAccount returns the operator's account of support staff, creating
// it the first time.
func (s *Store) StaffAccount(ctx context.Context) (Account, error) {
	var acct Account
	err := s.Tx(ctx, func(ctx context.Context) error {
		// Reset, or a second attempt's Take would add the first one's
		// primary key to its conditions.
		acct = Account{}
		err := s.conn(ctx).Where("kind = ?", AccountStaff).Order("created_at").Take(&acct).Error
		if err == nil {
			return nil
		}
		if ErrorCode(notFound(err, "account")) != CodeNotFound {
			return fmt.Errorf("find staff account: %w", err)
		}
		acct = Account{ID: NewID(), Name: "Support staff", Kind: AccountStaff}
		if err := s.conn(ctx).Create(&acct).Error; err != nil {
			return fmt.Errorf("create staff account: %w", err)
		}
		return nil
	})
	return acct, err
}
