package models

import (
	"context"
	"encoding/json"
	"fmt"
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

// SystemActor is the service acting on its own (schedules, seeding).
func SystemActor(accountID, name string) Actor {
	return Actor{Kind: "system", Name: name, AccountID: accountID, Role: RoleOwner}
}

// Audit records one admin change in the transaction carried by ctx, so the
// entry exists exactly when the change does. Detail must not hold secrets.
func (s *Store) Audit(ctx context.Context, actor Actor, action, targetType, targetID string, detail any) error {
	entry := AuditEntry{
		ID:         NewID(),
		AccountID:  actor.AccountID,
		ActorKind:  actor.Kind,
		ActorID:    actor.ID,
		ActorName:  actor.Name,
		Action:     action,
		TargetType: targetType,
		TargetID:   targetID,
		ClientIP:   actor.ClientIP,
	}
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return fmt.Errorf("encode audit detail: %w", err)
		}
		entry.Detail = string(b)
	}
	if err := s.conn(ctx).Create(&entry).Error; err != nil {
		return fmt.Errorf("write audit entry: %w", err)
	}
	return nil
}

// ListAudit returns an account's most recent audit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, accountID string, limit int) ([]AuditEntry, error) {
	var entries []AuditEntry
	err := s.conn(ctx).Where("account_id = ?", accountID).
		Order("created_at DESC, id DESC").Limit(limit).Find(&entries).Error
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return entries, nil
}
