package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/panelsync/panelsync/models"
)

// Config tunes a Queue. Zero durations and counts take the defaults named
// beside them.
type Config struct {
	// Owner names this node on the leases of the mails it is sending.
	Owner     string
	Transport Transport
	Sealer    Sealer
	Logger    *slog.Logger
	// RetryBase is the longest wait before the first retry (30s); the
	// bound doubles with each attempt up to RetryMax (1h), and the wait is
	// drawn at random below it, so mails that failed together do not
	// retry together.
	RetryBase time.Duration
	RetryMax  time.Duration
	// MaxAttempts is how many attempts a mail gets before it is failed
	// (12).
	MaxAttempts int
	// Poll is how often the sender looks for due mails without being
	// nudged (5s): mails enqueued on other nodes and retries that came due.
	Poll time.Duration
	// Batch is how many mails one claim takes (10).
	Batch int
	// SendTimeout bounds one attempt at one mail, connection included
	// (1m).
	SendTimeout time.Duration
	// Metrics counts mails sent and failed; nil counts nothing.
	Metrics *Metrics
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 30 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Hour
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 12
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 10
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = time.Minute
	}
}

// Queue queues mail in the database and sends it in the background.
type Queue struct {
	cfg   Config
	store *models.Store
	log   *slog.Logger
	now   func() time.Time
	wake  chan struct{}
}

// NewQueue returns a queue over store; Run sends what it holds.
func NewQueue(cfg Config, store *models.Store) *Queue {
	cfg.setDefaults()
	return &Queue{
		cfg:   cfg,
		store: store,
		log:   cfg.Logger,
		now:   func() time.Time { return time.Now().UTC() },
		wake:  make(chan struct{}, 1),
	}
}

// sealedBody is what a mail's SealedBody opens to.
type sealedBody struct {
	Text string `json:"text,omitempty"`
	HTML string `json:"html,omitempty"`
}

// Enqueue validates m, seals its body and queues it in the transaction ctx
// carries, so the mail exists exactly when the change that caused it
// commits and is never sent if that change rolls back. The local sender is
// nudged once the transaction commits; Enqueue itself never waits for the
// mail server. An invalid message is an invalid_request error naming the
// field at fault.
func (q *Queue) Enqueue(ctx context.Context, m Message) error {
	m, err := validate(m)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(sealedBody{Text: m.Text, HTML: m.HTML})
	if err != nil {
		return fmt.Errorf("encode mail body: %w", err)
	}
	sealed, err := q.cfg.Sealer.Seal(plain)
	if err != nil {
		return fmt.Errorf("seal mail body: %w", err)
	}
	row := models.Mail{Kind: m.Kind, Recipient: m.To, Subject: m.Subject, SealedBody: sealed}
	if m.AccountID != "" {
		row.AccountID = &m.AccountID
	}
	if _, err := q.store.EnqueueMail(ctx, row); err != nil {
		return err
	}
	models.AfterCommit(ctx, q.nudge)
	return nil
}

// nudge asks the sender to look for due mails now.
func (q *Queue) nudge() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run sends due mails until ctx ends: when nudged by Enqueue, and every
// Poll for mails queued on other nodes and retries that came due. A mail
// whose attempt is cut short by ctx ending is handed back to the queue for
// another node to send.
func (q *Queue) Run(ctx context.Context) {
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-poll.C:
		}
		q.drain(ctx)
		poll.Reset(q.cfg.Poll)
	}
}

// lease is how long a claimed batch stays this node's: long enough to try
// every mail in it one after another, each bounded by SendTimeout.
func (q *Queue) lease() time.Duration {
	return time.Duration(q.cfg.Batch+1) * q.cfg.SendTimeout
}

// drain claims and sends batches until none is left due.
func (q *Queue) drain(ctx context.Context) {
	for ctx.Err() == nil {
		now := q.now()
		mails, err := q.store.ClaimMails(ctx, q.cfg.Owner, q.cfg.Batch, now, now.Add(q.lease()))
		if err != nil {
			if ctx.Err() == nil {
				q.log.Error("claim mails", "error", err.Error())
			}
			return
		}
		for _, m := range mails {
			if ctx.Err() != nil {
				q.release(ctx, m)
				continue
			}
			q.deliver(ctx, m)
		}
		if len(mails) < q.cfg.Batch {
			return
		}
	}
}

