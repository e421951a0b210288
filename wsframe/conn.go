// Package wsframe is the server side of a WebSocket once its handshake is
// answered: frames read straight from the socket and checked, and frames
// written whole. The realtime hub and the device link both use it, because
// both hold connections by the ten thousand and neither may keep a read
// buffer, a write buffer or a goroutine per connection that it does not
// need.
package wsframe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Conn is the server side of one WebSocket once the handshake is done: one
// goroutine reads it, and frames prepared whole are written on it, either
// without waiting (TryWrite, for writers that serve many connections) or
// with a deadline (Write).
//
// The frames are parsed, checked and encoded by gobwas/ws, whose functions
// work on a reader or a writer rather than on a connection object of their
// own, because idle connections are counted by the ten thousand: frames
// are read straight from the socket, so between frames a connection holds
// no read buffer at all (client frames are few and small), and the HTTP
// server's per-request state is released as soon as the upgrade is
// answered.
type Conn struct {
	raw net.Conn
	// sys writes without blocking where the socket allows it (TCP does);
	// nil falls back to a short write deadline.
	sys syscall.RawConn
	// r is raw, preceded by any bytes the HTTP server had read ahead of
	// the handshake.
	r io.Reader
	// scratch is where ws.ReadHeaderBuffer reads a frame's length and
	// mask, so reading a header allocates nothing.
	scratch [ws.MaxHeaderSize - 2]byte
	limit   int

	onPing  func(payload []byte)
	onPong  func()
	onClose func(code int)
}

// Close codes this side sends for protocol faults (RFC 6455 section 7.4.1).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseNoStatus        = 1005
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseTryAgainLater   = 1013
)

// NewConn wraps a socket whose WebSocket handshake has been answered.
// readAhead is whatever the HTTP server had already read past the
// handshake request; it is read first. A message longer than limit bytes
// ends the connection with 1009.
func NewConn(raw net.Conn, readAhead []byte, limit int) *Conn {
	c := &Conn{raw: raw, r: raw, limit: limit}
	if sc, ok := raw.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.sys = rc
		}
	}
	if len(readAhead) > 0 {
		c.r = io.MultiReader(bytes.NewReader(readAhead), raw)
	}
	return c
}

// ProtocolError is a client fault that ends the connection with a close
// code saying what was wrong.
type ProtocolError struct {
	Code int
	Text string
}

func (e *ProtocolError) Error() string { return fmt.Sprintf("websocket %d: %s", e.Code, e.Text) }

// ErrPeerClosed reports that the client sent a close frame.
var ErrPeerClosed = errors.New("websocket: closed by the client")

func protocolError(code int, format string, args ...any) error {
	return &ProtocolError{Code: code, Text: fmt.Sprintf(format, args...)}
}

// SetReadDeadline bounds the wait for the client's next frame.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// ErrWouldBlock reports that the socket took only part of a write, or
// nothing: its buffer is full.
var ErrWouldBlock = errors.New("websocket: socket buffer full")

// writeSlice bounds a write on a socket that cannot be written without
// blocking.
const writeSlice = 20 * time.Millisecond

// TryWrite writes as much of b as the socket takes at once, without
// waiting: a writer serving thousands of connections must never sit on
// one. It returns ErrWouldBlock, with the count written, when the socket's
// buffer is full.
func (c *Conn) TryWrite(b []byte) (int, error) {
	if c.sys == nil {
		_ = c.raw.SetWriteDeadline(time.Now().Add(writeSlice))
		n, err := c.raw.Write(b)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = ErrWouldBlock
		}
		return n, err
	}
	written := 0
	var writeErr error
	err := c.sys.Write(func(fd uintptr) bool {
		for written < len(b) {
			n, err := syscall.Write(int(fd), b[written:])
			if n > 0 {
				written += n
			}
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				writeErr = ErrWouldBlock
			case err != nil:
				writeErr = err
			case n == 0:
				writeErr = io.ErrUnexpectedEOF
			default:
				continue
			}
			break
		}
		// Done either way: never wait for the socket to drain.
		return true
	})
	if err != nil {
		return written, err
	}
	return written, writeErr
}

// Write writes b, one or more whole frames, waiting for the socket until
// deadline at the latest. It is for connections that write rarely and from
// one writer at a time; a writer serving many connections uses TryWrite.
func (c *Conn) Write(b []byte, deadline time.Time) error {
	if err := c.raw.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := c.raw.Write(b)
	return err
}

// OnPing sets what is called with each ping's application data, on the
// reader's goroutine.
func (c *Conn) OnPing(f func(payload []byte)) { c.onPing = f }

// OnPong sets what is called at each pong, on the reader's goroutine.
func (c *Conn) OnPong(f func()) { c.onPong = f }

