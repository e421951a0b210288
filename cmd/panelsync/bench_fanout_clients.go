package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The subscribers of bench fanout are a load generator: they share the
// machine with the server being measured, so they should cost it as
// little as possible. Each is a real WebSocket client (HTTP upgrade,
// masked frames out, frames parsed in), but all of them are read by one
// epoll loop instead of a goroutine and a runtime wake-up per frame.

// fanoutSubscriber is one connection of the load generator.
type fanoutSubscriber struct {
	conn net.Conn
	fd   int
	// pending holds bytes of a frame not yet complete.
	pending []byte
	got     int
}

// benchFanoutClients is the client side of bench fanout: it opens the
// subscribers, says "ready", and records when each receives each event,
// then writes the receipt times (Unix nanoseconds, zero for an event not
// received; client-major, little-endian int64) to stdout.
func benchFanoutClients(ctx context.Context, env cmdEnv, args []string) error {
	fs := flag.NewFlagSet("bench fanout-clients", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	base := fs.String("base", "", "server base URL")
	n := fs.Int("connections", 0, "subscribers to open")
	events := fs.Int("events", 0, "events to expect")
	first := fs.Int64("first", 0, "the account's offset before the first event")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for every event")
	loopsFlag := fs.Int("loops", 2, "reading threads")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" || *n < 1 || *n > clientsPerProcess || *events < 1 {
		return fmt.Errorf("--base, --connections 1..%d and --events are required", clientsPerProcess)
	}
	if err := raiseFileLimit(uint64(*n) + 512); err != nil {
		return err
	}
	addr := strings.TrimPrefix(*base, "http://")
	token := env.getenv("PANELSYNC_BENCH_TOKEN")

	subs := make([]*fanoutSubscriber, *n)
	errs := make(chan error, *n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := dialSubscriber(ctx, addr, token)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			subs[i] = s
		}()
	}
	wg.Wait()
	defer func() {
		for _, s := range subs {
			if s != nil {
				_ = s.conn.Close()
			}
		}
	}()
	select {
	case err := <-errs:
		return err
	default:
	}

	received := make([]int64, *n**events)
	deadline := time.Now().Add(*timeout)
	loops := max(1, min(*loopsFlag, *n))
	epolls := make([]int, loops)
	for l := range epolls {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return err
		}
		defer syscall.Close(epfd)
		epolls[l] = epfd
	}
	for i, s := range subs {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		if err := syscall.EpollCtl(epolls[i%loops], syscall.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			return err
		}
	}
	fmt.Fprintln(env.stdout, "ready")
	loopErrs := make(chan error, loops)
	for l, epfd := range epolls {
		mine := (*n - l + loops - 1) / loops
		go func() {
			loopErrs <- readFanout(epfd, subs, mine, *events, *first, received, deadline)
		}()
	}
	for range loops {
		if err := <-loopErrs; err != nil {
			return err
		}
	}
	w := bufio.NewWriter(env.stdout)
	if err := binary.Write(w, binary.LittleEndian, received); err != nil {
		return err
	}
	return w.Flush()
}

// readFanout reads the subscribers registered with epfd until each has
// every event (or is gone) or the deadline passes, recording when each
// event arrived.
func readFanout(epfd int, subs []*fanoutSubscriber, count, events int, first int64, received []int64, deadline time.Time) error {
	done := 0
	ready := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	for done < count && time.Now().Before(deadline) {
		n, err := syscall.EpollWait(epfd, ready, 100)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return err
		}
		for _, ev := range ready[:n] {
			i := int(ev.Fd)
			s := subs[i]
			read, err := syscall.Read(s.fd, buf)
			now := time.Now().UnixNano()
			if read <= 0 {
				if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
					continue
				}
				// Closed or failed: what it has not received is missing.
				_ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, s.fd, nil)
				done++
				continue
			}
			s.pending = append(s.pending, buf[:read]...)
			for {
				payload, opcode, rest, ok := nextServerFrame(s.pending)
				if !ok {
					break
				}
				s.pending = rest
				if opcode != 0x1 {
					continue
				}
				offset, ok := frameOffset(payload)
				k := offset - first - 1
				if !ok || k < 0 || k >= int64(events) || received[i*events+int(k)] != 0 {
					continue
				}
				received[i*events+int(k)] = now
				s.got++
				if s.got == events {
					_ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, s.fd, nil)
					done++
				}
			}
			if len(s.pending) == 0 {
				s.pending = s.pending[:0:0]
			}
		}
	}
	return nil
}

// nextServerFrame splits one complete, unmasked frame off the front of b.
func nextServerFrame(b []byte) (payload []byte, opcode byte, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, 0, b, false
	}
	opcode = b[0] & 0x0F
	length, head := uint64(b[1]&0x7F), 2
	switch length {
	case 126:
		if len(b) < 4 {
			return nil, 0, b, false
		}
		length, head = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return nil, 0, b, false
		}
		length, head = binary.BigEndian.Uint64(b[2:]), 10
	}
	if uint64(len(b)-head) < length {
		return nil, 0, b, false
	}
	end := head + int(length)
	return b[head:end], opcode, b[end:], true
}

// dialSubscriber opens a realtime WebSocket, subscribes to the whole
// account and waits for the answer.
func dialSubscriber(ctx context.Context, addr, token string) (*fanoutSubscriber, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*fanoutSubscriber, error) {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	key := base64.StdEncoding.EncodeToString(nonce)
	request := "GET /v1/realtime HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	if _, err := conn.Write([]byte(request)); err != nil {
		return fail(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fail(err)
	}
	_ = resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return fail(fmt.Errorf("upgrade answered %s", resp.Status))
	}
	if _, err := conn.Write(maskedClientFrame([]byte(`{"op":"subscribe"}`))); err != nil {
		return fail(err)
	}
	var pending []byte
	for {
		payload, opcode, rest, ok := nextServerFrame(pending)
		if ok {
			pending = rest
			if opcode == 0x8 {
				return fail(fmt.Errorf("closed at subscribe: %x", payload))
			}
			if opcode == 0x1 && strings.Contains(string(payload), `"subscribed"`) {
				break
			}
			continue
		}
		chunk := make([]byte, 4096)
		read, err := br.Read(chunk)
		if err != nil {
			return fail(err)
		}
		pending = append(pending, chunk[:read]...)
	}
	if len(pending) > 0 || br.Buffered() > 0 {
		return fail(errors.New("the server sent more than the subscribe answer before any event"))
	}
	_ = conn.SetDeadline(time.Time{})
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return fail(errors.New("not a socket"))
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fail(err)
	}
	s := &fanoutSubscriber{conn: conn}
	if err := raw.Control(func(fd uintptr) { s.fd = int(fd) }); err != nil {
		return fail(err)
	}
	return s, nil
}

// maskedClientFrame is a short text frame as a client sends it.
func maskedClientFrame(payload []byte) []byte {
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	out := append([]byte{0x81, 0x80 | byte(len(payload))}, mask...)
	for i, b := range payload {
		out = append(out, b^mask[i%4])
	}
	return out
}
