package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// probeEvery is how often the prober sends each of its requests.
const probeEvery = 100 * time.Millisecond

// maxInFlight bounds one probe's requests waiting for an answer at once,
// so that a node that hangs cannot pile up goroutines without end.
const maxInFlight = 150

// Sample statuses that are not HTTP statuses.
const (
	// noAnswer: the connection was refused or broke before an answer.
	noAnswer = 0
	// hung: no answer within the hang bound.
	hung = -1
)

// sample is one probe request and what came of it.
type sample struct {
	node, kind string
	at         time.Time
	took       time.Duration
	status     int
	// code is the problem code of an error answer.
	code       string
	retryAfter bool
	err        string
}

func (s sample) is2xx() bool { return s.status >= 200 && s.status < 300 }

// String describes the sample for a failure message.
func (s sample) String() string {
	what := fmt.Sprint(s.status)
	switch s.status {
	case noAnswer:
		what = "no answer (" + s.err + ")"
	case hung:
		what = "no answer within the hang bound"
	}
	if s.code != "" {
		what += " " + s.code
	}
	return fmt.Sprintf("%s %s at %s: %s after %s", s.node, s.kind, s.at.Format("15:04:05.000"), what, s.took.Round(time.Millisecond))
}

// probe is one request the prober repeats against one node.
type probe struct {
	node         *node
	kind         string
	method, path string
	body         string
}

// prober sends each probe every probeEvery and keeps every sample.
type prober struct {
	client *http.Client
	token  string
	probes []probe

	mu      sync.Mutex
	samples []sample
	skipped int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startProber begins probing; stop ends it.
func startProber(token string, hangBound time.Duration, probes []probe) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{
		// A fresh connection per request, so that a refused connection
		// says the node is down rather than that a pooled one went stale.
		client: &http.Client{Timeout: hangBound, Transport: &http.Transport{DisableKeepAlives: true}},
		token:  token,
		probes: probes,
		cancel: cancel,
	}
	for _, pr := range probes {
		p.wg.Go(func() { p.loop(ctx, pr) })
	}
	return p
}

func (p *prober) loop(ctx context.Context, pr probe) {
	slots := make(chan struct{}, maxInFlight)
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	var requests sync.WaitGroup
	defer requests.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			p.mu.Lock()
			p.skipped++
			p.mu.Unlock()
			continue
		}
		requests.Go(func() {
			defer func() { <-slots }()
			s := p.send(pr)
			p.mu.Lock()
			p.samples = append(p.samples, s)
			p.mu.Unlock()
		})
	}
}

// send makes one request. It does not take the prober's context: a
// request under way when probing stops is let finish, so that its sample
// says how long it really took.
func (p *prober) send(pr probe) sample {
	s := sample{node: pr.node.name, kind: pr.kind, at: time.Now()}
	var body io.Reader
	if pr.body != "" {
		body = strings.NewReader(pr.body)
	}
	req, _ := http.NewRequest(pr.method, pr.node.base+pr.path, body)
	req.Header.Set("Authorization", "Bearer "+p.token)
	if pr.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	s.took = time.Since(s.at)
	if err != nil {
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			s.status = hung
		} else {
			s.status = noAnswer
			s.err = shortError(err)
		}
		return s
	}
	defer resp.Body.Close()
	s.status = resp.StatusCode
	s.retryAfter = resp.Header.Get("Retry-After") != ""
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	s.took = time.Since(s.at)
	if err != nil {
		// The answer began but did not end: a hang if out of time.
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			s.status = hung
		}
		s.err = shortError(err)
		return s
	}
	if resp.StatusCode >= 400 {
		var problem struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(data, &problem)
		s.code = problem.Code
	}
	return s
}

// stop ends probing and waits for the requests under way.
func (p *prober) stop() {
	p.cancel()
	p.wg.Wait()
}

// snapshot returns the samples so far.
func (p *prober) snapshot() []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sample(nil), p.samples...)
}

func shortError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// skippedCount is how many requests were not sent because too many of
// the same probe were waiting for an answer.
func (p *prober) skippedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.skipped
}
