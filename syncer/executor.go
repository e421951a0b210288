package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/panelsync/panelsync/models"
)

// writeTimeout bounds writing a run's outcome, which goes on after the
// node began stopping so that work done is not thrown away.
const writeTimeout = 10 * time.Second

// executor takes one claimed run through one attempt under its lease: it
// keeps the lease while the attempt lasts, ends a run that keeps killing
// the nodes that run it, hands a run back when its node stops before the
// attempt had an outcome, and hands any other outcome to the completer. A
// panic anywhere in that work fails the run, not the node.
type executor struct {
	store *models.Store
	// owner names the leases it keeps and gives back.
	owner        string
	lease        time.Duration
	maxTakeovers int
	// notifier, when set, wakes the other nodes for a run handed back.
	notifier Notifier
	log      *slog.Logger
	now      func() time.Time
	// attempt reads the panel and works out the run's changes.
	attempt  func(ctx context.Context, r models.Run) attemptOutcome
	complete *completer
}

func newExecutor(cfg Config, store *models.Store, notifier Notifier, now func() time.Time, attempt func(context.Context, models.Run) attemptOutcome, complete *completer) *executor {
	return &executor{
		store:        store,
		owner:        cfg.Owner,
		lease:        cfg.Lease,
		maxTakeovers: cfg.MaxTakeovers,
		notifier:     notifier,
		log:          cfg.Logger,
		now:          now,
		attempt:      attempt,
		complete:     complete,
	}
}

// execute runs one attempt of a run under its lease, and records the
// outcome. A panic anywhere in the run's work (the attempt, the diff, the
// apply and the recording of its outcome) fails the run instead of the
// node.
func (x *executor) execute(ctx context.Context, r models.Run) {
	log := x.log.With("run_id", r.ID, "kind", string(r.Kind), "attempt", r.Attempt)
	defer func() {
		if p := recover(); p != nil {
			log.Error("run panicked; it fails and the node carries on", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			x.failPanicked(ctx, r, log)
		}
	}()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		x.keepLease(runCtx, cancel, r.ID)
	}()
	defer func() { cancel(); <-leaseDone }()

	var outcome attemptOutcome
	if r.Takeovers >= x.maxTakeovers {
		outcome = failedOutcome(&runError{code: "worker_lost", permanent: true,
			message: "gave up after the server running the sync stopped answering " + strconv.Itoa(r.Takeovers) + " times"})
	} else {
		outcome = x.attempt(runCtx, r)
	}

	// An attempt cut short because this node is stopping, or that failed
	// in a way that may pass while it stopped (its panel command cut), is
	// handed back: that is not the panel's failure, and another node can
	// start it again at once rather than when the lease runs out.
	if ctx.Err() != nil && outcome.err != nil && (outcome.err.code == "cancelled" || !outcome.err.permanent) {
		x.handBack(ctx, r, log)
		return
	}
	// Any other outcome is written even when the node is stopping, so work
	// that is done is not thrown away; the lease guard keeps a taken-over
	// run from being finished twice.
	writeCtx, cancelWrite := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancelWrite()
	if err := x.complete.record(writeCtx, r, outcome); err != nil {
		if models.IsLeaseLost(err) {
			log.Warn("run was cancelled or taken over before it finished; its result is dropped")
			return
		}
		log.Error("record run outcome", "error", err.Error())
	}
}

// handBack returns a run this node is stopping under to the queue, due
// at once and without counting its attempt, and wakes the other nodes.
func (x *executor) handBack(ctx context.Context, r models.Run, log *slog.Logger) {
	writeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := x.store.ReleaseRun(writeCtx, r.ID, x.owner, x.now()); err != nil {
		if models.IsLeaseLost(err) {
			log.Info("run interrupted by shutdown was already cancelled or taken over")
			return
		}
		log.Error("hand back run interrupted by shutdown; it will be taken over when its lease expires", "error", err.Error())
		return
	}
	log.Info("run interrupted by shutdown handed back to the queue")
	if x.notifier != nil {
		x.notifier.PublishWake()
	}
}

// failPanicked ends a run whose work panicked as a Sync Failure, if it is
// still running under this node's lease. What the run had applied was
// rolled back with its transaction. Should writing the failure panic too,
// the run is left to its lease, and the takeover bound ends it.
func (x *executor) failPanicked(ctx context.Context, r models.Run, log *slog.Logger) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("recording a panicked run panicked; it will be taken over when its lease expires", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	writeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	var loc models.Location
	if v, err := x.store.LocationByID(writeCtx, r.LocationID); err == nil {
		loc = v.Location
	}
	err := x.complete.record(writeCtx, r, attemptOutcome{location: loc, err: errInternal(true)})
	switch {
	case models.IsLeaseLost(err):
		log.Warn("panicked run was cancelled or taken over meanwhile; nothing is recorded")
	case err != nil:
		log.Error("record panicked run as failed", "error", err.Error())
	}
}

// keepLease renews the run's lease until ctx ends. When the run stops
// being this worker's (cancelled, or taken over after a stall) it cancels
// the attempt.
func (x *executor) keepLease(ctx context.Context, cancel context.CancelFunc, runID string) {
	tick := time.NewTicker(x.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			ok, err := x.store.ExtendLease(ctx, runID, x.owner, x.now().Add(x.lease))
			if err != nil {
				if ctx.Err() == nil {
					x.log.Warn("extend run lease", "run_id", runID, "error", err.Error())
				}
				continue
			}
			if !ok {
				cancel()
				return
			}
		}
	}
}
