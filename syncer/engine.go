// Package syncer is the sync engine: the run queue (enqueue, claim, lease,
// retry, cancel), the executors that read a panel and reconcile the remote
// copy, and the Event Log entries that report each outcome.
package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
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
		e.unsub = unsub
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
// current step. Runs interrupted mid-way keep their lease until it expires
// and are then taken over.
func (e *Engine) Stop() {
	e.mu.Lock()
	cancel := e.cancel
	e.mu.Unlock()
	if e.unsub != nil {
		e.unsub()
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
// outcome. A panic in an executor fails the run instead of the node.
func (e *Engine) execute(ctx context.Context, r models.Run) {
	log := e.log.With("run_id", r.ID, "kind", string(r.Kind), "attempt", r.Attempt)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		e.keepLease(runCtx, cancel, r.ID)
	}()
	defer func() { cancel(); <-leaseDone }()
	e.cfg.Metrics.runStarted(r)

	var outcome attemptOutcome
	func() {
		defer func() {
			if p := recover(); p != nil {
				log.Error("run executor panicked", "panic", p)
				outcome = failedOutcome(&runError{code: "internal", message: "the sync failed on an internal error", permanent: true})
			}
		}()
		if r.Attempt > e.cfg.MaxAttempts {
			outcome = failedOutcome(&runError{code: r.ErrorCode, message: "gave up after the run's worker stopped answering " + strconv.Itoa(e.cfg.MaxAttempts) + " times", permanent: true})
			if outcome.err.code == "" {
				outcome.err.code = "worker_lost"
			}
			return
		}
		outcome = e.runAttempt(runCtx, r)
	}()

	// A run interrupted because this node is stopping is left as it is:
	// its lease runs out and another worker takes it over, rather than it
	// failing for a reason that is not the panel's.
	if ctx.Err() != nil && outcome.err != nil && outcome.err.code == "cancelled" {
		log.Info("run interrupted by shutdown; it will be taken over when its lease expires")
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
}

func (e *runError) Error() string { return e.code + ": " + e.message }

// classify turns an executor error into a runError.
func classify(err error) *runError {
	var re *runError
	if errors.As(err, &re) {
		return re
	}
	if f, ok := panel.AsCommandFailure(err); ok {
		return &runError{code: f.Code, message: failureMessage(f), permanent: !f.Transient()}
	}
	if errors.Is(err, context.Canceled) {
		return &runError{code: "cancelled", message: "the run was cancelled", permanent: true}
	}
	return &runError{code: "internal", message: "the sync failed on an internal error", permanent: false}
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
