package realtime

import (
	"encoding/binary"
	"encoding/json"
)

// Client operations.
const (
	opSubscribe   = "subscribe"
	opUnsubscribe = "unsubscribe"
	opPing        = "ping"
)

// Close codes, as the API contract names them.
const (
	CloseUnauthorized = 4001
	CloseForbidden    = 4003
	CloseTooSlow      = 4008
	CloseTokenExpired = 4010
)

// MaxClientFrameBytes bounds a frame from a client: a subscribe to a few
// hundred locations fits.
const MaxClientFrameBytes = 32 << 10

// maxSubscribeLocations bounds one subscribe's location list.
const maxSubscribeLocations = 500

// clientFrame is what a client sends.
type clientFrame struct {
	Op          string   `json:"op"`
	LocationIDs []string `json:"location_ids,omitempty"`
	After       *int64   `json:"after,omitempty"`
	// AccountID lets support staff pick a granted account; others may
	// leave it out or name their own.
	AccountID string `json:"account_id,omitempty"`
}

// serverFrame is what the server sends.
type serverFrame struct {
	Type        string          `json:"type"`
	After       *int64          `json:"after,omitempty"`
	LocationIDs []string        `json:"location_ids,omitempty"`
	Event       json.RawMessage `json:"event,omitempty"`
	Code        string          `json:"code,omitempty"`
	Message     string          `json:"message,omitempty"`
	// Offset is the account's newest offset, sent with resume_expired so
	// the client can reload and continue from there.
	Offset *int64 `json:"offset,omitempty"`
}

// encodeFrame returns f as a complete WebSocket text frame, ready for the
// socket.
func encodeFrame(f serverFrame) []byte {
	b, _ := json.Marshal(f)
	return textFrame(b)
}

// textFrame wraps payload in an unfragmented, unmasked WebSocket text
// frame (RFC 6455 section 5.2). Frames are built once and written as bytes,
// so one event's frame is shared by every client and several queued frames
// go out in one write.
func textFrame(payload []byte) []byte {
	n := len(payload)
	var out []byte
	switch {
	case n <= 125:
		out = make([]byte, 2, 2+n)
		out[1] = byte(n)
	case n <= 0xFFFF:
		out = make([]byte, 4, 4+n)
		out[1] = 126
		binary.BigEndian.PutUint16(out[2:], uint16(n))
	default:
		out = make([]byte, 10, 10+n)
		out[1] = 127
		binary.BigEndian.PutUint64(out[2:], uint64(n))
	}
	out[0] = 0x81 // FIN and the text opcode.
	return append(out, payload...)
}

func errorFrame(code, message string) []byte {
	return encodeFrame(serverFrame{Type: "error", Code: code, Message: message})
}

// eventFrame is the frame for one event, encoded once and shared by every
// client that receives it.
func eventFrame(e Event) []byte {
	ev, _ := json.Marshal(e)
	return encodeFrame(serverFrame{Type: "event", Event: ev})
}
