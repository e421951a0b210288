// Package bus is the message bus between nodes: NATS, either an embedded
// server running inside this process (the default, so one node needs
// nothing else) or an external cluster by URL. Both are used through the
// same client connection, so a single node and a cluster share one code
// path.
//
// The bus owns every subject and encoding. It carries three kinds of
// traffic: events (an account's committed Event Log entries), commands (a
// request to the node holding a panel, and its reply) and control messages
// (a panel to drop, access that ended, work to look for). A message
// published on this node reaches this node's own subscribers in-process,
// without the round trip through NATS, and NATS does not echo it back;
// messages from other nodes arrive over NATS.
//
// A panel costs the bus nothing: a node subscribes once to its own command
// subject, and a command, which names its panel, is sent to the node that
// the panels table records as holding the panel. A node that does not hold
// it answers so at once. Takeovers and kicks go to one subject every node
// subscribes to once, and each node looks the panel up among its own
// connections.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config selects the bus.
type Config struct {
	// URL of an external NATS server or cluster; empty runs one embedded.
	URL string
	// Name identifies this node's connection in the server's monitoring.
	Name   string
	Logger *slog.Logger
}

// Bus is an open connection to NATS, and the embedded server when there is
// one.
type Bus struct {
	conn     *nats.Conn
	embedded *server.Server
	log      *slog.Logger

	// local holds this node's subscribers, for messages published here.
	local local

	// panelMsgs receives the commands for the panels held here and every
	// node's panel control messages, from one subscription for each; a
	// fixed set of dispatchers reads it, so there is no goroutine per
	// message.
	panelMsgs  chan *nats.Msg
	stopPanels chan struct{}
	dispatch   sync.WaitGroup
	closeOnce  sync.Once
}

// Open starts the embedded server when no URL is set, and connects.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{
		log:        log,
		local:      local{subs: map[string][]*handler{}},
		panelMsgs:  make(chan *nats.Msg, 8192),
		stopPanels: make(chan struct{}),
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		// This node's own messages reach its subscribers in-process (see
		// publish); the server need not send them back.
		nats.NoEcho(),
		// A node keeps trying for as long as it lives: losing the bus
		// degrades it (no cross-node commands or fan-out) but must not
		// kill it.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(8 << 20),
		// A server that stops answering without closing the connection
		// (frozen, or behind a network black hole) is noticed after two
		// unanswered pings, not the library's default of minutes.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("bus disconnected", "error", err.Error())
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("bus reconnected", "server", c.ConnectedUrlRedacted()) }),
	}
	url := cfg.URL
	if url == "" {
		ns, err := server.NewServer(&server.Options{
			ServerName: "panelsync-embedded",
			DontListen: true,
			NoSigs:     true,
			NoLog:      true,
			MaxPayload: 8 << 20,
		})
		if err != nil {
			return nil, fmt.Errorf("start embedded NATS: %w", err)
		}
		ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			ns.Shutdown()
			return nil, errors.New("start embedded NATS: not ready after 10s")
		}
		b.embedded = ns
		url = ns.ClientURL()
		opts = append(opts, nats.InProcessServer(ns))
	}
	conn, err := connect(ctx, url, opts)
	if err != nil {
		if b.embedded != nil {
			b.embedded.Shutdown()
		}
		return nil, err
	}
	b.conn = conn
	for range 4 {
		b.dispatch.Add(1)
		go b.dispatchPanels()
	}
	return b, nil
}

// connect dials with retries until ctx ends, so a node started just before
// its NATS server still comes up.
func connect(ctx context.Context, url string, opts []nats.Option) (*nats.Conn, error) {
	delay := 100 * time.Millisecond
	for {
		conn, err := nats.Connect(url, opts...)
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// Embedded reports whether the bus runs inside this process.
func (b *Bus) Embedded() bool { return b.embedded != nil }

// Ping checks that the bus answers, for readiness.
func (b *Bus) Ping(ctx context.Context) error {
	if !b.conn.IsConnected() {
		return ErrUnavailable
	}
	deadline, ok := ctx.Deadline()
	timeout := 2 * time.Second
	if ok {
		timeout = time.Until(deadline)
	}
	if err := b.conn.FlushTimeout(timeout); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Close drains the connection, so messages already published reach the
// server, then stops the embedded server.
func (b *Bus) Close() { b.closeOnce.Do(b.close) }

func (b *Bus) close() {
	if err := b.conn.Drain(); err != nil {
		b.conn.Close()
	}
	// Drain closes the connection when done; wait for that, but not
	// forever.
	for i := 0; i < 500 && !b.conn.IsClosed(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	b.conn.Close()
	close(b.stopPanels)
	b.dispatch.Wait()
	if b.embedded != nil {
		b.embedded.Shutdown()
		b.embedded.WaitForShutdown()
	}
}
