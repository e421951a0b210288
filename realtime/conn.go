package realtime

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unicode/utf8"
)

// Conn is the server side of one realtime WebSocket once the handshake is
// done: its reader runs on the connection's goroutine, and the hub's write
// workers send prepared frames on the same socket.
//
// The frames are read here, straight from the socket, rather than through
// a WebSocket library's connection object, because idle connections are
// counted by the ten thousand: between frames a connection holds no read
// buffer at all (client frames are few and small), and the HTTP server's
// per-request state is released as soon as the upgrade is answered.
type Conn struct {
	raw net.Conn
	// sys writes without blocking where the socket allows it (TCP does);
	// nil falls back to a short write deadline.
	sys syscall.RawConn
	// r is raw, preceded by any bytes the HTTP server had read ahead of
	// the handshake.
	r io.Reader
	// scratch holds a frame's length and mask, so reading a header
	// allocates nothing.
	scratch [8]byte
	limit   int

	onPing  func(payload []byte)
	onPong  func()
	onClose func(code int)
}

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xA
)

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
// handshake request; it is read first.
func NewConn(raw net.Conn, readAhead []byte) *Conn {
	c := &Conn{raw: raw, r: raw, limit: MaxClientFrameBytes}
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

// errPeerClosed reports that the client sent a close frame.
var errPeerClosed = errors.New("websocket: closed by the client")

func protocolError(code int, format string, args ...any) error {
	return &ProtocolError{Code: code, Text: fmt.Sprintf(format, args...)}
}

// SetReadDeadline bounds the wait for the client's next frame.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// errWouldBlock reports that the socket took only part of a write, or
// nothing: its buffer is full.
var errWouldBlock = errors.New("websocket: socket buffer full")

// writeSlice bounds a write on a socket that cannot be written without
// blocking.
const writeSlice = 20 * time.Millisecond

// tryWrite writes as much of b as the socket takes at once, without
// waiting: a writer serving thousands of connections must never sit on
// one. It returns errWouldBlock, with the count written, when the socket's
// buffer is full.
func (c *Conn) tryWrite(b []byte) (int, error) {
	if c.sys == nil {
		_ = c.raw.SetWriteDeadline(time.Now().Add(writeSlice))
		n, err := c.raw.Write(b)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = errWouldBlock
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
				writeErr = errWouldBlock
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

// Close closes the socket.
func (c *Conn) Close() error { return c.raw.Close() }

// ReadMessage returns the next data message. Control frames in between are
// handed to the ping, pong and close callbacks; a close frame ends reading
// with errPeerClosed. A frame that breaks the protocol ends it with a
// *ProtocolError.
func (c *Conn) ReadMessage() (text bool, payload []byte, err error) {
	var (
		message []byte
		started bool
		isText  bool
	)
	for {
		fin, opcode, data, err := c.readFrame(c.limit - len(message))
		if err != nil {
			return false, nil, err
		}
		switch opcode {
		case wsPing:
			if c.onPing != nil {
				c.onPing(data)
			}
			continue
		case wsPong:
			if c.onPong != nil {
				c.onPong()
			}
			continue
		case wsClose:
			code, err := parseClose(data)
			if err != nil {
				return false, nil, err
			}
			if c.onClose != nil {
				c.onClose(code)
			}
			return false, nil, errPeerClosed
		case wsText, wsBinary:
			if started {
				return false, nil, protocolError(CloseProtocolError, "a new message began before the previous one ended")
			}
			started, isText, message = true, opcode == wsText, data
		case wsContinuation:
			if !started {
				return false, nil, protocolError(CloseProtocolError, "continuation frame without a message to continue")
			}
			message = append(message, data...)
		default:
			return false, nil, protocolError(CloseProtocolError, "unknown opcode %d", opcode)
		}
		if fin {
			if isText && !utf8.Valid(message) {
				return false, nil, protocolError(CloseInvalidPayload, "text message is not valid UTF-8")
			}
			return isText, message, nil
		}
	}
}

// readFrame reads one frame whose payload may be at most room bytes (for
// data frames; control frames are bounded by the protocol).
func (c *Conn) readFrame(room int) (fin bool, opcode byte, payload []byte, err error) {
	head := c.scratch[:2]
	if _, err := io.ReadFull(c.r, head); err != nil {
		return false, 0, nil, err
	}
	fin = head[0]&0x80 != 0
	opcode = head[0] & 0x0F
	if head[0]&0x70 != 0 {
		return false, 0, nil, protocolError(CloseProtocolError, "reserved bits set, but no extension was agreed")
	}
	if head[1]&0x80 == 0 {
		return false, 0, nil, protocolError(CloseProtocolError, "client frames must be masked")
	}
	length := uint64(head[1] & 0x7F)
	switch length {
	case 126:
		if _, err := io.ReadFull(c.r, c.scratch[:2]); err != nil {
			return false, 0, nil, err
		}
		length = uint64(binary.BigEndian.Uint16(c.scratch[:2]))
	case 127:
		if _, err := io.ReadFull(c.r, c.scratch[:8]); err != nil {
			return false, 0, nil, err
		}
		length = binary.BigEndian.Uint64(c.scratch[:8])
	}
	if opcode >= wsClose {
		if !fin || length > 125 {
			return false, 0, nil, protocolError(CloseProtocolError, "control frames must be unfragmented and at most 125 bytes")
		}
	} else if length > uint64(max(room, 0)) {
		return false, 0, nil, protocolError(CloseMessageTooBig, "messages are limited to %d bytes", c.limit)
	}
	var mask [4]byte
	if _, err := io.ReadFull(c.r, mask[:]); err != nil {
		return false, 0, nil, err
	}
	payload = make([]byte, length)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		return false, 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return fin, opcode, payload, nil
}

// parseClose returns the code of a close frame's payload: the code the
// client gave, or 1005 when it gave none.
func parseClose(payload []byte) (int, error) {
	switch {
	case len(payload) == 0:
		return CloseNoStatus, nil
	case len(payload) == 1:
		return 0, protocolError(CloseProtocolError, "close frame payload of one byte")
	}
	code := int(binary.BigEndian.Uint16(payload))
	if !validCloseCode(code) {
		return 0, protocolError(CloseProtocolError, "close code %d may not be sent", code)
	}
	if !utf8.Valid(payload[2:]) {
		return 0, protocolError(CloseInvalidPayload, "close reason is not valid UTF-8")
	}
	return code, nil
}

// validCloseCode reports whether a peer may send code (RFC 6455 section
// 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
