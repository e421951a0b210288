package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// MailState is where an outgoing mail is in its life.
type MailState string

// A mail is queued until a sender claims it, sending while one holds its
// lease, and then sent, queued again for a retry, or failed for good.
const (
	MailQueued  MailState = "queued"
	MailSending MailState = "sending"
	MailSent    MailState = "sent"
	MailFailed  MailState = "failed"
)

// Mail is one outgoing mail and the queue entry that delivers it. The
// text and HTML bodies are sealed together in SealedBody, because they
// carry single-use links; once the mail is sent or has failed for good the
// body is wiped and only who, what kind and when remain, for history.
// While a mail is sending, NextAttemptAt is its lease expiry, so one index
// finds both due mails and mails whose sender died.
type Mail struct {
	ID string `gorm:"primaryKey;size:36"`
	// AccountID is nil for mail that concerns no account, such as mail to
	// the operator.
	AccountID      *string   `gorm:"size:36;index:idx_mails_account_created,priority:1"`
	Kind           string    `gorm:"size:32;not null"`
	Recipient      string    `gorm:"size:320;not null"`
	Subject        string    `gorm:"size:500;not null"`
	SealedBody     string    `gorm:"type:mediumtext;not null"`
	State          MailState `gorm:"size:16;not null;index:idx_mails_state_next,priority:1"`
	Attempts       int       `gorm:"not null;default:0"`
	NextAttemptAt  time.Time `gorm:"not null;index:idx_mails_state_next,priority:2"`
	LeaseOwner     string    `gorm:"size:64;not null;default:''"`
	LeaseExpiresAt *time.Time
	// LastError says why the latest attempt failed. It holds the server's
	// reply or the network error, never any part of the body.
	LastError string    `gorm:"size:500;not null;default:''"`
	CreatedAt time.Time `gorm:"not null;index:idx_mails_account_created,priority:2"`
	SentAt    *time.Time
	FailedAt  *time.Time
}

// maxMailError is the longest LastError kept; the column holds 500.
const maxMailError = 500

// EnqueueMail inserts a queued mail, due at once unless NextAttemptAt is
// set, in the transaction ctx carries: the mail exists exactly when the
// change that caused it commits.
func (s *Store) EnqueueMail(ctx context.Context, m Mail) (Mail, error) {
	if m.ID == "" {
		m.ID = NewID()
	}
	m.State = MailQueued
	m.Attempts = 0
	m.LeaseOwner, m.LeaseExpiresAt, m.SentAt, m.FailedAt = "", nil, nil, nil
	if m.NextAttemptAt.IsZero() {
		m.NextAttemptAt = time.Now().UTC()
	}
	if err := s.conn(ctx).Create(&m).Error; err != nil {
		return Mail{}, fmt.Errorf("enqueue mail: %w", err)
	}
	return m, nil
}

// ClaimMails takes up to n mails that are due and marks them sending under
// owner until leaseUntil, counting the attempt. Mails whose lease expired
// (their sender died mid-way) come first, then queued mails by when they
// are due. On MySQL, SKIP LOCKED lets senders on many nodes claim side by
// side without waiting on each other's rows; SQLite's single writer makes
// the short transaction enough there.
func (s *Store) ClaimMails(ctx context.Context, owner string, n int, now, leaseUntil time.Time) ([]Mail, error) {
	if n <= 0 {
		return nil, nil
	}
	var claimed []Mail
	err := s.Tx(ctx, func(ctx context.Context) error {
		claimed = nil
		db := s.conn(ctx)
		var ids []string
		for _, state := range []MailState{MailSending, MailQueued} {
			if len(ids) == n {
				break
			}
			q := db.Model(&Mail{}).Select("id").
				Where("state = ? AND next_attempt_at <= ?", state, now).
				Order("next_attempt_at").Limit(n - len(ids))
			if IsMySQL(db) {
				q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
			}
			var got []string
			if err := q.Pluck("id", &got).Error; err != nil {
				return fmt.Errorf("find due mails: %w", err)
			}
			ids = append(ids, got...)
		}
		if len(ids) == 0 {
			return nil
		}
		err := db.Model(&Mail{}).Where("id IN ?", ids).Updates(map[string]any{
			"state":            MailSending,
			"lease_owner":      owner,
			"lease_expires_at": leaseUntil,
			"next_attempt_at":  leaseUntil,
			"attempts":         gorm.Expr("attempts + 1"),
		}).Error
		if err != nil {
			return fmt.Errorf("claim mails: %w", err)
		}
		return db.Where("id IN ?", ids).Order("id").Find(&claimed).Error
	})
	return claimed, err
}

// MarkMailSent records that a claimed mail went out and wipes its body. It
// reports false when the mail was no longer sending under owner (its lease
// ran out and another sender took it).
func (s *Store) MarkMailSent(ctx context.Context, id, owner string, now time.Time) (bool, error) {
	return s.finishMailAttempt(ctx, id, owner, map[string]any{
		"state":       MailSent,
		"sealed_body": "",
		"sent_at":     now,
		"last_error":  "",
	})
}

// RetryMail puts a claimed mail whose attempt failed back in the queue,
// due at next, keeping why it failed. It reports false when the mail was
// no longer sending under owner.
func (s *Store) RetryMail(ctx context.Context, id, owner string, next time.Time, lastError string) (bool, error) {
	return s.finishMailAttempt(ctx, id, owner, map[string]any{
		"state":           MailQueued,
		"next_attempt_at": next,
		"last_error":      clipRunes(lastError, maxMailError),
	})
}

// FailMail gives up on a claimed mail, keeping why, and wipes its body:
// the single-use links it carried are not kept at rest for a mail that
// will never be delivered. It reports false when the mail was no longer
// sending under owner.
func (s *Store) FailMail(ctx context.Context, id, owner string, now time.Time, lastError string) (bool, error) {
	return s.finishMailAttempt(ctx, id, owner, map[string]any{
		"state":       MailFailed,
		"sealed_body": "",
		"failed_at":   now,
		"last_error":  clipRunes(lastError, maxMailError),
	})
}

// finishMailAttempt writes the outcome of an attempt and releases the
// lease, guarded by the mail's state and owner.
func (s *Store) finishMailAttempt(ctx context.Context, id, owner string, updates map[string]any) (bool, error) {
	updates["lease_owner"] = ""
	updates["lease_expires_at"] = nil
	res := s.conn(ctx).Model(&Mail{}).Where("id = ? AND state = ? AND lease_owner = ?", id, MailSending, owner).Updates(updates)
	if res.Error != nil {
		return false, fmt.Errorf("record mail attempt: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// MailByID loads one mail, for the sender's history and for tests.
func (s *Store) MailByID(ctx context.Context, id string) (Mail, error) {
	var m Mail
	if err := s.conn(ctx).Where("id = ?", id).Take(&m).Error; err != nil {
		return Mail{}, notFound(err, "mail")
	}
	return m, nil
}

// clipRunes cuts s to at most n runes.
func clipRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// ReleaseMail hands a claimed mail that was never tried back to the queue,
// due at now, without counting the attempt: its sender is stopping and
// another can take it at once instead of waiting out the lease. It reports
// false when the mail was no longer sending under owner.
func (s *Store) ReleaseMail(ctx context.Context, id, owner string, now time.Time) (bool, error) {
	return s.finishMailAttempt(ctx, id, owner, map[string]any{
		"state":           MailQueued,
		"next_attempt_at": now,
		"attempts":        gorm.Expr("attempts - 1"),
	})
}
