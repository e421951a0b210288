package models

import (
	"context"
	"fmt"
	"time"
)

// RankQueue is the queued runs of one rank, all accounts together, as the
// metrics show them.
type RankQueue struct {
	Rank   int
	Queued int
	// OldestDue is when the run of the rank that has waited longest since
	// it became due did so; zero when no queued run is due yet (a retry
	// backing off, a keypad change waiting for the edits to settle).
	OldestDue time.Time
}

// QueueByRank counts the queued runs of each rank and finds the oldest
// due one. Both read the (state, worker_rank, available_at) index alone:
// the count is one range of it, and each oldest is the first entry of its
// rank's due range, so a scrape costs the size of the queue in index
// entries and never reads the runs table's rows.
func (s *Store) QueueByRank(ctx context.Context, now time.Time) ([]RankQueue, error) {
	var rows []struct {
		WorkerRank int
		N          int
	}
	err := s.conn(ctx).Model(&Run{}).Select("worker_rank, COUNT(*) AS n").
		Where("state = ?", RunQueued).Group("worker_rank").Order("worker_rank").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("count queued runs: %w", err)
	}
	out := make([]RankQueue, 0, len(rows))
	for _, r := range rows {
		q := RankQueue{Rank: r.WorkerRank, Queued: r.N}
		var oldest []Run
		err := s.conn(ctx).Select("available_at").
			Where("state = ? AND worker_rank = ? AND available_at <= ?", RunQueued, r.WorkerRank, now).
			Order("available_at").Limit(1).Find(&oldest).Error
		if err != nil {
			return nil, fmt.Errorf("find the oldest queued run of rank %d: %w", r.WorkerRank, err)
		}
		if len(oldest) == 1 {
			q.OldestDue = oldest[0].AvailableAt
		}
		out = append(out, q)
	}
	return out, nil
}

// BatchesInFlight counts the All-Locations batches not yet finished, all
// accounts together. The sweep that finishes batches reads the same
// unfinished rows, and a batches table holds one row per request, not per
// location.
func (s *Store) BatchesInFlight(ctx context.Context) (int, error) {
	var n int64
	if err := s.conn(ctx).Model(&Batch{}).Where("finished_at IS NULL").Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count batches in flight: %w", err)
	}
	return int(n), nil
}
