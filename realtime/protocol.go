package realtime

import (
	"encoding/json"

	"github.com/panelsync/panelsync/wsframe"
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
	return wsframe.TextFrame(b)
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
