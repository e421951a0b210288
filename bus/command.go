package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
)

// ErrNoResponders says that the node a command was sent to does not serve
// its panel: that node is gone, or let go of the panel (which may since
// have linked elsewhere) before the command arrived.
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

// PanelServer is what serves the panels held on this node: their commands
// and their control messages. Both run on a dispatcher shared by every
// panel (Control on the publisher's goroutine for this node's messages)
// and must not block.
type PanelServer struct {
	// Command runs a command for the panel. It reports false, without
	// calling reply, when this node does not hold the panel, and the
	// sender is told at once that no node serves it; otherwise it answers
	// through reply, exactly once, whenever it is ready.
	Command func(panelID string, cmd Command, reply func(Reply)) (held bool)
	// Control hears every node's control messages, for every panel: the
	// server ignores those for panels it does not hold.
	Control func(panelID string, ctl PanelControl)
}

// notServedHeader marks the answer of a node that does not hold the panel
// a command was addressed to.
const notServedHeader = "Panelsync-Not-Served"

// panelHeader names the panel a command or a control message is for.
const panelHeader = "Panelsync-Panel"

// panelControlSubject carries every panel's control messages to every
// node: takeovers and kicks are rare next to commands, and every node
// looking the panel up in its own connections is cheaper than asking the
// directory which node holds it.
const panelControlSubject = "psync.panels.ctl"

// nodeCommandSubject is where a node hears the commands for every panel
// it holds. The node ID may be dotted, like a host name; it may not hold
// what would make the subject invalid or a wildcard.
func nodeCommandSubject(nodeID string) (string, error) {
	for token := range strings.SplitSeq(nodeID, ".") {
		if token == "" || strings.ContainsFunc(token, func(r rune) bool {
			return r == '*' || r == '>' || unicode.IsSpace(r) || !unicode.IsPrint(r)
		}) {
			return "", fmt.Errorf("node ID %q cannot name a bus subject: it needs non-empty dot-separated parts without spaces, '*' or '>'", nodeID)
		}
	}
	return "psync.node." + nodeID + ".panelcmd", nil
}

// ServePanels makes this node the one that answers the commands sent to
// nodeID, for whichever panels it holds, and hears every node's panel
// control messages, until stop is called. It takes one subscription for
// commands and one for control messages, however many panels the node
// holds. While the bus is down the subscriptions are sent when it comes
// back; until then no other node could reach this one anyway.
func (b *Bus) ServePanels(nodeID string, s PanelServer) (stop func(), err error) {
	cmdSubject, err := nodeCommandSubject(nodeID)
	if err != nil {
		return nil, err
	}
	cmd := &handler{f: func(m *nats.Msg) {
		var c Command
		// A request that does not decode reaches the server with no name,
		// for it to refuse in its own words.
		_ = json.Unmarshal(m.Data, &c)
		panelID := m.Header.Get(panelHeader)
		held := panelID != "" && s.Command(panelID, c, func(r Reply) {
			data, _ := json.Marshal(r)
			_ = m.Respond(data)
		})
		if !held {
			respondNotServed(m)
		}
	}}
	ctl := &handler{f: func(m *nats.Msg) {
		var c PanelControl
		if panelID := m.Header.Get(panelHeader); panelID != "" && json.Unmarshal(m.Data, &c) == nil {
			s.Control(panelID, c)
		}
	}}
	handlers := map[string]*handler{cmdSubject: cmd, panelControlSubject: ctl}
	var subs []*nats.Subscription
	unsubscribe := func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}
	for subject, h := range handlers {
		sub, err := b.conn.ChanSubscribe(subject, b.panelMsgs)
		if err != nil {
			unsubscribe()
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		subs = append(subs, sub)
		b.local.add(subject, h)
	}
	stop = sync.OnceFunc(func() {
		for subject, h := range handlers {
			b.local.remove(subject, h)
		}
		unsubscribe()
		// Once the server knows, a command sent here is answered that
		// nobody serves it instead of waiting for its deadline.
		if b.conn.IsConnected() {
			_ = b.conn.FlushTimeout(time.Second)
		}
	})
	// Flush so that a command sent right after the node starts finds its
	// server.
	if b.conn.IsConnected() {
		if err := b.conn.Flush(); err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

// respondNotServed tells the sender of a command that this node does not
// hold its panel, so that it need not wait for the deadline.
func respondNotServed(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	r := nats.NewMsg(m.Reply)
	r.Header.Set(notServedHeader, "1")
	_ = m.RespondMsg(r)
}

// dispatchPanels hands the panel messages that arrive over NATS to their
// servers. A command that arrives after the node stopped serving is
// answered so, at once, rather than left to time out.
func (b *Bus) dispatchPanels() {
	defer b.dispatch.Done()
	for {
		select {
		case <-b.stopPanels:
			return
		case m := <-b.panelMsgs:
			if b.local.deliver(m) == 0 {
				respondNotServed(m)
			}
		}
	}
}

// PublishPanelControl tells every node, this one included, to let go of
// the panel as ctl says; the node holding it does.
func (b *Bus) PublishPanelControl(panelID string, ctl PanelControl) error {
	data, err := json.Marshal(ctl)
	if err != nil {
		return err
	}
	m := nats.NewMsg(panelControlSubject)
	m.Header.Set(panelHeader, panelID)
	m.Data = data
	return b.publish(m)
}

// RequestPanel sends a command for the panel to the node nodeID, which
// the directory names as holding it, and waits for the reply until ctx
// ends. It fails with ErrNoResponders when that node does not hold the
// panel or does not listen, with ErrUnavailable when the bus dropped, and
// with context.DeadlineExceeded when no answer came in time. This node
// cannot be reached this way: the server does not echo its requests back
// to it.
func (b *Bus) RequestPanel(ctx context.Context, nodeID, panelID string, cmd Command) (Reply, error) {
	subject, err := nodeCommandSubject(nodeID)
	if err != nil {
		return Reply{}, err
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		return Reply{}, err
	}
	req := nats.NewMsg(subject)
	req.Header.Set(panelHeader, panelID)
	req.Data = data
	m, err := b.conn.RequestMsgWithContext(ctx, req)
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
