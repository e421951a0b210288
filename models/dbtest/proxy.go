package dbtest

import (
	"net"
	"sync"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
)

// Proxy forwards TCP connections to a MySQL server, and can stop
// forwarding without closing anything, as a frozen server or a network
// that drops its packets does: connections open, and bytes sent either
// way are held until it forwards again. It lets a test freeze the database
// one node sees without touching the server others share.
type Proxy struct {
	ln     net.Listener
	target string

	mu sync.Mutex
	// flowing is closed while bytes pass; held, a new open channel.
	flowing chan struct{}
	conns   map[net.Conn]struct{}
	closed  chan struct{}
	wg      sync.WaitGroup
}

// Proxied returns b reached through a new Proxy, closed when t ends. b
// must be a MySQL backend.
func Proxied(t testing.TB, b Backend) (Backend, *Proxy) {
	t.Helper()
	cfg, err := gomysql.ParseDSN(b.Config.MySQLDSN)
	if err != nil {
		t.Fatalf("proxy %s: %v", b.Name, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: cfg.Addr, flowing: make(chan struct{}), conns: map[net.Conn]struct{}{}, closed: make(chan struct{})}
	close(p.flowing)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	cfg.Addr = ln.Addr().String()
	b.Name += "-proxied"
	b.Config.MySQLDSN = cfg.FormatDSN()
	return b, p
}

// Hold stops forwarding: whatever either side sends waits in the proxy.
func (p *Proxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
		p.flowing = make(chan struct{})
	default:
	}
}

// Release forwards again, what was held first.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
	default:
		close(p.flowing)
	}
}

// pass waits until bytes may pass, or the proxy closes.
func (p *Proxy) pass() bool {
	p.mu.Lock()
	flowing := p.flowing
	p.mu.Unlock()
	select {
	case <-flowing:
		return true
	case <-p.closed:
		return false
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		p.wg.Add(2)
		go p.pipe(server, client)
		go p.pipe(client, server)
	}
}

// track records an open pair, so close can end it; false when the proxy
// has closed already.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	default:
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// pipe copies from src to dst, holding each read until bytes may pass;
// when either side ends, both do.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		_ = dst.Close()
		_ = src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.pass() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops accepting, ends every connection and waits for the
// proxy's goroutines.
func (p *Proxy) close() {
	p.mu.Lock()
	select {
	case <-p.closed:
	default:
		close(p.closed)
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}
