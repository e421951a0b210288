package models

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// markSeenChunk bounds the panels one statement of MarkPanelsSeen names,
// well below the bound parameters either backend accepts.
const markSeenChunk = 500

// MarkPanelsSeen records that the panels were heard from at at, in one
// statement per chunk of ids. A panel whose last_seen_at is already at or
// after at keeps it: a time collected in a batch is older than a write
// made directly meanwhile, such as the panel's disconnection, and must not
// move it back.
func (s *Store) MarkPanelsSeen(ctx context.Context, panelIDs []string, at time.Time) error {
	for chunk := range slices.Chunk(panelIDs, markSeenChunk) {
		err := s.conn(ctx).Model(&Panel{}).
			Where("id IN ? AND (last_seen_at IS NULL OR last_seen_at < ?)", chunk, at).
			Update("last_seen_at", at).Error
		if err != nil {
			return fmt.Errorf("mark panels seen: %w", err)
		}
	}
	return nil
}
