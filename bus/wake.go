package bus

import "github.com/nats-io/nats.go"

// wakeSubject carries "a run was enqueued" between nodes.
const wakeSubject = "psync.runs.wake"

// Waker tells every node's sync engine that new work is queued.
type Waker struct {
	conn *nats.Conn
}

// NewWaker returns a Waker on the bus.
func (b *Bus) NewWaker() *Waker { return &Waker{conn: b.conn} }

// PublishWake tells every node to look for due runs. It is a hint: a lost
// wake-up only delays work until the next poll.
func (w *Waker) PublishWake() { _ = w.conn.Publish(wakeSubject, nil) }

// SubscribeWake calls f on every wake-up until unsubscribed.
func (w *Waker) SubscribeWake(f func()) (func(), error) {
	sub, err := w.conn.Subscribe(wakeSubject, func(*nats.Msg) { f() })
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
