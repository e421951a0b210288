// Package syncer is the sync engine: the run queue (enqueue, claim, lease,
// retry, cancel), the executors that read a panel and reconcile the remote
// copy, and the Event Log entries that report each outcome.
package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// Link sends a command to a panel wherever it is connected.
type Link interface {
	Send(ctx context.Context, panelID, name string, args any) (json.RawMessage, error)
}

// Notifier carries "new work" wake-ups between nodes, so a run enqueued on
// one node starts at once on whichever node has a free worker.
type Notifier interface {
	PublishWake()
	SubscribeWake(func()) (unsubscribe func(), err error)
}

// Config tunes the engine.
type Config struct {
	// Owner names this engine's leases; unique per process.
	Owner   string
	Workers int
	// Lease is how long a claimed run stays this worker's without renewal;
	// a crashed worker's runs are taken over after it.
	Lease time.Duration
	// Poll is how often an idle engine looks for due runs it was not woken
	// for (retries coming due, leases expiring).
	Poll time.Duration
	// MaxAttempts bounds the attempts of a run that fails transiently.
	MaxAttempts int
	RetryBase   time.Duration
	RetryMax    time.Duration
	// MaxTakeovers bounds how many times a run is taken over after the
	// node running it stopped answering, so that a run that kills every
	// node that runs it ends as a Sync Failure rather than going round.
	MaxTakeovers int
	// CommandTimeout bounds each command a run sends its panel.
	CommandTimeout time.Duration
	// PerAccount caps one account's runs in flight across all nodes, so a
	// dealer's 10,000-location batch leaves room for everyone else.
	PerAccount int
	// Ranks are the ranks this node serves besides 0, which every node
	// serves: it claims only runs of those ranks.
	Ranks []int
	// RankCheck is how often the node looks for runs of ranks that no
	// running node serves; NodeLostAfter is how long a node's heartbeat
	// may be silent before its ranks no longer count as served.
	RankCheck     time.Duration
	NodeLostAfter time.Duration
	// ScheduleTick is how often due scheduled syncs are looked for.
	ScheduleTick time.Duration
	// UserChangeDelay is how long after the last user changed at a panel's
	// keypad its incremental users sync starts: long enough that a person
	// editing several users at the keypad gives one run, not one each.
	UserChangeDelay time.Duration
	// CodeKey keys the digests that stand in for user codes.
	CodeKey []byte
	// Sealer seals the codes an import brings, and opens them only to push
	// them to a panel. Imports are refused without one.
	Sealer Sealer
	// Mailer queues the sync reports mailed to locations' report
	// e-mails; nil sends none.
	Mailer Mailer
	// Metrics counts runs started and finished; nil counts nothing.
	Metrics *Metrics
	Logger  *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.MaxTakeovers <= 0 {
		c.MaxTakeovers = 5
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 2 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 30 * time.Second
	}
	if c.ScheduleTick <= 0 {
		c.ScheduleTick = 30 * time.Second
	}
	if c.UserChangeDelay <= 0 {
		c.UserChangeDelay = 30 * time.Second
	}
	if c.RankCheck <= 0 {
		c.RankCheck = 10 * time.Second
	}
	if c.NodeLostAfter <= 0 {
		c.NodeLostAfter = 3 * c.RankCheck
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Sealer seals secrets at rest (decision 13).
type Sealer interface {
	Seal(plaintext []byte) (string, error)
	Open(sealed string) ([]byte, error)
}

// Engine enqueues runs and executes them on a bounded set of workers.
type Engine struct {
	cfg      Config
	store    *models.Store
	events   *models.EventLog
	link     Link
	notifier Notifier
	log      *slog.Logger
	now      func() time.Time

	wake      chan struct{}
	batchWake chan struct{}
	slots     chan struct{}

	batchMu     sync.Mutex
	batchChecks map[string]bool

	// dueWake and notedDue carry the earliest keypad-change due time
	// reported on this node to the schedule loop.
	dueWake  chan struct{}
	dueMu    sync.Mutex
	notedDue time.Time

	stranded strandedView

	mu      sync.Mutex
	cancel  context.CancelFunc
	running sync.WaitGroup
	unsub   func()

	// beforeSettle, when set, runs inside the transaction that finishes a
	// run, after its changes are applied; tests set it to break that
	// step.
	beforeSettle atomic.Pointer[func(models.Run)]
}

// New builds an engine; Start sets its workers going. notifier may be nil
// on a single node.
func New(cfg Config, store *models.Store, events *models.EventLog, link Link, notifier Notifier) *Engine {
	cfg.setDefaults()
	return &Engine{
		cfg:         cfg,
		store:       store,
		events:      events,
		link:        link,
		notifier:    notifier,
		log:         cfg.Logger,
		now:         func() time.Time { return time.Now().UTC() },
		wake:        make(chan struct{}, 1),
		batchWake:   make(chan struct{}, 1),
		dueWake:     make(chan struct{}, 1),
		batchChecks: map[string]bool{},
		slots:       make(chan struct{}, cfg.Workers),
	}
}

// Start runs the producer until Stop or ctx ends.
func (e *Engine) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	e.mu.Lock()
	e.cancel = cancel
	e.mu.Unlock()
	if e.notifier != nil {
		unsub, err := e.notifier.SubscribeWake(e.Wake)
		if err != nil {
			cancel()
			return err
		}
		e.mu.Lock()
		e.unsub = unsub
		e.mu.Unlock()
	}
	e.running.Add(4)
	go func() {
		defer e.running.Done()
		e.produce(ctx)
	}()
	go func() {
		defer e.running.Done()
		e.batchLoop(ctx)
	}()
	go func() {
		defer e.running.Done()
		e.scheduleLoop(ctx)
	}()
	go func() {
		defer e.running.Done()
		e.rankLoop(ctx)
	}()
	return nil
}

// Stop ends the producer and waits for runs in progress to finish their
// current step. A run interrupted before its attempt had an outcome is
// handed back to the queue, and the other nodes are woken to take it at
// once. Stop may be called more than once.
func (e *Engine) Stop() {
	e.mu.Lock()
	cancel, unsub := e.cancel, e.unsub
	e.unsub = nil
	e.mu.Unlock()
	if unsub != nil {
		unsub()
	}
	if cancel != nil {
		cancel()
	}
	e.running.Wait()
}

// Wake asks the producer to look for due runs now.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// produce claims as many due runs as there are free workers, and sleeps
// until woken, a worker frees up, or the poll interval passes.
func (e *Engine) produce(ctx context.Context) {
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-poll.C:
		}
		for {
			free := e.cfg.Workers - len(e.slots)
			if free <= 0 {
				break
			}
			now := e.now()
			runs, err := e.store.ClaimRuns(ctx, e.cfg.Owner, free, now, now.Add(e.cfg.Lease), e.cfg.PerAccount, e.cfg.Ranks)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Error("claim runs", "error", err.Error())
				}
				break
			}
			for _, r := range runs {
				e.cfg.Metrics.runStarted(r, now)
				e.slots <- struct{}{}
				e.running.Add(1)
				go func() {
					defer e.running.Done()
					defer func() {
						<-e.slots
						e.Wake()
					}()
					e.execute(ctx, r)
				}()
			}
			if len(runs) < free {
				break
			}
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(e.cfg.Poll)
	}
}

