package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrUnavailable says that the bus cannot be reached: what needs it (a
// command to a panel on another node, telling every node that access
// ended, live events) cannot be done now, and the caller should retry.
var ErrUnavailable = errors.New("the message bus is unreachable")

// ReconnectGrace is how long a caller that needs the bus waits for a
// dropped connection to come back before it is told the bus is
// unavailable: a reconnection that takes a moment delays requests a
// little instead of failing them.
const ReconnectGrace = time.Second

// WaitConnected returns nil when nc is connected, or becomes connected
// within grace; otherwise, or when ctx ends first, ErrUnavailable.
func WaitConnected(ctx context.Context, nc *nats.Conn, grace time.Duration) error {
	if nc.IsConnected() {
		return nil
	}
	// The listener is registered before the state is read again, so a
	// reconnection in between is not missed.
	changed := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(changed)
	if nc.IsConnected() {
		return nil
	}
	if nc.IsClosed() {
		return ErrUnavailable
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case s := <-changed:
		if s == nats.CONNECTED {
			return nil
		}
	case <-timer.C:
	case <-ctx.Done():
	}
	return ErrUnavailable
}

// Available returns nil when the bus can be used now, or after a short
// reconnection, and ErrUnavailable when it cannot: it answers within
// ReconnectGrace.
func (b *Bus) Available(ctx context.Context) error {
	return WaitConnected(ctx, b.conn, ReconnectGrace)
}
