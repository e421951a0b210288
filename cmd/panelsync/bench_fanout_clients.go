package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/models"
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

// The goroutine client is the other kind of load generator: one reading
// goroutine per connection on a WebSocket library, as common load tools
// are written. It costs the machine far more than the epoll client, which
// is the point: it is how others measure a server, and it can measure
// another server than panelsync with the same code.

// fanoutWire is a server's realtime protocol as the goroutine client
// speaks it.
type fanoutWire interface {
	// open dials one connection and subscribes it, returning once the
	// server has confirmed the subscription.
	open(ctx context.Context, d *websocket.Dialer) (*websocket.Conn, error)
	// parse reads one message from the server: it appends to keys the
	// ticks the message carries, and returns what the server expects in
	// answer (a pong), or nil. An error ends the connection's reading.
	parse(msg []byte, keys []string) ([]string, []byte, error)
}

// realtimeWire is panelsync's realtime protocol. A tick is a tap, and its
// key is the run ID of the sync.requested event the tap wrote.
type realtimeWire struct {
	base, token string
}

func (w realtimeWire) open(ctx context.Context, d *websocket.Dialer) (*websocket.Conn, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+w.token)
	c, _, err := d.DialContext(ctx, wsBase(w.base), h)
	if err != nil {
		return nil, err
	}
	if err := w.subscribe(c); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// subscribe subscribes c to the whole account and waits for the answer.
func (realtimeWire) subscribe(c *websocket.Conn) error {
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe"}`)); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		return err
	}
	if !strings.Contains(string(data), `"subscribed"`) {
		return fmt.Errorf("subscribe answered %s", data)
	}
	return c.SetReadDeadline(time.Time{})
}

func (realtimeWire) parse(msg []byte, keys []string) ([]string, []byte, error) {
	// Events are read without a full decode, which would cost the client
	// more than the server spends on them: the server encodes them with
	// encoding/json, so a quote in a string is escaped and the first
	// "run_id" key is the event's own.
	if rest, ok := bytes.CutPrefix(msg, []byte(`{"type":"event","event":{`)); ok {
		if !bytes.Contains(rest, []byte(`"type":"`+models.EventSyncRequested+`"`)) {
			return keys, nil, nil
		}
		if _, id, ok := bytes.Cut(rest, []byte(`"run_id":"`)); ok {
			if end := bytes.IndexByte(id, '"'); end > 0 {
				return append(keys, string(id[:end])), nil, nil
			}
		}
	}
	var f struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Event   struct {
			Type  string  `json:"type"`
			RunID *string `json:"run_id"`
		} `json:"event"`
	}
	if err := json.Unmarshal(msg, &f); err != nil {
		return keys, nil, fmt.Errorf("a frame that is not JSON: %w", err)
	}
	switch {
	case f.Type == "error":
		return keys, nil, fmt.Errorf("the server sent error %s: %s", f.Code, f.Message)
	case f.Type == "event" && f.Event.Type == models.EventSyncRequested && f.Event.RunID != nil:
		keys = append(keys, *f.Event.RunID)
	}
	return keys, nil, nil
}

// centrifugeWire is the JSON protocol (version 2) of the centrifuge
// library: a connect command, a subscribe command to one channel, then
// publications pushed as {"push":{"channel":..,"pub":{"data":..}}}. A
// tick's key is the seq its publications carry in their data. The server
// pings with an empty reply, {}, and wants an empty command back.
type centrifugeWire struct {
	addr, channel string
	// pubPrefix is how the server's encoder begins a publication to the
	// channel whose data is the peer's, {"seq":N,...}.
	pubPrefix []byte
}

func newCentrifugeWire(addr, channel string) centrifugeWire {
	quoted, _ := json.Marshal(channel)
	return centrifugeWire{addr: addr, channel: channel, pubPrefix: fmt.Appendf(nil, `{"push":{"channel":%s,"pub":{"data":{"seq":`, quoted)}
}

