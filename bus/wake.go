package bus

import "github.com/nats-io/nats.go"

// wakeSubject carries "a run was enqueued" between nodes.
const wakeSubject = "psync.runs.wake"

// Waker tells every node's sync engine that new work is queued.
type Waker struct {
	bus *Bus
}

// NewWaker returns a Waker on the bus.
func (b *Bus) NewWaker() *Waker { return &Waker{bus: b} }

// PublishWake tells every node to look for due runs; this node's engine
// hears it at once. It is a hint: a lost wake-up only delays work until
// the next poll.
func (w *Waker) PublishWake() { _ = w.bus.publish(&nats.Msg{Subject: wakeSubject}) }

// SubscribeWake calls f on every wake-up until unsubscribed. f runs on the
// publisher's goroutine for this node's wake-ups and must not block.
func (w *Waker) SubscribeWake(f func()) (func(), error) {
	return w.bus.subscribe(wakeSubject, false, func(*nats.Msg) { f() })
}