// execute runs one attempt of a run under its lease, and records the
// outcome. A panic anywhere in the run's work, recording included, fails
// the run instead of the node.
func (e *Engine) execute(ctx context.Context, r models.Run) {
	log := e.log.With("run_id", r.ID, "kind", string(r.Kind), "attempt", r.Attempt)
	defer func() {
		if p := recover(); p != nil {
			log.Error("run panicked; it fails and the node carries on", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			e.failPanicked(ctx, r, log)
		}
	}()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		e.keepLease(runCtx, cancel, r.ID)
	}()
	defer func() { cancel(); <-leaseDone }()

	var outcome attemptOutcome
	if r.Takeovers >= e.cfg.MaxTakeovers {
		outcome = failedOutcome(&runError{code: "worker_lost", permanent: true,
			message: "gave up after the server running the sync stopped answering " + strconv.Itoa(r.Takeovers) + " times"})
	} else {
		outcome = e.runAttempt(runCtx, r)
	}

	// An attempt cut short because this node is stopping, or that failed
	// in a way that may pass while it stopped (its panel command cut), is
	// handed back: that is not the panel's failure, and another node can
	// start it again at once rather than when the lease runs out.
	if ctx.Err() != nil && outcome.err != nil && (outcome.err.code == "cancelled" || !outcome.err.permanent) {
		e.handBack(ctx, r, log)
		return
	}
	// Any other outcome is written even when the node is stopping, so work
	// that is done is not thrown away; the lease guard keeps a taken-over
	// run from being finished twice.
	writeCtx, cancelWrite := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelWrite()
	if err := e.record(writeCtx, r, outcome); err != nil {
		if models.IsLeaseLost(err) {
			log.Warn("run was cancelled or taken over before it finished; its result is dropped")
			return
		}
		log.Error("record run outcome", "error", err.Error())
	}
}

