package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrNoResponders says that no node serves the panel a command was sent
// to: none holds its connection, or the one that did let go of it while
// the command was on its way.
var ErrNoResponders = errors.New("no node serves the panel")

// Command is a command for a panel as it travels to the node that holds
// the panel's connection.
type Command struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
	// TimeoutMS is how long the holding node waits for the panel.
	TimeoutMS int64 `json:"timeout_ms"`
}

// Reply is the holding node's answer to a Command.
type Reply struct {
	OK    bool            `json:"ok"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error *ReplyError     `json:"error,omitempty"`
}

// ReplyError is why a command failed, by the holding node's code.
type ReplyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// PanelControl tells the node holding a panel to let go of it: a newer
// connection took over elsewhere, or its credential was revoked.
type PanelControl struct {
	Op     string `json:"op"`
	LinkID string `json:"link_id,omitempty"`
	// ConnectedAt is when the connection that sent a takeover began. A
	// takeover only ends an older connection: the bus may deliver one
	// after a newer connection has already replaced its sender.
	ConnectedAt time.Time `json:"connected_at,omitzero"`
}

// Panel control operations.
const (
	ControlTakeover = "takeover"
	ControlKick     = "kick"
)

// PanelServer is what serves a panel held on this node: its commands and
// its control messages. Both run on a dispatcher shared by every panel
// (Control on the publisher's goroutine for this node's messages) and
// must not block; Command answers through reply, exactly once, whenever
// it is ready.
type PanelServer struct {
	Command func(cmd Command, reply func(Reply))
	Control func(PanelControl)
}

// notServedHeader marks the answer of a node that no longer serves the
// panel a command was addressed to.
const notServedHeader = "Panelsync-Not-Served"

func commandSubject(panelID string) string { return "psync.panel." + panelID + ".cmd" }
func controlSubject(panelID string) string { return "psync.panel." + panelID + ".ctl" }

// ServePanel makes this node the one that answers the panel's commands and
// hears its control messages, until stop is called. While the bus is down
// the subscriptions are sent when it comes back; until then no other node
// could reach the panel anyway.
func (b *Bus) ServePanel(panelID string, s PanelServer) (stop func(), err error) {
	cmd := &handler{f: func(m *nats.Msg) {
		var c Command
		// A request that does not decode reaches the server with no name,
		// for it to refuse in its own words.
		_ = json.Unmarshal(m.Data, &c)
		s.Command(c, func(r Reply) {
			data, _ := json.Marshal(r)
			_ = m.Respond(data)
		})
	}}
	ctl := &handler{f: func(m *nats.Msg) {
		var c PanelControl
		if json.Unmarshal(m.Data, &c) == nil {
			s.Control(c)
		}
	}}
	subjects := []string{commandSubject(panelID), controlSubject(panelID)}
	var subs []*nats.Subscription
	unsubscribe := func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}
	for _, subject := range subjects {
		sub, err := b.conn.ChanSubscribe(subject, b.panelMsgs)
		if err != nil {
			unsubscribe()
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		subs = append(subs, sub)
	}
	b.local.add(subjects[0], cmd)
	b.local.add(subjects[1], ctl)
	stop = func() {
		b.local.remove(subjects[0], cmd)
		b.local.remove(subjects[1], ctl)
		unsubscribe()
	}
	// Flush so that a command sent right after the panel connects finds
	// its server.
	if b.conn.IsConnected() {
		if err := b.conn.Flush(); err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

// dispatchPanels hands the panel messages that arrive over NATS to their
// servers. A command for a panel no longer served here is answered so, at
// once, rather than left to time out.
func (b *Bus) dispatchPanels() {
	defer b.dispatch.Done()
	for {
		select {
		case <-b.stopPanels:
			return
		case m := <-b.panelMsgs:
			if b.local.deliver(m) == 0 && m.Reply != "" {
				r := nats.NewMsg(m.Reply)
				r.Header.Set(notServedHeader, "1")
				_ = m.RespondMsg(r)
			}
		}
	}
}

// PublishPanelControl tells the node holding the panel, this one
// included, to let go of it as ctl says.
func (b *Bus) PublishPanelControl(panelID string, ctl PanelControl) error {
	return b.publishJSON(controlSubject(panelID), ctl)
}

// RequestPanel sends a command to the node holding the panel and waits for
// its reply until ctx ends. It fails with ErrNoResponders when no node
// serves the panel, with ErrUnavailable when the bus dropped, and with
// context.DeadlineExceeded when no answer came in time. A panel held on
// this node is not reached this way: the server does not echo this node's
// requests back to it.
func (b *Bus) RequestPanel(ctx context.Context, panelID string, cmd Command) (Reply, error) {
	data, err := json.Marshal(cmd)
	if err != nil {
		return Reply{}, err
	}
	m, err := b.conn.RequestWithContext(ctx, commandSubject(panelID), data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return Reply{}, ErrNoResponders
	case err != nil && !b.conn.IsConnected():
		return Reply{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case errors.Is(err, nats.ErrTimeout):
		return Reply{}, fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	case err != nil:
		return Reply{}, err
	case m.Header.Get(notServedHeader) != "":
		return Reply{}, ErrNoResponders
	}
	var r Reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return Reply{}, fmt.Errorf("decode reply: %w", err)
	}
	return r, nil
}
