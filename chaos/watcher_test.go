package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// watcher follows the account's Event Log over /v1/realtime as a browser
// would: a ticket, then the socket, then a subscribe after the last
// offset it received. When the connection fails it goes to the other
// node and resumes there. It keeps every offset in the order it came.
type watcher struct {
	nodes []*node
	token string

	mu       sync.Mutex
	offsets  []int64
	last     int64
	connects int
	drops    []string

	cancel context.CancelFunc
	done   chan struct{}
}

// idleLimit is how long a socket may stay silent, pings included, before
// the watcher gives up on it: longer than the server's ping interval.
const idleLimit = 40 * time.Second

// startWatcher follows the Event Log from its start (after offset 0).
func startWatcher(token string, nodes []*node) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{nodes: nodes, token: token, cancel: cancel, done: make(chan struct{})}
	go w.run(ctx)
	return w
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	wait := 100 * time.Millisecond
	for i := 0; ctx.Err() == nil; i++ {
		n := w.nodes[i%len(w.nodes)]
		delivered, err := w.follow(ctx, n)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.drops = append(w.drops, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), n.id, err))
		w.mu.Unlock()
		if delivered {
			wait = 100 * time.Millisecond
		} else {
			wait = min(2*wait, time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// follow is one connection: it returns why it ended, and whether it
// delivered any event.
func (w *watcher) follow(ctx context.Context, n *node) (bool, error) {
	ticket, err := w.ticket(ctx, n)
	if err != nil {
		return false, err
	}
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	u := "ws" + strings.TrimPrefix(n.base, "http") + "/v1/realtime?ticket=" + url.QueryEscape(ticket)
	conn, resp, err := dialer.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return false, fmt.Errorf("upgrade answered %d", resp.StatusCode)
		}
		return false, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(idleLimit))
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
	})
	w.mu.Lock()
	after := w.last
	w.connects++
	w.mu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteJSON(map[string]any{"op": "subscribe", "after": after}); err != nil {
		return false, err
	}
	delivered := false
	for {
		_ = conn.SetReadDeadline(time.Now().Add(idleLimit))
		_, data, err := conn.ReadMessage()
		if err != nil {
			return delivered, err
		}
		var f struct {
			Type    string `json:"type"`
			Code    string `json:"code"`
			Message string `json:"message"`
			Event   struct {
				Offset int64 `json:"offset"`
			} `json:"event"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return delivered, err
		}
		switch f.Type {
		case "event":
			delivered = true
			w.mu.Lock()
			w.offsets = append(w.offsets, f.Event.Offset)
			w.last = f.Event.Offset
			w.mu.Unlock()
		case "error":
			return delivered, fmt.Errorf("server error %s: %s", f.Code, f.Message)
		}
	}
}

// ticket asks node n for a single-use realtime ticket.
func (w *watcher) ticket(ctx context.Context, n *node) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.base+"/v1/realtime/tickets", nil)
	req.Header.Set("Authorization", "Bearer "+w.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Ticket string `json:"ticket"`
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("ticket answered %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Ticket == "" {
		return "", fmt.Errorf("ticket: unreadable answer: %v", err)
	}
	return out.Ticket, nil
}

// lastOffset is the newest offset received.
func (w *watcher) lastOffset() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// stop ends following and returns the offsets in arrival order, the
// connections made, and why each one ended.
func (w *watcher) stop() (offsets []int64, connects int, drops []string) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.offsets, w.connects, w.drops
}
