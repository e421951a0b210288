package models

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// CreateAccount inserts a new account.
func (s *Store) CreateAccount(ctx context.Context, name string) (Account, error) {
	acct := Account{ID: NewID(), Name: name, Kind: AccountCustomer}
	if err := s.conn(ctx).Create(&acct).Error; err != nil {
		return Account{}, fmt.Errorf("create account: %w", err)
	}
	return acct, nil
}

// Account loads one account.
func (s *Store) Account(ctx context.Context, id string) (Account, error) {
	var acct Account
	if err := s.conn(ctx).Where("id = ?", id).Take(&acct).Error; err != nil {
		return Account{}, notFound(err, "account")
	}
	return acct, nil
}

// NormalizeEmail lower-cases and trims an e-mail address so look-ups do
// not depend on how it was typed.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// CreateLogin inserts a login whose password is already hashed. An e-mail
// already in use answers conflict.
func (s *Store) CreateLogin(ctx context.Context, l Login) (Login, error) {
	if l.ID == "" {
		l.ID = NewID()
	}
	l.Email = NormalizeEmail(l.Email)
	if err := s.conn(ctx).Create(&l).Error; err != nil {
		if isDuplicate(err) {
			return Login{}, Errorf(CodeConflict, "a login with e-mail %s already exists", l.Email)
		}
		return Login{}, fmt.Errorf("create login: %w", err)
	}
	return l, nil
}

// LoginByEmail finds an enabled login by e-mail.
func (s *Store) LoginByEmail(ctx context.Context, email string) (Login, error) {
	var l Login
	err := s.conn(ctx).Where("email = ? AND disabled_at IS NULL", NormalizeEmail(email)).Take(&l).Error
	if err != nil {
		return Login{}, notFound(err, "login")
	}
	return l, nil
}

// LoginByID loads one login.
func (s *Store) LoginByID(ctx context.Context, id string) (Login, error) {
	var l Login
	if err := s.conn(ctx).Where("id = ?", id).Take(&l).Error; err != nil {
		return Login{}, notFound(err, "login")
	}
	return l, nil
}

// CreateSession starts a session with its first refresh token.
func (s *Store) CreateSession(ctx context.Context, sess Session, first RefreshToken) error {
	return s.Tx(ctx, func(ctx context.Context) error {
		if err := s.conn(ctx).Create(&sess).Error; err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		first.SessionID = sess.ID
		if err := s.conn(ctx).Create(&first).Error; err != nil {
			return fmt.Errorf("create refresh token: %w", err)
		}
		return nil
	})
}

// ActiveSessionLogin returns the login of an unrevoked, unexpired session,
// in one query: the check every authenticated request makes.
func (s *Store) ActiveSessionLogin(ctx context.Context, sessionID, loginID string, now time.Time) (Login, error) {
	var l Login
	err := s.conn(ctx).Table("logins").Select("logins.*").
		Joins("JOIN sessions ON sessions.login_id = logins.id").
		Where("sessions.id = ? AND logins.id = ? AND sessions.revoked_at IS NULL AND sessions.expires_at > ? AND logins.disabled_at IS NULL",
			sessionID, loginID, now).
		Take(&l).Error
	if err != nil {
		return Login{}, notFound(err, "session")
	}
	return l, nil
}

// RefreshTokenByHash finds a refresh token and its session, locking both
// rows for the rotation that follows so two concurrent refreshes of one
// token cannot both succeed.
func (s *Store) RefreshTokenByHash(ctx context.Context, hash string) (RefreshToken, Session, error) {
	var tok RefreshToken
	db := s.conn(ctx)
	if err := lockForUpdate(db).Where("token_hash = ?", hash).Take(&tok).Error; err != nil {
		return RefreshToken{}, Session{}, notFound(err, "refresh token")
	}
	var sess Session
	if err := lockForUpdate(db).Where("id = ?", tok.SessionID).Take(&sess).Error; err != nil {
		return RefreshToken{}, Session{}, notFound(err, "session")
	}
	return tok, sess, nil
}

// RotateRefreshToken marks old as used and stores next in the same session.
// The update is guarded by used_at IS NULL so only one rotation wins.
func (s *Store) RotateRefreshToken(ctx context.Context, old RefreshToken, next RefreshToken, now time.Time) error {
	db := s.conn(ctx)
	res := db.Model(&RefreshToken{}).Where("id = ? AND used_at IS NULL", old.ID).Update("used_at", now)
	if res.Error != nil {
		return fmt.Errorf("mark refresh token used: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return Errorf(CodeUnauthorized, "refresh token already used")
	}
	next.SessionID = old.SessionID
	if err := db.Create(&next).Error; err != nil {
		return fmt.Errorf("store refresh token: %w", err)
	}
	if err := db.Model(&Session{}).Where("id = ?", old.SessionID).Update("last_used_at", now).Error; err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// RevokeSession ends a session and with it every token of its family.
func (s *Store) RevokeSession(ctx context.Context, sessionID, reason string, now time.Time) error {
	err := s.conn(ctx).Model(&Session{}).Where("id = ? AND revoked_at IS NULL", sessionID).
		Updates(map[string]any{"revoked_at": now, "revoke_reason": reason}).Error
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// lockForUpdate adds FOR UPDATE on MySQL. SQLite has no row locks; its
// transactions already hold the database's write lock (BEGIN IMMEDIATE).
func lockForUpdate(db *gorm.DB) *gorm.DB {
	if IsMySQL(db) {
		return db.Clauses(clauseLocking("UPDATE", ""))
	}
	return db
}

// SetPasswordHash replaces a login's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, loginID, hash string) error {
	res := s.conn(ctx).Model(&Login{}).Where("id = ?", loginID).Update("password_hash", hash)
	if res.Error != nil {
		return fmt.Errorf("set password: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return NotFound("login")
	}
	return nil
}
