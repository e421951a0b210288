package syncer

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/panelsync/panelsync/models"
)

// producer claims due runs for this node's workers, never more than it has
// free worker slots, so that a run waits in the queue, where any node may
// take it, rather than in one node's memory. It looks for work when woken
// (a run enqueued here or on another node), when one of its workers frees
// up, and at every poll interval (retries coming due, leases running out).
type producer struct {
	store *models.Store
	// owner names the leases of the runs it claims.
	owner      string
	workers    int
	lease      time.Duration
	poll       time.Duration
	perAccount int
	ranks      []int
	metrics    *Metrics
	log        *slog.Logger
	now        func() time.Time
	// execute takes a claimed run to its outcome on a worker of its own.
	execute func(ctx context.Context, r models.Run)

	wake  chan struct{}
	slots chan struct{}
	// running counts the workers under way, which run waits for.
	running sync.WaitGroup
}

func newProducer(cfg Config, store *models.Store, now func() time.Time, execute func(context.Context, models.Run)) *producer {
	return &producer{
		store:      store,
		owner:      cfg.Owner,
		workers:    cfg.Workers,
		lease:      cfg.Lease,
		poll:       cfg.Poll,
		perAccount: cfg.PerAccount,
		ranks:      cfg.Ranks,
		metrics:    cfg.Metrics,
		log:        cfg.Logger,
		now:        now,
		execute:    execute,
		wake:       make(chan struct{}, 1),
		slots:      make(chan struct{}, cfg.Workers),
	}
}

// Wake asks the producer to look for due runs now. Wake-ups that arrive
// while one is pending are one wake-up.
func (p *producer) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run claims and starts runs until ctx ends, then waits for the runs it
// started to finish their current step.
func (p *producer) run(ctx context.Context) {
	defer p.running.Wait()
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-poll.C:
		}
		p.fill(ctx)
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(p.poll)
	}
}

// fill claims as many due runs as there are free slots, each on a worker
// of its own, and claims again while every slot it asked for was filled.
func (p *producer) fill(ctx context.Context) {
	for {
		free := p.workers - len(p.slots)
		if free <= 0 {
			return
		}
		now := p.now()
		runs, err := p.store.ClaimRuns(ctx, p.owner, free, now, now.Add(p.lease), p.perAccount, p.ranks)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("claim runs", "error", err.Error())
			}
			return
		}
		for _, r := range runs {
			p.metrics.runStarted(r, now)
			p.slots <- struct{}{}
			p.running.Add(1)
			go func() {
				defer p.running.Done()
				defer func() {
					<-p.slots
					p.Wake()
				}()
				p.execute(ctx, r)
			}()
		}
		if len(runs) < free {
			return
		}
	}
}
