// Package realtime delivers Event Log entries to the clients watching, on
// every node: events are published to the bus after their transaction
// commits, and each node fans them out to its own subscribers.
package realtime

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/panelsync/panelsync/bus"
	"github.com/panelsync/panelsync/models"
)

// Event is the wire form of an Event Log entry, on the bus and to
// clients. It is built from the stored row by NewEvent, which picks the
// fields a client may see.
type Event struct {
	Offset     int64   `json:"offset"`
	ID         string  `json:"id"`
	AccountID  string  `json:"account_id"`
	LocationID *string `json:"location_id"`
	// LocationName is the location's name when the entry was written.
	LocationName *string         `json:"location_name"`
	Type         string          `json:"type"`
	Severity     string          `json:"severity"`
	Message      string          `json:"message"`
	RunID        *string         `json:"run_id"`
	Data         json.RawMessage `json:"data"`
	OccurredAt   time.Time       `json:"occurred_at"`
	// committedAt is when the event's transaction committed, as the bus
	// message says; it is not part of the wire form.
	committedAt time.Time
}

// NewEvent converts a stored event.
func NewEvent(e models.Event) Event {
	data := json.RawMessage(e.Data)
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	return Event{
		Offset:       e.Offset,
		ID:           e.ID,
		AccountID:    e.AccountID,
		LocationID:   e.LocationID,
		LocationName: e.LocationName,
		Type:         e.Type,
		Severity:     string(e.Severity),
		Message:      e.Message,
		RunID:        e.RunID,
		Data:         data,
		OccurredAt:   e.OccurredAt.UTC().Truncate(time.Millisecond),
	}
}

// EventBus is where committed events go; *bus.Bus is one. PublishEvent
// hands the event to this node's subscribers before it returns and must
// not block on them.
type EventBus interface {
	PublishEvent(accountID string, payload []byte) error
}

// Publisher sends committed events to the bus.
type Publisher struct {
	bus EventBus
	log *slog.Logger
}

// NewPublisher returns a publisher on b.
func NewPublisher(b EventBus, log *slog.Logger) *Publisher {
	return &Publisher{bus: b, log: log}
}

// PublishEvents publishes each event on its account's subject, in offset
// order. A publish that fails is logged: subscribers that miss it find it
// when they resume from their last offset.
func (p *Publisher) PublishEvents(_ context.Context, events []models.Event) {
	for _, e := range events {
		b, err := json.Marshal(NewEvent(e))
		if err != nil {
			p.log.Error("encode event", "error", err.Error())
			continue
		}
		if err := p.bus.PublishEvent(e.AccountID, b); err != nil {
			p.log.Warn("publish event", "offset", e.Offset, "error", err.Error())
		}
	}
}

// decodeEvent reads an event as the bus carries it.
func decodeEvent(m bus.Event) (Event, bool) {
	var e Event
	if json.Unmarshal(m.Payload, &e) != nil {
		return Event{}, false
	}
	e.committedAt = m.CommittedAt
	return e, true
}

// AllEvents is a bus that delivers every account's events; *bus.Bus is
// one.
type AllEvents interface {
	SubscribeAllEvents(f func(bus.Event)) (unsubscribe func(), err error)
}

// SubscribeAll calls f with every account's events as they are published,
// until the returned function unsubscribes. f runs on the publisher's
// goroutine for this node's events and must not block.
func SubscribeAll(b AllEvents, f func(Event)) (unsubscribe func(), err error) {
	return b.SubscribeAllEvents(func(m bus.Event) {
		if e, ok := decodeEvent(m); ok {
			f(e)
		}
	})
}
