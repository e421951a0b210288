package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// Limits that keep a large fleet from overwhelming the server, or the
// simulator's own process, when it starts or when the server comes back.
const (
	// maxConcurrentDials caps dials in progress across the fleet.
	maxConcurrentDials = 64
	// startSpreadPerPanel and maxStartSpread spread the first dials: a
	// thousand panels start over two seconds, more over at most five.
	startSpreadPerPanel = 2 * time.Millisecond
	maxStartSpread      = 5 * time.Second
)

// Fleet is many simulated panels run together with one set of Options,
// each with its own generated state.
type Fleet struct {
	panels   []*Panel
	bySerial map[string]*Panel
	wg       sync.WaitGroup
}

// RunFleet starts one panel per credential, linked to the server at
// baseURL, and returns at once. The panels run until ctx ends; Wait waits
// for them to stop. It returns an error, and starts nothing, if the
// options, a credential or the URL is unusable, or if a serial repeats.
//
// First dials are spread over a few seconds and at most a few dozen are in
// progress at a time, so that thousands of panels do not arrive at once.
func RunFleet(ctx context.Context, baseURL string, creds []Credentials, opts Options) (*Fleet, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if _, err := LinkURL(baseURL); err != nil {
		return nil, err
	}
	if len(creds) == 0 {
		return nil, errors.New("fleet has no panels")
	}
	f := &Fleet{bySerial: make(map[string]*Panel, len(creds))}
	for i, c := range creds {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("panel %d: %w", i, err)
		}
		if f.bySerial[c.Serial] != nil {
			return nil, fmt.Errorf("panel %d: serial %q appears twice", i, c.Serial)
		}
		f.bySerial[c.Serial] = NewPanel(c, opts)
		f.panels = append(f.panels, f.bySerial[c.Serial])
	}

	// One dialer with pooled write buffers: idle links then hold no write
	// buffer, which matters with thousands of them.
	dialer := &websocket.Dialer{
		HandshakeTimeout: dialTimeout,
		ReadBufferSize:   2048,
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
	}
	slots := make(chan struct{}, maxConcurrentDials)
	spread := min(time.Duration(len(creds))*startSpreadPerPanel, maxStartSpread)
	for _, p := range f.panels {
		p.dialer = dialer
		p.dialSlots = slots
		if spread > 0 {
			p.startDelay = rand.N(spread)
		}
		f.wg.Go(func() {
			// The options and credentials were checked above and the
			// panels are fresh, so Run can only end with ctx.
			if err := p.Run(ctx, baseURL); err != nil {
				p.log.Error("panel stopped", "err", err)
			}
		})
	}
	return f, nil
}

// Wait blocks until every panel has stopped, after the context given to
// RunFleet has ended.
func (f *Fleet) Wait() { f.wg.Wait() }

// Panels returns the fleet's panels in the order of their credentials.
func (f *Fleet) Panels() []*Panel { return append([]*Panel(nil), f.panels...) }

// Panel returns the panel with the given serial, or nil.
func (f *Fleet) Panel(serial string) *Panel { return f.bySerial[serial] }

// Len is the number of panels in the fleet.
func (f *Fleet) Len() int { return len(f.panels) }

// ConnectedCount is the number of panels connected now.
func (f *Fleet) ConnectedCount() int {
	n := 0
	for _, p := range f.panels {
		if p.Connected() {
			n++
		}
	}
	return n
}

// AuthRejectedCount is the number of panels whose credentials the server
// refused at their last dial.
func (f *Fleet) AuthRejectedCount() int {
	n := 0
	for _, p := range f.panels {
		if p.State() == StateAuthRejected {
			n++
		}
	}
	return n
}

// LastDialError returns why a panel that is not connected last failed to
// link, or nil when every panel is connected or none has failed yet.
func (f *Fleet) LastDialError() error {
	for _, p := range f.panels {
		if p.Connected() {
			continue
		}
		if err := p.LastError(); err != nil {
			return err
		}
	}
	return nil
}

// WaitConnected blocks until every panel is connected or ctx ends.
func (f *Fleet) WaitConnected(ctx context.Context) error {
	for _, p := range f.panels {
		if err := p.WaitConnected(ctx); err != nil {
			return fmt.Errorf("%d of %d panels connected: %w", f.ConnectedCount(), len(f.panels), err)
		}
	}
	return nil
}

// Stats sums the counters of every panel.
func (f *Fleet) Stats() Stats {
	total := Stats{Commands: make(map[string]int64)}
	for _, p := range f.panels {
		total.Add(p.Stats())
	}
	return total
}
