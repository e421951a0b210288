package realtime

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/panelsync/panelsync/wsframe"
)

// pipeClient is a client whose socket is one end of a pipe; the test
// reads what the hub writes from the other.
func pipeClient(t *testing.T) (*Client, net.Conn) {
	t.Helper()
	h := &Hub{ready: newReadyQueue()}
	h.cfg.setDefaults()
	server, peer := net.Pipe()
	t.Cleanup(func() { _ = server.Close(); _ = peer.Close() })
	return &Client{hub: h, conn: wsframe.NewConn(server, nil, MaxClientFrameBytes), closing: make(chan struct{}), writeDone: make(chan struct{})}, peer
}

func testPass(locations ...string) *pass {
	p := &pass{}
	for i, loc := range locations {
		e := Event{Offset: int64(i + 1)}
		if loc != "" {
			e.LocationID = &loc
		}
		p.events = append(p.events, e)
		p.frames = append(p.frames, []byte{byte('a' + i)})
	}
	if len(p.frames) > 1 {
		for _, f := range p.frames {
			p.joined = append(p.joined, f...)
		}
	}
	return p
}

// receive reads exactly want from the peer, failing on anything else
// arriving first.
func receive(t *testing.T, peer net.Conn, want string) {
	t.Helper()
	got := make([]byte, len(want))
	_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != want {
		t.Fatalf("client received %q (%v), want %q", got, err, want)
	}
}

func TestDeliverLive_SendsWhatEachClientWantsInOneWrite(t *testing.T) {
	cases := []struct {
		name      string
		all       bool
		locations []string
		cursor    int64
		pass      []string
		want      string
		cursorTo  int64
	}{
		{"whole account, whole pass", true, nil, 0, []string{"A", "B", ""}, "abc", 3},
		{"whole account, resumed inside the pass", true, nil, 1, []string{"A", "B", "C"}, "bc", 3},
		{"whole account, one event", true, nil, 0, []string{"A"}, "a", 1},
		{"locations, some of the pass", false, []string{"A"}, 0, []string{"A", "B", "A", ""}, "ac", 4},
		{"locations, one of the pass", false, []string{"B"}, 1, []string{"B", "B", "A"}, "b", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, peer := pipeClient(t)
			c.all, c.cursor = tc.all, tc.cursor
			c.locations = map[string]bool{}
			for _, l := range tc.locations {
				c.locations[l] = true
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.deliverLive(testPass(tc.pass...))
			}()
			receive(t, peer, tc.want)
			<-done
			if c.cursor != tc.cursorTo {
				t.Fatalf("cursor %d, want %d", c.cursor, tc.cursorTo)
			}
		})
	}
}

func TestDeliverLive_NothingWantedWritesNothingButMovesTheCursor(t *testing.T) {
	c, peer := pipeClient(t)
	c.locations = map[string]bool{"Z": true}
	c.deliverLive(testPass("A", "B"))
	if c.cursor != 2 {
		t.Fatalf("cursor %d, want 2", c.cursor)
	}
	_ = peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := peer.Read(make([]byte, 1)); n != 0 {
		t.Fatal("a client that wanted none of the pass was written to")
	}
}

// A watcher whose staff grant ran out by the time a pass began is sent
// none of it, even when the timer that closes it has not fired yet: the
// pass may hold events that happened after access ended.
func TestDeliverLive_AccessEndedBeforeThePass_SendsNothingAndCloses4003(t *testing.T) {
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	c, peer := pipeClient(t)
	c.all, c.accessUntil = true, until
	p := testPass("A")
	p.at = until
	c.deliverLive(p)
	select {
	case <-c.closing:
	default:
		t.Fatal("a watcher whose access ended was not closed")
	}
	c.wmu.Lock()
	closeWith, queued := c.ws.closeWith, len(c.ws.queue)
	c.wmu.Unlock()
	if want := wsframe.CloseFrame(CloseForbidden, closeAccessExpired); string(closeWith) != string(want) || queued != 0 {
		t.Fatalf("close frame %q with %d frames queued, want %q and none", closeWith, queued, want)
	}
	_ = peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := peer.Read(make([]byte, 1)); n != 0 {
		t.Fatal("an event was written to a watcher whose access had ended")
	}

	// A pass that began a moment before is still delivered.
	c, peer = pipeClient(t)
	c.all, c.accessUntil = true, until
	p = testPass("A")
	p.at = until.Add(-time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.deliverLive(p)
	}()
	receive(t, peer, "a")
	<-done
}