// handBack returns a run this node is stopping under to the queue, due
// at once and without counting its attempt, and wakes the other nodes.
func (e *Engine) handBack(ctx context.Context, r models.Run, log *slog.Logger) {
	writeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := e.store.ReleaseRun(writeCtx, r.ID, e.cfg.Owner, e.now()); err != nil {
		if models.IsLeaseLost(err) {
			log.Info("run interrupted by shutdown was already cancelled or taken over")
			return
		}
		log.Error("hand back run interrupted by shutdown; it will be taken over when its lease expires", "error", err.Error())
		return
	}
	log.Info("run interrupted by shutdown handed back to the queue")
	if e.notifier != nil {
		e.notifier.PublishWake()
	}
}

// failPanicked ends a run whose work panicked as a Sync Failure, if it is
// still running under this node's lease. What the run had applied was
// rolled back with its transaction. Should writing the failure panic too,
// the run is left to its lease, and the takeover bound ends it.
func (e *Engine) failPanicked(ctx context.Context, r models.Run, log *slog.Logger) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("recording a panicked run panicked; it will be taken over when its lease expires", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	writeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var loc models.Location
	if v, err := e.store.LocationByID(writeCtx, r.LocationID); err == nil {
		loc = v.Location
	}
	err := e.record(writeCtx, r, attemptOutcome{location: loc, err: errInternal(true)})
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
func (e *Engine) keepLease(ctx context.Context, cancel context.CancelFunc, runID string) {
	tick := time.NewTicker(e.cfg.Lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			ok, err := e.store.ExtendLease(ctx, runID, e.cfg.Owner, e.now().Add(e.cfg.Lease))
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("extend run lease", "run_id", runID, "error", err.Error())
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

// backoff is the wait before attempt n+1: exponential from RetryBase,
// capped, with full jitter so that many runs failing together do not retry
// together.
func (e *Engine) backoff(attempt int) time.Duration {
	d := e.cfg.RetryBase << min(attempt-1, 16)
	if d <= 0 || d > e.cfg.RetryMax {
		d = e.cfg.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}

// runError is a failed attempt: a stable code for the Event Log and API,
// a human message, and whether retrying could help.
type runError struct {
	code      string
	message   string
	permanent bool
	// uncounted marks a failure that is neither the panel's nor the
	// run's (the bus between the servers down): it is retried without
	// using up one of the run's attempts.
	uncounted bool
}

func (e *runError) Error() string { return e.code + ": " + e.message }

// classify turns an executor error into a runError.
func classify(err error) *runError {
	var re *runError
	if errors.As(err, &re) {
		return re
	}
	if f, ok := panel.AsCommandFailure(err); ok {
		return &runError{code: f.Code, message: failureMessage(f), permanent: !f.Transient(), uncounted: f.Code == panel.FailBusUnavailable}
	}
	if errors.Is(err, context.Canceled) {
		return &runError{code: "cancelled", message: "the run was cancelled", permanent: true}
	}
	return errInternal(false)
}

// errInternal is a failure inside the server, in words a customer reads.
func errInternal(permanent bool) *runError {
	return &runError{code: "internal", message: "the sync failed on an internal error", permanent: permanent}
}

func failureMessage(f *panel.CommandFailure) string {
	switch f.Code {
	case panel.FailTimeout:
		return "the panel did not answer in time"
	case panel.FailDisconnected:
		return "the panel is not connected"
	case panel.FailBusy:
		return "the panel is busy with other commands"
	}
	return f.Message
}