// deliver makes one attempt at a claimed mail and records the outcome.
func (q *Queue) deliver(ctx context.Context, m models.Mail) {
	log := q.log.With("mail_id", m.ID, "kind", m.Kind, "recipient", m.Recipient, "attempt", m.Attempts)
	if m.Attempts > q.cfg.MaxAttempts {
		// Only a mail whose sender kept dying mid-send gets here: each
		// claim counted an attempt that never recorded its outcome.
		q.fail(ctx, log, m, fmt.Errorf("gave up after %d attempts whose sender stopped before finishing", q.cfg.MaxAttempts))
		return
	}
	msg, err := q.open(m)
	if err != nil {
		q.fail(ctx, log, m, err)
		return
	}
	err = q.send(ctx, m.ID, msg)
	switch {
	case err == nil:
		q.record(ctx, log, m, func(ctx context.Context) (bool, error) {
			return q.store.MarkMailSent(ctx, m.ID, q.cfg.Owner, q.now())
		})
		q.cfg.Metrics.mailSent()
		log.Info("mail sent")
	case ctx.Err() != nil:
		// The node is stopping: the attempt was cut short, not refused.
		q.release(ctx, m)
	case errors.Is(err, ErrRejected) || m.Attempts >= q.cfg.MaxAttempts:
		q.fail(ctx, log, m, err)
	default:
		wait := q.backoff(m.Attempts)
		q.record(ctx, log, m, func(ctx context.Context) (bool, error) {
			return q.store.RetryMail(ctx, m.ID, q.cfg.Owner, q.now().Add(wait), err.Error())
		})
		q.cfg.Metrics.attemptFailed()
		log.Info("mail not sent; it will be retried", "error", err.Error(), "retry_in", wait.String())
	}
}

// open unseals a claimed mail's body into the message to send.
func (q *Queue) open(m models.Mail) (Message, error) {
	plain, err := q.cfg.Sealer.Open(m.SealedBody)
	if err != nil {
		return Message{}, fmt.Errorf("open the sealed body: %w", err)
	}
	var body sealedBody
	if err := json.Unmarshal(plain, &body); err != nil {
		return Message{}, errors.New("open the sealed body: it does not decode")
	}
	msg := Message{To: m.Recipient, Subject: m.Subject, Text: body.Text, HTML: body.HTML, Kind: m.Kind}
	if m.AccountID != nil {
		msg.AccountID = *m.AccountID
	}
	return msg, nil
}

// send hands one mail to the transport within SendTimeout. A panicking
// transport fails the attempt, not the node.
func (q *Queue) send(ctx context.Context, id string, msg Message) (err error) {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.SendTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			q.log.Error("mail transport panicked", "mail_id", id, "panic", fmt.Sprint(p))
			err = errors.New("the mail transport failed on an internal error")
		}
	}()
	return q.cfg.Transport.Send(ctx, id, msg)
}

// fail gives up on a mail and says so in the log; the body is not logged.
func (q *Queue) fail(ctx context.Context, log *slog.Logger, m models.Mail, cause error) {
	q.record(ctx, log, m, func(ctx context.Context) (bool, error) {
		return q.store.FailMail(ctx, m.ID, q.cfg.Owner, q.now(), cause.Error())
	})
	q.cfg.Metrics.mailFailed()
	log.Warn("mail failed; it will not be retried", "error", cause.Error())
}

// release hands a mail this node will not try back to the queue.
func (q *Queue) release(ctx context.Context, m models.Mail) {
	log := q.log.With("mail_id", m.ID)
	q.record(ctx, log, m, func(ctx context.Context) (bool, error) {
		return q.store.ReleaseMail(ctx, m.ID, q.cfg.Owner, q.now())
	})
}

// record writes an attempt's outcome even when the node is stopping, so a
// mail that went out is not sent again by the next node. The write is
// guarded by the lease: a mail another node took over is left to it.
func (q *Queue) record(ctx context.Context, log *slog.Logger, m models.Mail, write func(context.Context) (bool, error)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ok, err := write(ctx)
	switch {
	case err != nil:
		log.Error("record mail attempt", "error", err.Error())
	case !ok:
		log.Warn("mail was taken over by another sender before its attempt was recorded")
	}
}

// backoff is the wait after a mail's attempt-th failed attempt: drawn at
// random up to RetryBase doubled per attempt, capped at RetryMax ("full
// jitter"), so that many mails failing together do not retry together.
func (q *Queue) backoff(attempt int) time.Duration {
	bound := q.cfg.RetryBase << min(max(attempt-1, 0), 30)
	if bound <= 0 || bound > q.cfg.RetryMax {
		bound = q.cfg.RetryMax
	}
	return rand.N(bound) + 1
}
