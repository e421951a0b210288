package wsframe

import (
	"bytes"

	"github.com/gobwas/ws"
)

// TextFrame wraps payload in an unfragmented, unmasked WebSocket text
// frame. Frames are built once and written as bytes, so one frame can be
// shared by many connections and several queued frames go out in one
// write.
func TextFrame(payload []byte) []byte { return compileFrame(ws.NewTextFrame(payload)) }

// CloseFrame is the close frame with code and text; a text too long for a
// control frame is cut short.
func CloseFrame(code int, text string) []byte {
	return compileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), text)))
}

// PongFrame answers a ping with its application data, which the reader
// has already bounded to what a control frame may carry.
func PongFrame(appData []byte) []byte { return compileFrame(ws.NewPongFrame(appData)) }

// PingFrame is an empty ping. It is shared: callers must not change it.
var PingFrame = ws.CompiledPing

// compileFrame encodes f into a slice of exactly its size. It does what
// ws.CompileFrame does, but that starts from a 16-byte buffer and grows
// it, copying the payload again and leaving spare capacity in a frame that
// may wait in thousands of queues.
func compileFrame(f ws.Frame) []byte {
	buf := bytes.NewBuffer(make([]byte, 0, ws.HeaderSize(f.Header)+len(f.Payload)))
	// Writing to a bytes.Buffer does not fail, and a header built by
	// ws.NewFrame is always valid.
	_ = ws.WriteFrame(buf, f)
	return buf.Bytes()
}
