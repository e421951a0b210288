package browsertest

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// cutProxy stands between the browser and a node, forwarding TCP, so
// that a test can fail the network under the page: cut drops every
// connection open through it, as a broken link would, and refuses new
// ones until restore.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startProxy forwards a loopback port to target (host:port) until the
// test ends.
func startProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// URL is the proxy's base URL.
func (p *cutProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(client)
	}
}

// forward joins one client connection to a new one to the target, both
// ways, until either side or cut closes them.
func (p *cutProxy) forward(client net.Conn) {
	defer p.wg.Done()
	upstream, err := p.open(client)
	if err != nil {
		_ = client.Close()
		return
	}
	defer p.forget(client, upstream)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// One side ended: end the other, so that neither waits for a
		// peer that is gone.
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(upstream, client)
	go pipe(client, upstream)
	<-done
	<-done
}

// open dials the target for client and records both, unless the proxy is
// down.
func (p *cutProxy) open(client net.Conn) (net.Conn, error) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		return nil, errors.New("the proxy is down")
	}
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		_ = upstream.Close()
		return nil, errors.New("the proxy is down")
	}
	p.conns[client] = struct{}{}
	p.conns[upstream] = struct{}{}
	return upstream, nil
}

func (p *cutProxy) forget(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

// cut closes every connection open through the proxy and refuses new
// ones until restore.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// restore lets connections through again.
func (p *cutProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
