package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Link states.
const (
	LinkDraft = "draft"
	LinkSaved = "saved"
)

// Propagation scopes of a link.
const (
	PropagateNone  = "none"
	PropagateGroup = "group"
	PropagateAll   = "all"
)

// CreateLink inserts a link in the caller's transaction. A link for the
// same user slot, or for the same login at the same location, already
// there is a conflict.
func (s *Store) CreateLink(ctx context.Context, l *Link) error {
	if l.ID == "" {
		l.ID = NewID()
	}
	err := s.Tx(ctx, func(ctx context.Context) error {
		return s.conn(ctx).Transaction(func(tx *gorm.DB) error { return tx.Create(l).Error })
	})
	if isDuplicate(err) {
		return Errorf(CodeConflict, "user %d at this location, or this login at this location, is already linked (or proposed)", l.UserNumber)
	}
	if err != nil {
		return fmt.Errorf("create link: %w", err)
	}
	return nil
}

// Link loads one link of the account.
func (s *Store) Link(ctx context.Context, accountID, id string) (Link, error) {
	var l Link
	if err := s.conn(ctx).Where("id = ? AND account_id = ?", id, accountID).Take(&l).Error; err != nil {
		return Link{}, notFound(err, "link")
	}
	return l, nil
}

// LinksByIDs loads the account's links with the given ids, locked for the
// change that follows in the caller's transaction.
func (s *Store) LinksByIDs(ctx context.Context, accountID string, ids []string) ([]Link, error) {
	var links []Link
	if err := lockForUpdate(s.conn(ctx)).Where("account_id = ? AND id IN ?", accountID, ids).Order("id").Find(&links).Error; err != nil {
		return nil, fmt.Errorf("load links: %w", err)
	}
	return links, nil
}

// LinkQuery selects a page of an account's links, oldest first.
type LinkQuery struct {
	AccountID  string
	State      string
	LoginID    string
	LocationID string
	// After is the id of the last link of the previous page.
	After string
	Limit int
}

// ListLinks returns a page of links and the cursor of the next page (empty
// on the last).
func (s *Store) ListLinks(ctx context.Context, q LinkQuery) ([]Link, string, error) {
	db := s.conn(ctx).Where("account_id = ?", q.AccountID)
	if q.State != "" {
		db = db.Where("state = ?", q.State)
	}
	if q.LoginID != "" {
		db = db.Where("login_id = ?", q.LoginID)
	}
	if q.LocationID != "" {
		db = db.Where("location_id = ?", q.LocationID)
	}
	if q.After != "" {
		db = db.Where("id > ?", q.After)
	}
	var links []Link
	if err := db.Order("id").Limit(q.Limit + 1).Find(&links).Error; err != nil {
		return nil, "", fmt.Errorf("list links: %w", err)
	}
	next := ""
	if len(links) > q.Limit {
		links = links[:q.Limit]
		next = links[len(links)-1].ID
	}
	return links, next, nil
}

// LinksAt returns the links at the given locations, drafts included.
func (s *Store) LinksAt(ctx context.Context, locationIDs []string) ([]Link, error) {
	var links []Link
	if len(locationIDs) == 0 {
		return links, nil
	}
	if err := s.conn(ctx).Where("location_id IN ?", locationIDs).Find(&links).Error; err != nil {
		return nil, fmt.Errorf("load links: %w", err)
	}
	return links, nil
}

// SavedLinksAt returns a location's saved links by user number.
func (s *Store) SavedLinksAt(ctx context.Context, locationID string) (map[int]Link, error) {
	var links []Link
	if err := s.conn(ctx).Where("location_id = ? AND state = ?", locationID, LinkSaved).Find(&links).Error; err != nil {
		return nil, fmt.Errorf("load saved links: %w", err)
	}
	out := make(map[int]Link, len(links))
	for _, l := range links {
		out[l.UserNumber] = l
	}
	return out, nil
}

// SavedLinksOfLogin returns a login's saved links.
func (s *Store) SavedLinksOfLogin(ctx context.Context, loginID string) ([]Link, error) {
	var links []Link
	if err := s.conn(ctx).Where("login_id = ? AND state = ?", loginID, LinkSaved).Order("id").Find(&links).Error; err != nil {
		return nil, fmt.Errorf("load saved links: %w", err)
	}
	return links, nil
}

