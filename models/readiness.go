package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// ReadinessCheck is a node's last successful write check.
type ReadinessCheck struct {
	NodeID    string    `gorm:"primaryKey;size:64"`
	CheckedAt time.Time `gorm:"not null;index"`
}

// CheckWrite commits a one-row write, the node's own row of the readiness
// table, so that a database that answers reads but refuses writes is not
// taken for a working one.
func (s *Store) CheckWrite(ctx context.Context, nodeID string) error {
	err := s.conn(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "node_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"checked_at"}),
	}).Create(&ReadinessCheck{NodeID: nodeID, CheckedAt: time.Now().UTC()}).Error
	if err != nil {
		return fmt.Errorf("check that the database takes writes: %w", err)
	}
	return nil
}

// DeleteReadinessChecksBefore forgets the rows of nodes that have not
// checked since before: nodes long stopped.
func (s *Store) DeleteReadinessChecksBefore(ctx context.Context, before time.Time) error {
	if err := s.conn(ctx).Where("checked_at < ?", before).Delete(&ReadinessCheck{}).Error; err != nil {
		return fmt.Errorf("forget old readiness checks: %w", err)
	}
	return nil
}
