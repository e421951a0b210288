// Package syncer is the sync engine: the run queue (enqueue, claim, lease,
// retry, cancel), the executors that read a panel and reconcile the remote
// copy, and the Event Log entries that report each outcome.
package syncer

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/panelsync/panelsync/models"
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

// Engine enqueues runs and executes them on a bounded set of workers. It
// composes a producer, which claims due runs up to its free workers, an
// executor, which takes each through one attempt under its lease, and a
// completer, which writes each attempt's outcome; around them it keeps
// the loops that enqueue scheduled, batched and stranded work.
type Engine struct {
	cfg      Config
	store    *models.Store
	events   *models.EventLog
	link     Link
	notifier Notifier
	log      *slog.Logger
	now      func() time.Time

	producer  *producer
	executor  *executor
	completer *completer

	batchWake chan struct{}

	batchMu     sync.Mutex
	batchChecks map[string]bool

	// dueWake and notedDue carry the earliest keypad-change due time
	// reported on this node to the schedule loop.
	dueWake  chan struct{}
	dueMu    sync.Mutex
	notedDue time.Time

	stranded strandedView
	// forced lists the locations flagged for a full users sync at their
	// next check-in.
	forced *forcedLocations

	mu      sync.Mutex
	cancel  context.CancelFunc
	running sync.WaitGroup
	unsub   func()
}

// New builds an engine; Start sets its workers going. notifier may be nil
// on a single node.
func New(cfg Config, store *models.Store, events *models.EventLog, link Link, notifier Notifier) *Engine {
	cfg.setDefaults()
	e := &Engine{
		cfg:         cfg,
		store:       store,
		events:      events,
		link:        link,
		notifier:    notifier,
		log:         cfg.Logger,
		now:         func() time.Time { return time.Now().UTC() },
		batchWake:   make(chan struct{}, 1),
		dueWake:     make(chan struct{}, 1),
		batchChecks: map[string]bool{},
		forced:      newForcedLocations(),
	}
	e.completer = newCompleter(cfg, store, events, e.now, e)
	e.executor = newExecutor(cfg, store, notifier, e.now, e.runAttempt, e.completer)
	e.producer = newProducer(cfg, store, e.now, e.executor.execute)
	return e
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
	e.running.Add(5)
	go func() {
		defer e.running.Done()
		e.producer.run(ctx)
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
	go func() {
		defer e.running.Done()
		e.forcedLoop(ctx)
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
func (e *Engine) Wake() { e.producer.Wake() }