// OnClose sets what is called with the code of the peer's close frame
// (1005 when it gave none), on the reader's goroutine.
func (c *Conn) OnClose(f func(code int)) { c.onClose = f }

// Close closes the socket.
func (c *Conn) Close() error { return c.raw.Close() }

// ReadMessage returns the next data message. Control frames in between are
// handed to the ping, pong and close callbacks; a close frame ends reading
// with ErrPeerClosed. A frame that breaks the protocol ends it with a
// *ProtocolError.
func (c *Conn) ReadMessage() (text bool, payload []byte, err error) {
	var (
		message []byte
		isText  bool
		// state tells ws.CheckHeader that this is the server side, and
		// whether a fragmented message waits for its continuation.
		state = ws.StateServerSide
	)
	for {
		h, data, err := c.readFrame(state, c.limit-len(message))
		if err != nil {
			return false, nil, err
		}
		switch h.OpCode {
		case ws.OpPing:
			if c.onPing != nil {
				c.onPing(data)
			}
			continue
		case ws.OpPong:
			if c.onPong != nil {
				c.onPong()
			}
			continue
		case ws.OpClose:
			code, err := parseClose(data)
			if err != nil {
				return false, nil, err
			}
			if c.onClose != nil {
				c.onClose(code)
			}
			return false, nil, ErrPeerClosed
		case ws.OpText, ws.OpBinary:
			isText, message = h.OpCode == ws.OpText, data
		case ws.OpContinuation:
			message = append(message, data...)
		}
		if !h.Fin {
			state = state.Set(ws.StateFragmented)
			continue
		}
		// The whole message is checked, not each fragment: a character
		// may be split between two fragments (RFC 6455 section 5.6).
		if isText && !utf8.Valid(message) {
			return false, nil, protocolError(CloseInvalidPayload, "text message is not valid UTF-8")
		}
		return isText, message, nil
	}
}

// readFrame reads one frame whose payload may be at most room bytes (for
// data frames; control frames are bounded by the protocol). The header is
// read straight from the socket into the connection's scratch space, and
// the payload into a slice of exactly its length, once the header has
// passed every check: nothing is buffered between frames.
func (c *Conn) readFrame(state ws.State, room int) (ws.Header, []byte, error) {
	h, err := ws.ReadHeaderBuffer(c.r, c.scratch[:])
	if errors.Is(err, ws.ErrHeaderLengthMSB) {
		// A length of 2^63 bytes or more is past any limit.
		return h, nil, protocolError(CloseMessageTooBig, "messages are limited to %d bytes", c.limit)
	}
	if err != nil {
		return h, nil, err
	}
	// Reserved opcodes and bits, unmasked frames, fragmented or long
	// control frames, and data frames out of sequence are all faults of
	// the protocol.
	if err := ws.CheckHeader(h, state); err != nil {
		return h, nil, protocolError(CloseProtocolError, "%s", err.Error())
	}
	if h.OpCode.IsData() && h.Length > int64(max(room, 0)) {
		return h, nil, protocolError(CloseMessageTooBig, "messages are limited to %d bytes", c.limit)
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		return h, nil, err
	}
	ws.Cipher(payload, h.Mask, 0)
	return h, payload, nil
}

// parseClose returns the code of a close frame's payload: the code the
// client gave, or 1005 when it gave none.
func parseClose(payload []byte) (int, error) {
	switch len(payload) {
	case 0:
		return CloseNoStatus, nil
	case 1:
		return 0, protocolError(CloseProtocolError, "close frame payload of one byte")
	}
	code, reason := ws.ParseCloseFrameDataUnsafe(payload)
	if !validCloseCode(code) {
		return 0, protocolError(CloseProtocolError, "close code %d may not be sent", code)
	}
	// An invalid reason is invalid payload data, 1007 (RFC 6455 section
	// 8.1), where ws.CheckCloseFrameData would make it a protocol error.
	if !utf8.ValidString(reason) {
		return 0, protocolError(CloseInvalidPayload, "close reason is not valid UTF-8")
	}
	return int(code), nil
}

// validCloseCode reports whether a peer may send code: those RFC 6455
// section 7.4 defines for use in a close frame, those IANA registered
// since (1012 to 1014), and the ranges for applications. It is not
// ws.CheckCloseFrameData, which refuses 1012 to 1014 (this server sends
// 1013 itself) and lets through codes from 5000 up, which no range holds.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code.IsProtocolReserved(), code == ws.StatusNoMeaningYet:
		return false
	case code >= ws.StatusNormalClosure && code <= 1014:
		return true
	}
	return code.IsApplicationSpec() || code.IsPrivateSpec()
}
