package models

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm/clause"
)

// Ranks split the sync work between groups of nodes: a node takes only the
// runs of locations whose rank it serves, and every node serves rank 0.
//
// A run carries its location's rank (Run.WorkerRank), copied when it is
// queued, rather than being joined to its location at each claim: the
// claim then reads and locks the runs table alone, so SKIP LOCKED keeps
// nodes from waiting on each other, and the index on (state, rank,
// available) serves it. The cost is keeping the copy right: a rank change
// rewrites the rank of the location's open runs (queued, running or held)
// in the same transaction, so a run waiting when its location moves to
// another rank is taken by the new rank's nodes. A running run is not
// taken from the node running it; the new rank only matters if its lease
// expires.

// MaxRank is the highest rank a location or a node may have.
const MaxRank = 1000

// MaxNodeRanks bounds the ranks one node serves: its list is kept in its
// heartbeat row, in 255 characters.
const MaxNodeRanks = 32

// ValidateRank checks a rank a client or an operator gave.
func ValidateRank(field string, rank int) error {
	if rank < 0 || rank > MaxRank {
		return FieldError(field, "%s must be an integer from 0 to %d", field, MaxRank)
	}
	return nil
}

// ServedRanks returns the ranks a node with the given list serves: the
// list, sorted and without repeats, with 0 added.
func ServedRanks(ranks []int) []int {
	out := append([]int{0}, ranks...)
	slices.Sort(out)
	return slices.Compact(out)
}

// FormatRanks writes a rank list as the nodes table keeps it: "1,2".
func FormatRanks(ranks []int) string {
	parts := make([]string, 0, len(ranks))
	for _, r := range ranks {
		parts = append(parts, strconv.Itoa(r))
	}
	return strings.Join(parts, ",")
}

// ParseRanks reads a comma-separated rank list such as "1,2". Every entry
// must be a rank from 0 to MaxRank, given once, and there may be at most
// MaxNodeRanks of them.
func ParseRanks(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxNodeRanks {
		return nil, fmt.Errorf("%d ranks listed, at most %d", len(parts), MaxNodeRanks)
	}
	var out []int
	for _, part := range parts {
		r, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || r < 0 || r > MaxRank {
			return nil, fmt.Errorf("%q is not a rank from 0 to %d", strings.TrimSpace(part), MaxRank)
		}
		if slices.Contains(out, r) {
			return nil, fmt.Errorf("rank %d is listed twice", r)
		}
		out = append(out, r)
	}
	return out, nil
}

// openRunStates are the states of a run that may still be claimed: its
// rank follows its location's.
var openRunStates = []RunState{RunQueued, RunRunning, RunAwaitingApply}

// setOpenRunsRank gives the open runs of the locations the rank, in the
// caller's transaction.
func (s *Store) setOpenRunsRank(ctx context.Context, locationIDs []string, rank int) error {
	for ids := range slices.Chunk(locationIDs, 500) {
		err := s.conn(ctx).Model(&Run{}).
			Where("location_id IN ? AND state IN ? AND worker_rank <> ?", ids, openRunStates, rank).
			Update("worker_rank", rank).Error
		if err != nil {
			return fmt.Errorf("set the rank of open runs: %w", err)
		}
	}
	return nil
}

