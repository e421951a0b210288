package models

import (
	"context"
	"fmt"
	"time"
)

// CreateRealtimeTicket stores a ticket's digest.
func (s *Store) CreateRealtimeTicket(ctx context.Context, t RealtimeTicket) error {
	if err := s.conn(ctx).Create(&t).Error; err != nil {
		return fmt.Errorf("create realtime ticket: %w", err)
	}
	return nil
}

// ConsumeRealtimeTicket marks an unexpired ticket used and returns it. A
// ticket works once: the guarded update lets only one caller win.
func (s *Store) ConsumeRealtimeTicket(ctx context.Context, hash string, now time.Time) (RealtimeTicket, error) {
	var t RealtimeTicket
	err := s.Tx(ctx, func(ctx context.Context) error {
		if err := s.conn(ctx).Where("token_hash = ?", hash).Take(&t).Error; err != nil {
			return notFound(err, "ticket")
		}
		res := s.conn(ctx).Model(&RealtimeTicket{}).
			Where("id = ? AND used_at IS NULL AND expires_at > ?", t.ID, now).Update("used_at", now)
		if res.Error != nil {
			return fmt.Errorf("use realtime ticket: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return NotFound("ticket")
		}
		return nil
	})
	return t, err
}

// DeleteExpiredRealtimeTickets removes tickets past their expiry.
func (s *Store) DeleteExpiredRealtimeTickets(ctx context.Context, now time.Time) (int64, error) {
	res := s.conn(ctx).Where("expires_at < ?", now).Delete(&RealtimeTicket{})
	return res.RowsAffected, res.Error
}

// LocationIDsInAccount returns which of ids are locations of the account.
func (s *Store) LocationIDsInAccount(ctx context.Context, accountID string, ids []string) (map[string]bool, error) {
	var found []string
	if err := s.conn(ctx).Model(&Location{}).Where("account_id = ? AND id IN ?", accountID, ids).Pluck("id", &found).Error; err != nil {
		return nil, fmt.Errorf("check locations: %w", err)
	}
	out := make(map[string]bool, len(found))
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}

// OldestEventOffset returns the oldest offset the account's Event Log
// still holds, and false when it holds none.
func (s *Store) OldestEventOffset(ctx context.Context, accountID string) (int64, bool, error) {
	var e Event
	err := s.conn(ctx).Select("log_offset").Where("account_id = ?", accountID).Order("log_offset").Limit(1).Find(&e).Error
	if err != nil {
		return 0, false, fmt.Errorf("find oldest event: %w", err)
	}
	return e.Offset, e.Offset > 0, nil
}

// DeleteEventsBefore removes up to limit events that occurred before
// cutoff, oldest first, and returns how many it removed.
func (s *Store) DeleteEventsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	var ids []string
	if err := s.conn(ctx).Model(&Event{}).Where("occurred_at < ?", cutoff).Order("occurred_at").Limit(limit).Pluck("id", &ids).Error; err != nil {
		return 0, fmt.Errorf("find expired events: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	res := s.conn(ctx).Where("id IN ?", ids).Delete(&Event{})
	return res.RowsAffected, res.Error
}

// GrantStaff lets a support login watch the account.
func (s *Store) GrantStaff(ctx context.Context, actor Actor, loginEmail string, expiresAt *time.Time) (StaffGrant, Login, error) {
	var (
		g     StaffGrant
		login Login
	)
	err := s.Tx(ctx, func(ctx context.Context) error {
		var err error
		login, err = s.LoginByEmail(ctx, loginEmail)
		// One answer for "no such login" and "not a support login of
		// another account", so the endpoint cannot be used to learn which
		// e-mails have logins.
		noSuch := &Error{Code: CodeNotFound, Field: "email", Message: "no support login of another account has that e-mail"}
		switch {
		case ErrorCode(err) == CodeNotFound:
			return noSuch
		case err != nil:
			return err
		case login.Role != RoleSupport || login.AccountID == actor.AccountID:
			return noSuch
		}
		g = StaffGrant{ID: NewID(), AccountID: actor.AccountID, LoginID: login.ID, GrantedBy: actor.ID, ExpiresAt: expiresAt}
		if err := s.conn(ctx).Create(&g).Error; err != nil {
			if isDuplicate(err) {
				return Errorf(CodeConflict, "%s already has access to this account", login.Email)
			}
			return fmt.Errorf("grant staff access: %w", err)
		}
		return s.Audit(ctx, actor, AuditChange{
			Action: "staff.grant", Target: AuditTarget{Type: "staff_grant", ID: g.ID, Name: login.Email},
			After: map[string]any{"login_id": login.ID, "email": login.Email, "expires_at": expiresAt},
		})
	})
	return g, login, err
}

// StaffGrantView is a staff grant with the support login it is for, so
// that an owner sees whom they let in.
type StaffGrantView struct {
	StaffGrant
	LoginEmail string
	LoginName  string
}

// StaffGrants lists who has been granted access to the account, oldest
// first.
func (s *Store) StaffGrants(ctx context.Context, accountID string) ([]StaffGrantView, error) {
	var grants []StaffGrant
	if err := s.conn(ctx).Where("account_id = ?", accountID).Order("created_at").Find(&grants).Error; err != nil {
		return nil, fmt.Errorf("list staff grants: %w", err)
	}
	if len(grants) == 0 {
		return []StaffGrantView{}, nil
	}
	ids := make([]string, len(grants))
	for i, g := range grants {
		ids[i] = g.LoginID
	}
	var logins []Login
	if err := s.conn(ctx).Select("id", "email", "name").Where("id IN ?", ids).Find(&logins).Error; err != nil {
		return nil, fmt.Errorf("load granted logins: %w", err)
	}
	byID := make(map[string]Login, len(logins))
	for _, l := range logins {
		byID[l.ID] = l
	}
	out := make([]StaffGrantView, len(grants))
	for i, g := range grants {
		l := byID[g.LoginID]
		out[i] = StaffGrantView{StaffGrant: g, LoginEmail: l.Email, LoginName: l.Name}
	}
	return out, nil
}

// RevokeStaffGrant removes a grant of the account and returns it.
func (s *Store) RevokeStaffGrant(ctx context.Context, actor Actor, grantID string) (StaffGrant, error) {
	var g StaffGrant
	err := s.Tx(ctx, func(ctx context.Context) error {
		if err := s.conn(ctx).Where("id = ? AND account_id = ?", grantID, actor.AccountID).Take(&g).Error; err != nil {
			return notFound(err, "staff grant")
		}
		res := s.conn(ctx).Where("id = ? AND account_id = ?", grantID, actor.AccountID).Delete(&StaffGrant{})
		if res.Error != nil {
			return fmt.Errorf("revoke staff grant: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return NotFound("staff grant")
		}
		// Logins are never deleted, so the grant's login is there to name.
		login, err := s.LoginByID(ctx, g.LoginID)
		if err != nil {
			return err
		}
		return s.Audit(ctx, actor, AuditChange{
			Action: "staff.revoke", Target: AuditTarget{Type: "staff_grant", ID: grantID, Name: login.Email},
			Before: map[string]any{"login_id": g.LoginID, "email": login.Email, "expires_at": g.ExpiresAt},
		})
	})
	return g, err
}

// HasStaffGrant reports whether the login may watch the account now.
func (s *Store) HasStaffGrant(ctx context.Context, loginID, accountID string, now time.Time) (bool, error) {
	_, ok, err := s.ActiveStaffGrant(ctx, loginID, accountID, now)
	return ok, err
}

// ActiveStaffGrant returns the login's grant to the account when it is in
// force at now, and false when there is none. A watcher keeps the grant's
// ExpiresAt (nil: no expiry) to end its access at that moment.
func (s *Store) ActiveStaffGrant(ctx context.Context, loginID, accountID string, now time.Time) (StaffGrant, bool, error) {
	var grants []StaffGrant
	err := s.conn(ctx).
		Where("login_id = ? AND account_id = ? AND (expires_at IS NULL OR expires_at > ?)", loginID, accountID, now).
		Limit(1).Find(&grants).Error
	if err != nil {
		return StaffGrant{}, false, fmt.Errorf("find staff grant: %w", err)
	}
	if len(grants) == 0 {
		return StaffGrant{}, false, nil
	}
	return grants[0], true, nil
}

// GrantedAccount is a customer account a support login may act on.
type GrantedAccount struct {
	AccountID   string
	AccountName string
	ExpiresAt   *time.Time
}

// GrantedAccounts lists the accounts whose staff grants to the login are
// in force now.
func (s *Store) GrantedAccounts(ctx context.Context, loginID string, now time.Time) ([]GrantedAccount, error) {
	var out []GrantedAccount
	err := s.conn(ctx).Table("staff_grants").
		Select("staff_grants.account_id AS account_id, accounts.name AS account_name, staff_grants.expires_at AS expires_at").
		Joins("JOIN accounts ON accounts.id = staff_grants.account_id").
		Where("staff_grants.login_id = ? AND (staff_grants.expires_at IS NULL OR staff_grants.expires_at > ?)", loginID, now).
		Order("accounts.name").Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("list granted accounts: %w", err)
	}
	return out, nil
}
