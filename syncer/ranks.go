package syncer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/panelsync/panelsync/models"
)

// A rank that no running node serves leaves its runs queued: they are not
// failed, because the nodes may be on their way back, and the next node
// that serves the rank takes them. The fleet is told instead: every node
// looks, at each RankCheck, for queued runs of ranks that no node with a
// recent heartbeat serves, shows them on /readyz and in a metric, and
// writes one warning per account when such an episode starts. A row per
// account and rank in stranded_ranks makes that warning one for the whole
// fleet, not one per node or per check.

// StrandedRank is the queued runs of one rank, all accounts together, that
// no running node serves.
type StrandedRank struct {
	Rank   int
	Queued int
}

// strandedView keeps the outcome of the last check for /readyz and the
// metrics, which read it without a query of their own, and how long the
// checks have reached the database without a break.
type strandedView struct {
	mu    sync.Mutex
	ranks []StrandedRank
	fair  models.FairWait
}

func (v *strandedView) set(ranks []StrandedRank) {
	v.mu.Lock()
	v.ranks = ranks
	v.mu.Unlock()
}

func (v *strandedView) get() []StrandedRank {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.ranks)
}

// Stranded returns the ranks whose runs waited, at the last check, with
// no running node to serve them, lowest rank first.
func (e *Engine) Stranded() []StrandedRank { return e.stranded.get() }

func (e *Engine) rankLoop(ctx context.Context) {
	tick := time.NewTicker(e.cfg.RankCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		checkCtx, cancel := context.WithTimeout(ctx, max(e.cfg.RankCheck, time.Second))
		if err := e.CheckRanks(checkCtx); err != nil && ctx.Err() == nil {
			e.log.Warn("check for stranded ranks", "error", err.Error())
		}
		cancel()
	}
}

// CheckRanks looks for queued runs of ranks that no running node serves,
// records the outcome for Stranded, warns each account whose runs have
// just become stranded, and ends the episodes that are over. Until its
// checks have reached the database for NodeLostAfter without a break (at
// start, and after an outage that silenced every node's heartbeat), every
// node with a heartbeat counts as running: its peers have not yet had a
// fair chance to beat again.
func (e *Engine) CheckRanks(ctx context.Context) error {
	began := time.Now()
	err := e.checkRanks(ctx, e.stranded.fair.Over(began, e.cfg.NodeLostAfter))
	e.stranded.fair.Record(err == nil, began)
	return err
}

func (e *Engine) checkRanks(ctx context.Context, judging bool) error {
	now := e.now()
	var liveSince time.Time
	if judging {
		dbNow, err := e.store.Now(ctx)
		if err != nil {
			return err
		}
		liveSince = dbNow.Add(-e.cfg.NodeLostAfter)
	}
	backlog, err := e.store.StrandedRuns(ctx, liveSince, e.cfg.Ranks)
	if err != nil {
		return err
	}
	var total []StrandedRank
	for _, b := range backlog {
		if n := len(total); n > 0 && total[n-1].Rank == b.Rank {
			total[n-1].Queued += b.Queued
		} else {
			total = append(total, StrandedRank{Rank: b.Rank, Queued: b.Queued})
		}
	}
	e.stranded.set(total)
	for _, b := range backlog {
		if err := e.warnStranded(ctx, b, now); err != nil {
			return err
		}
	}
	return e.store.EndStranded(ctx, backlog)
}

// warnStranded writes the warning of a stranded episode, if no node has
// written it yet.
func (e *Engine) warnStranded(ctx context.Context, b models.RankBacklog, now time.Time) error {
	return e.store.Tx(ctx, func(ctx context.Context) error {
		started, err := e.store.MarkStranded(ctx, b.AccountID, b.Rank, now)
		if err != nil || !started {
			return err
		}
		_, err = e.events.Append(ctx, models.NewEvent{
			AccountID: b.AccountID, Type: models.EventRunsStranded, Severity: models.SeverityWarning,
			Message:    fmt.Sprintf("%d %s of rank %d wait: no running node serves rank %d", b.Queued, pluralUsers(b.Queued, "run", "runs"), b.Rank, b.Rank),
			Data:       map[string]any{"rank": b.Rank, "queued": b.Queued},
			OccurredAt: now,
		})
		return err
	})
}