// SetGroupRank gives every location of the account's group the rank, and
// their open runs with them, audited once with the count. A group with no
// locations is not found. It returns how many locations the group has.
func (s *Store) SetGroupRank(ctx context.Context, actor Actor, group string, rank int) (int, error) {
	group, err := Label("group", group, MaxGroupRunes, false)
	if err != nil {
		return 0, err
	}
	if err := ValidateRank("rank", rank); err != nil {
		return 0, err
	}
	var n int
	err = s.Tx(ctx, func(ctx context.Context) error {
		var locs []Location
		err := lockForUpdate(s.conn(ctx)).Select("id", "worker_rank").
			Where("account_id = ? AND group_name = ?", actor.AccountID, group).Find(&locs).Error
		if err != nil {
			return fmt.Errorf("find the group's locations: %w", err)
		}
		if len(locs) == 0 {
			return NotFound("group")
		}
		n = len(locs)
		before := map[int]int{}
		ids := make([]string, 0, len(locs))
		for _, l := range locs {
			before[l.WorkerRank]++
			ids = append(ids, l.ID)
		}
		for chunk := range slices.Chunk(ids, 500) {
			if err := s.conn(ctx).Model(&Location{}).Where("id IN ?", chunk).Update("worker_rank", rank).Error; err != nil {
				return fmt.Errorf("set the group's rank: %w", err)
			}
		}
		if err := s.setOpenRunsRank(ctx, ids, rank); err != nil {
			return err
		}
		was := map[string]int{}
		for r, c := range before {
			was[strconv.Itoa(r)] = c
		}
		return s.Audit(ctx, actor, AuditChange{
			Action: "group.rank", Target: AuditTarget{Type: "group", ID: group, Name: group},
			Before: map[string]any{"locations_by_rank": was},
			After:  map[string]any{"rank": rank, "locations": n},
		})
	})
	return n, err
}

// RankBacklog counts an account's queued runs of one rank.
type RankBacklog struct {
	AccountID string
	Rank      int
	Queued    int
}

// StrandedRuns counts, per account and rank, the queued runs of ranks that
// neither a node with a heartbeat since liveSince nor the caller (whose
// own heartbeat may not be written yet) serves. Rank 0 is never stranded
// while any node runs: every node serves it.
func (s *Store) StrandedRuns(ctx context.Context, liveSince time.Time, own []int) ([]RankBacklog, error) {
	var lists []string
	if err := s.conn(ctx).Model(&Node{}).Where("heartbeat_at >= ?", liveSince).Pluck("ranks", &lists).Error; err != nil {
		return nil, fmt.Errorf("read the ranks of running nodes: %w", err)
	}
	served := append([]int{0}, own...)
	for _, l := range lists {
		// A list this binary cannot read (a newer node's) serves nothing
		// it can count on; its runs show as stranded rather than hidden.
		ranks, _ := ParseRanks(l)
		served = append(served, ranks...)
	}
	var rows []struct {
		AccountID  string
		WorkerRank int
		N          int
	}
	// "worker_rank > 0" keeps the index range off the rank-0 runs, which
	// are most of a large queue and never stranded.
	err := s.conn(ctx).Model(&Run{}).Select("account_id, worker_rank, COUNT(*) AS n").
		Where("state = ? AND worker_rank > 0 AND worker_rank NOT IN ?", RunQueued, ServedRanks(served)).
		Group("account_id, worker_rank").Order("worker_rank, account_id").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("count stranded runs: %w", err)
	}
	out := make([]RankBacklog, 0, len(rows))
	for _, r := range rows {
		out = append(out, RankBacklog{AccountID: r.AccountID, Rank: r.WorkerRank, Queued: r.N})
	}
	return out, nil
}

// MarkStranded records, in the caller's transaction, that the account's
// runs of the rank are stranded since now. It reports whether this call
// started the episode; false means some node had recorded it already.
func (s *Store) MarkStranded(ctx context.Context, accountID string, rank int, now time.Time) (bool, error) {
	res := s.conn(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&StrandedRank{AccountID: accountID, WorkerRank: rank, Since: now})
	if res.Error != nil {
		return false, fmt.Errorf("mark runs stranded: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// EndStranded forgets the stranded episodes that are not in current: their
// rank is served again, or none of their runs waits. The next time the
// rank is stranded is a new episode, warned about anew.
func (s *Store) EndStranded(ctx context.Context, current []RankBacklog) error {
	var rows []StrandedRank
	if err := s.conn(ctx).Find(&rows).Error; err != nil {
		return fmt.Errorf("read stranded ranks: %w", err)
	}
	for _, r := range rows {
		if slices.ContainsFunc(current, func(b RankBacklog) bool { return b.AccountID == r.AccountID && b.Rank == r.WorkerRank }) {
			continue
		}
		err := s.conn(ctx).Where("account_id = ? AND worker_rank = ?", r.AccountID, r.WorkerRank).Delete(&StrandedRank{}).Error
		if err != nil {
			return fmt.Errorf("end a stranded episode: %w", err)
		}
	}
	return nil
}
