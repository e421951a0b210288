package bus

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// eventPrefix begins the subject of an account's committed events; the
// account's ID ends it.
const eventPrefix = "psync.events."

// committedHeader carries, on the bus, when an event's transaction
// committed: the publisher sends it right after the commit.
const committedHeader = "Panelsync-Committed"

// Event is one committed Event Log entry as the bus carries it.
type Event struct {
	AccountID string
	// Payload is the entry as its publisher encoded it. Every subscriber
	// on this node is handed the same bytes, so none may change them.
	Payload []byte
	// CommittedAt is when the entry's transaction committed; zero when
	// the message did not say.
	CommittedAt time.Time
}

// PublishEvent sends an account's committed event to every node, stamped
// with the time of commit (now: it is called right after). This node's
// subscribers are handed it before PublishEvent returns. A publish that
// fails is for the caller to log: subscribers that miss an event find it
// when they compare with the Event Log.
func (b *Bus) PublishEvent(accountID string, payload []byte) error {
	m := nats.NewMsg(eventPrefix + accountID)
	m.Data = payload
	m.Header.Set(committedHeader, strconv.FormatInt(time.Now().UnixNano(), 10))
	return b.publish(m)
}

// SubscribeEvents calls f with every event of the account, from any node,
// until the returned function is called. The subscription stands when it
// returns. f runs on the publisher's goroutine for this node's events and
// must not block.
func (b *Bus) SubscribeEvents(accountID string, f func(Event)) (unsubscribe func(), err error) {
	return b.subscribe(eventPrefix+accountID, true, eventHandler(f))
}

// SubscribeAllEvents calls f with every account's events, as
// SubscribeEvents does with one's.
func (b *Bus) SubscribeAllEvents(f func(Event)) (unsubscribe func(), err error) {
	return b.subscribe(eventPrefix+"*", true, eventHandler(f))
}

func eventHandler(f func(Event)) func(*nats.Msg) {
	return func(m *nats.Msg) {
		f(Event{AccountID: strings.TrimPrefix(m.Subject, eventPrefix), Payload: m.Data, CommittedAt: committedAt(m)})
	}
}

// committedAt reads the commit time a bus message carries, or zero.
func committedAt(m *nats.Msg) time.Time {
	ns, err := strconv.ParseInt(m.Header.Get(committedHeader), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