// quickSeq reads the seq of a publication to the channel without a full
// decode, which would cost the client more than the server spends on the
// message; a line of another shape is left to the decoder.
func (w centrifugeWire) quickSeq(line []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(line, w.pubPrefix)
	if !ok || len(w.pubPrefix) == 0 {
		return "", false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	// The decoder's key is the number as strconv writes it.
	if n == 0 || n == len(rest) || (rest[n] != ',' && rest[n] != '}') || (n > 1 && rest[0] == '0') {
		return "", false
	}
	return string(rest[:n]), true
}

// centrifugeReply is one reply or push of the JSON protocol.
type centrifugeReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    uint32 `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Push *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data   json.RawMessage `json:"data"`
			Offset uint64          `json:"offset"`
		} `json:"pub"`
		Disconnect *struct {
			Code   uint32 `json:"code"`
			Reason string `json:"reason"`
		} `json:"disconnect"`
	} `json:"push"`
	// Connect and Subscribe are the results of those commands.
	Connect   json.RawMessage `json:"connect"`
	Subscribe json.RawMessage `json:"subscribe"`
}

// isPing tells the server's ping, a reply with nothing in it.
func (r centrifugeReply) isPing() bool {
	return r.ID == 0 && r.Error == nil && r.Push == nil && r.Connect == nil && r.Subscribe == nil
}

// decodeCentrifugeLine decodes one line of a WebSocket message: the
// server may send several replies in one message, a line each. A blank
// line is not a reply.
func decodeCentrifugeLine(line []byte) (centrifugeReply, bool, error) {
	var r centrifugeReply
	if len(bytes.TrimSpace(line)) == 0 {
		return r, false, nil
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return r, false, fmt.Errorf("a reply that is not JSON: %w", err)
	}
	return r, true, nil
}

func (w centrifugeWire) open(ctx context.Context, d *websocket.Dialer) (*websocket.Conn, error) {
	c, _, err := d.DialContext(ctx, "ws://"+w.addr+"/connection/websocket", nil)
	if err != nil {
		return nil, err
	}
	channel, _ := json.Marshal(w.channel)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	err = centrifugeCall(c, 1, []byte(`{"id":1,"connect":{"name":"panelsync-bench"}}`))
	if err == nil {
		err = centrifugeCall(c, 2, fmt.Appendf(nil, `{"id":2,"subscribe":{"channel":%s}}`, channel))
	}
	if err == nil {
		err = c.SetReadDeadline(time.Time{})
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// centrifugeCall sends command and reads until the reply with its id.
func centrifugeCall(c *websocket.Conn, id uint32, command []byte) error {
	if err := c.WriteMessage(websocket.TextMessage, command); err != nil {
		return err
	}
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return err
		}
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			r, ok, err := decodeCentrifugeLine(line)
			if err != nil {
				return err
			}
			if !ok || r.ID != id {
				continue
			}
			if r.Error != nil {
				return fmt.Errorf("command %d answered error %d: %s", id, r.Error.Code, r.Error.Message)
			}
			return nil
		}
	}
}

func (w centrifugeWire) parse(msg []byte, keys []string) ([]string, []byte, error) {
	var answer []byte
	for line := range bytes.SplitSeq(msg, []byte("\n")) {
		if seq, ok := w.quickSeq(line); ok {
			keys = append(keys, seq)
			continue
		}
		r, ok, err := decodeCentrifugeLine(line)
		if err != nil {
			return keys, nil, err
		}
		if !ok {
			continue
		}
		switch {
		case r.isPing():
			// Pongs to several pings go in one message, a line each.
			if answer != nil {
				answer = append(answer, '\n')
			}
			answer = append(answer, "{}"...)
		case r.Error != nil:
			return keys, nil, fmt.Errorf("the server sent error %d: %s", r.Error.Code, r.Error.Message)
		case r.Push != nil && r.Push.Disconnect != nil:
			return keys, nil, fmt.Errorf("the server disconnected the client: %d %s", r.Push.Disconnect.Code, r.Push.Disconnect.Reason)
		case r.Push != nil && r.Push.Pub != nil && r.Push.Channel == w.channel:
			var data struct {
				Seq *uint64 `json:"seq"`
			}
			if err := json.Unmarshal(r.Push.Pub.Data, &data); err != nil || data.Seq == nil {
				return keys, nil, fmt.Errorf("a publication without a seq: %s", r.Push.Pub.Data)
			}
			keys = append(keys, strconv.FormatUint(*data.Seq, 10))
		}
	}
	return keys, answer, nil
}

// fanoutReaders is the goroutine client's connections and what each has
// received.
type fanoutReaders struct {
	conns []*websocket.Conn
	// epoch is the clock receipts are read on.
	epoch time.Time
	// firsts[i] maps each key connection i received to when it first
	// did, since epoch. Only connection i's goroutine writes it until
	// close returns.
	firsts []map[string]time.Duration
	counts []atomic.Int32
	ended  []atomic.Bool
	// lost counts connections whose reading ended before close.
	lost    atomic.Int32
	closing atomic.Bool
	wg      sync.WaitGroup
}

// startFanoutReaders opens n connections over wire, which will carry up
// to ticks keys, and starts reading each in a goroutine of its own.
func startFanoutReaders(ctx context.Context, wire fanoutWire, n, ticks int, epoch time.Time) (*fanoutReaders, error) {
	r := &fanoutReaders{
		epoch:  epoch,
		firsts: make([]map[string]time.Duration, n),
		counts: make([]atomic.Int32, n),
		ended:  make([]atomic.Bool, n),
	}
	d := benchDialer()
	conns, err := dialEach(ctx, n, func(ctx context.Context, i int) (*websocket.Conn, error) {
		c, err := wire.open(ctx, d)
		if err != nil {
			return nil, err
		}
		r.firsts[i] = make(map[string]time.Duration, ticks)
		r.wg.Add(1)
		go r.read(i, c, wire)
		return c, nil
	})
	if err != nil {
		// dialEach has closed what it opened, which ends the readers.
		r.closing.Store(true)
		r.wg.Wait()
		return nil, err
	}
	r.conns = conns
	return r, nil
}

func (r *fanoutReaders) read(i int, c *websocket.Conn, wire fanoutWire) {
	defer r.wg.Done()
	defer r.ended[i].Store(true)
	c.SetReadLimit(1 << 20)
	var keys []string
	// One buffer per connection is read into again and again: what parse
	// keeps of a message it copies, and a client that allocated each
	// message would spend on its garbage the CPU it shares with the
	// server it measures.
	var msg []byte
	for {
		_, rd, err := c.NextReader()
		if err == nil {
			msg, err = readInto(rd, msg[:0])
		}
		if err != nil {
			if !r.closing.Load() {
				r.lost.Add(1)
			}
			return
		}
		at := time.Since(r.epoch)
		var answer []byte
		keys, answer, err = wire.parse(msg, keys[:0])
		for _, k := range keys {
			if _, seen := r.firsts[i][k]; !seen {
				r.firsts[i][k] = at
				r.counts[i].Add(1)
			}
		}
		if err == nil && answer != nil {
			err = c.WriteMessage(websocket.TextMessage, answer)
		}
		if err != nil {
			r.lost.Add(1)
			_ = c.Close()
			return
		}
	}
}

// readInto appends everything rd holds to buf.
func readInto(rd io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// waitFor waits until every connection has want keys or has ended, or
// until deadline.
func (r *fanoutReaders) waitFor(ctx context.Context, want int, deadline time.Time) error {
	for {
		done := true
		for i := range r.counts {
			if int(r.counts[i].Load()) < want && !r.ended[i].Load() {
				done = false
				break
			}
		}
		if done || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// close hangs up every connection and waits for the readers, after which
// firsts may be read.
func (r *fanoutReaders) close() {
	r.closing.Store(true)
	closeAll(r.conns)
	r.wg.Wait()
}
