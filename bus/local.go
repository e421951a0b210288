package bus

import (
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// local holds this node's subscribers by subject. A message published here
// is handed to them directly, so that a node's own events, wake-ups and
// control messages skip the hops through the NATS client and server; the
// connection asks the server not to echo them back.
type local struct {
	mu sync.RWMutex
	// subs maps a subject, or a prefix ending in ".*", to its handlers.
	// A slice is never changed once stored, so a delivery reads it
	// without the lock.
	subs map[string][]*handler
}

// handler is one subscriber; its identity tells it apart from another
// with the same function.
type handler struct {
	f func(*nats.Msg)
}

func (l *local) add(subject string, h *handler) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs[subject] = append(slices.Clip(l.subs[subject]), h)
}

func (l *local) remove(subject string, h *handler) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := l.subs[subject]
	i := slices.Index(hs, h)
	if i < 0 {
		return
	}
	if len(hs) == 1 {
		delete(l.subs, subject)
		return
	}
	l.subs[subject] = slices.Delete(slices.Clone(hs), i, i+1)
}

// deliver hands m to the handlers of its subject and of the wildcard over
// its last token, on the caller's goroutine, and reports how many there
// were. Handlers must not block: they run on the publisher's goroutine, or
// on a dispatcher shared by every panel.
func (l *local) deliver(m *nats.Msg) int {
	l.mu.RLock()
	exact := l.subs[m.Subject]
	var wild []*handler
	if i := strings.LastIndexByte(m.Subject, '.'); i >= 0 && len(l.subs) > 0 {
		wild = l.subs[m.Subject[:i+1]+"*"]
	}
	l.mu.RUnlock()
	for _, h := range exact {
		h.f(m)
	}
	for _, h := range wild {
		h.f(m)
	}
	return len(exact) + len(wild)
}

// publish hands m to this node's subscribers, then sends it to the other
// nodes. A message that cannot be sent (the bus down and its reconnect
// buffer full) still reached this node's subscribers.
func (b *Bus) publish(m *nats.Msg) error {
	b.local.deliver(m)
	return b.conn.PublishMsg(m)
}

// subscribe calls f with every message on subject, from this node and
// from the others, until the returned function is called. With flush the
// subscription is known to the server before subscribe returns, so that a
// caller who reads where things stand next misses nothing published in
// between.
func (b *Bus) subscribe(subject string, flush bool, f func(*nats.Msg)) (unsubscribe func(), err error) {
	sub, err := b.conn.Subscribe(subject, f)
	if err != nil {
		return nil, err
	}
	if flush {
		if err := b.conn.Flush(); err != nil {
			_ = sub.Unsubscribe()
			return nil, err
		}
	}
	h := &handler{f: f}
	b.local.add(subject, h)
	return sync.OnceFunc(func() {
		b.local.remove(subject, h)
		_ = sub.Unsubscribe()
	}), nil
}