// SaveLink makes a draft link saved and marks its panel user as the
// login's person, in the caller's transaction.
func (s *Store) SaveLink(ctx context.Context, l Link, now time.Time) error {
	db := s.conn(ctx)
	if err := db.Model(&Link{}).Where("id = ?", l.ID).Updates(map[string]any{"state": LinkSaved, "saved_at": now}).Error; err != nil {
		return fmt.Errorf("save link: %w", err)
	}
	return s.markLinked(ctx, l.LocationID, l.UserNumber, &l.LoginID)
}

// DeleteLink removes a link; a saved link's panel user is no longer the
// login's person.
func (s *Store) DeleteLink(ctx context.Context, l Link) error {
	db := s.conn(ctx)
	if err := db.Where("id = ?", l.ID).Delete(&Link{}).Error; err != nil {
		return fmt.Errorf("delete link: %w", err)
	}
	if l.State != LinkSaved {
		return nil
	}
	return db.Model(&PanelUser{}).Where("location_id = ? AND user_number = ? AND login_id = ?", l.LocationID, l.UserNumber, l.LoginID).
		UpdateColumn("login_id", nil).Error
}

// markLinked records on the remote copy which login a panel user is.
func (s *Store) markLinked(ctx context.Context, locationID string, number int, loginID *string) error {
	err := s.conn(ctx).Model(&PanelUser{}).Where("location_id = ? AND user_number = ?", locationID, number).
		UpdateColumn("login_id", loginID).Error
	if err != nil {
		return fmt.Errorf("mark panel user linked: %w", err)
	}
	return nil
}

// UpdateLinkOptions writes a link's options.
func (s *Store) UpdateLinkOptions(ctx context.Context, l Link) error {
	err := s.conn(ctx).Model(&Link{}).Where("id = ?", l.ID).Updates(map[string]any{
		"sync_code": l.SyncCode, "sync_schedule": l.SyncSchedule, "sync_partitions": l.SyncPartitions, "propagate": l.Propagate,
	}).Error
	if err != nil {
		return fmt.Errorf("update link options: %w", err)
	}
	return nil
}

// LoginsByEmail returns the account's logins that are not deactivated, by
// their (normalised) e-mail, for matching panel users to people.
func (s *Store) LoginsByEmail(ctx context.Context, accountID string) (map[string][]Login, error) {
	var logins []Login
	if err := s.conn(ctx).Where("account_id = ? AND disabled_at IS NULL", accountID).Find(&logins).Error; err != nil {
		return nil, fmt.Errorf("load logins: %w", err)
	}
	out := make(map[string][]Login, len(logins))
	for _, l := range logins {
		key := NormalizeEmail(l.Email)
		out[key] = append(out[key], l)
	}
	return out, nil
}

// LinkAuditTargets names each of the account's links as the audit log
// shows it, in the order given: "<person> at <location> (user N)", the
// person by name or, without one, by e-mail. The names are read at the
// change, and the entry keeps them as they were then.
func (s *Store) LinkAuditTargets(ctx context.Context, accountID string, links []Link) ([]AuditTarget, error) {
	out := make([]AuditTarget, len(links))
	if len(links) == 0 {
		return out, nil
	}
	loginIDs := make([]string, len(links))
	locationIDs := make([]string, len(links))
	for i, l := range links {
		loginIDs[i], locationIDs[i] = l.LoginID, l.LocationID
	}
	var logins []Login
	if err := s.conn(ctx).Select("id", "email", "name").Where("account_id = ? AND id IN ?", accountID, loginIDs).Find(&logins).Error; err != nil {
		return nil, fmt.Errorf("load linked logins: %w", err)
	}
	people := make(map[string]string, len(logins))
	for _, l := range logins {
		people[l.ID] = l.PersonName()
	}
	places, err := s.LocationNames(ctx, accountID, locationIDs)
	if err != nil {
		return nil, err
	}
	for i, l := range links {
		who, where := people[l.LoginID], places[l.LocationID]
		if who == "" {
			who = "A login"
		}
		if where == "" {
			where = "a location"
		}
		out[i] = AuditTarget{Type: "link", ID: l.ID, Name: fmt.Sprintf("%s at %s (user %d)", who, where, l.UserNumber)}
	}
	return out, nil
}

// LinkAuditTarget is LinkAuditTargets for one link.
func (s *Store) LinkAuditTarget(ctx context.Context, l Link) (AuditTarget, error) {
	targets, err := s.LinkAuditTargets(ctx, l.AccountID, []Link{l})
	if err != nil {
		return AuditTarget{}, err
	}
	return targets[0], nil
}
