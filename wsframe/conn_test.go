package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/panelsync/panelsync/wsframe/wsframetest"
)

// testLimit bounds a message in these tests, as the realtime hub does.
const testLimit = 32 << 10

// closeTooSlow is a close code of the application's range.
const closeTooSlow = 4008

func readerConn(stream []byte) *Conn {
	return &Conn{r: bytes.NewReader(stream), limit: testLimit}
}

func TestConn_AssemblesFragmentsAndAnswersControlFramesBetween(t *testing.T) {
	var stream []byte
	stream = append(stream, wsframetest.MaskedFrame(0x01, []byte(`{"op":`))...) // text, not final
	stream = append(stream, wsframetest.MaskedFrame(0x89, []byte("are you there"))...)
	stream = append(stream, wsframetest.MaskedFrame(0x8A, nil)...)
	stream = append(stream, wsframetest.MaskedFrame(0x80, []byte(`"ping"}`))...) // final continuation
	c := readerConn(stream)
	var pinged []string
	pongs := 0
	c.onPing = func(p []byte) { pinged = append(pinged, string(p)) }
	c.onPong = func() { pongs++ }

	text, msg, err := c.ReadMessage()
	if err != nil || !text || string(msg) != `{"op":"ping"}` {
		t.Fatalf("got %v %q %v, want the text message assembled", text, msg, err)
	}
	if len(pinged) != 1 || pinged[0] != "are you there" || pongs != 1 {
		t.Fatalf("control frames: pings %q, pongs %d", pinged, pongs)
	}
	if _, _, err := c.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the stream ends: %v, want EOF", err)
	}
}

func TestConn_ReadsWhatTheHTTPServerReadAheadFirst(t *testing.T) {
	frame := wsframetest.MaskedFrame(0x81, []byte(`{"op":"subscribe"}`))
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	c := NewConn(server, frame[:5], testLimit)
	go func() { _, _ = client.Write(frame[5:]) }()
	text, msg, err := c.ReadMessage()
	if err != nil || !text || string(msg) != `{"op":"subscribe"}` {
		t.Fatalf("got %v %q %v", text, msg, err)
	}
}

func TestConn_CloseFrames(t *testing.T) {
	withCode := binary.BigEndian.AppendUint16(nil, 4000)
	cases := []struct {
		name     string
		payload  []byte
		wantCode int
		wantErr  int
	}{
		{"with a code", append(withCode, "bye"...), 4000, 0},
		{"without a code", nil, CloseNoStatus, 0},
		{"one byte", []byte{3}, 0, CloseProtocolError},
		{"a code no peer may send", binary.BigEndian.AppendUint16(nil, CloseNoStatus), 0, CloseProtocolError},
		{"a reason that is not UTF-8", append(binary.BigEndian.AppendUint16(nil, 1000), 0xff, 0xfe), 0, CloseInvalidPayload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := readerConn(wsframetest.MaskedFrame(0x88, tc.payload))
			got := 0
			c.onClose = func(code int) { got = code }
			_, _, err := c.ReadMessage()
			if tc.wantErr != 0 {
				assertProtocolError(t, err, tc.wantErr)
				return
			}
			if !errors.Is(err, ErrPeerClosed) || got != tc.wantCode {
				t.Fatalf("err %v, close code %d; want ErrPeerClosed and %d", err, got, tc.wantCode)
			}
		})
	}
}

func TestConn_RefusesFramesThatBreakTheProtocol(t *testing.T) {
	unmasked := []byte{0x81, 0x02, 'h', 'i'}
	big := strings.Repeat("x", testLimit/2+1)
	cases := []struct {
		name   string
		stream []byte
		code   int
	}{
		{"unmasked", unmasked, CloseProtocolError},
		{"reserved bit", wsframetest.MaskedFrame(0xC1, []byte("hi")), CloseProtocolError},
		{"unknown opcode", wsframetest.MaskedFrame(0x83, []byte("hi")), CloseProtocolError},
		{"fragmented ping", wsframetest.MaskedFrame(0x09, nil), CloseProtocolError},
		{"long ping", wsframetest.MaskedFrame(0x89, bytes.Repeat([]byte("p"), 126)), CloseProtocolError},
		{"continuation first", wsframetest.MaskedFrame(0x80, []byte("hi")), CloseProtocolError},
		{"new message inside another", append(wsframetest.MaskedFrame(0x01, []byte("a")), wsframetest.MaskedFrame(0x81, []byte("b"))...), CloseProtocolError},
		{"text that is not UTF-8", wsframetest.MaskedFrame(0x81, []byte{0xff, 0xfe}), CloseInvalidPayload},
		{"one frame over the limit", wsframetest.MaskedFrame(0x81, bytes.Repeat([]byte("x"), testLimit+1)), CloseMessageTooBig},
		{"fragments over the limit", append(wsframetest.MaskedFrame(0x01, []byte(big)), wsframetest.MaskedFrame(0x80, []byte(big))...), CloseMessageTooBig},
		{"a length past any limit", []byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, CloseMessageTooBig},
		{"a length just past the limit", []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0x80, 1, 1, 2, 3, 4}, CloseMessageTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readerConn(tc.stream).ReadMessage()
			assertProtocolError(t, err, tc.code)
		})
	}
}

func TestConn_BinaryMessagesAreReturnedAsNotText(t *testing.T) {
	text, msg, err := readerConn(wsframetest.MaskedFrame(0x82, []byte{0xff, 0x00})).ReadMessage()
	if err != nil || text || !bytes.Equal(msg, []byte{0xff, 0x00}) {
		t.Fatalf("got %v %v %v", text, msg, err)
	}
}

func assertProtocolError(t *testing.T, err error, code int) {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("got %v, want a protocol error with close code %d", err, code)
	}
	if pe.Text == "" {
		t.Fatalf("protocol error %d says nothing about what was wrong", code)
	}
}

// FuzzConn_ReadMessage feeds arbitrary bytes to the frame reader: it must
// return a message or an error, never panic, never return more than the
// limit, and answer a fault with a close code a client may be sent.
func FuzzConn_ReadMessage(f *testing.F) {
	f.Add(wsframetest.MaskedFrame(0x81, []byte(`{"op":"ping"}`)))
	f.Add(append(wsframetest.MaskedFrame(0x01, []byte("ab")), wsframetest.MaskedFrame(0x80, []byte("cd"))...))
	f.Add(wsframetest.MaskedFrame(0x88, binary.BigEndian.AppendUint16(nil, 1000)))
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := readerConn(stream)
		c.onPing = func([]byte) {}
		for range 8 {
			_, msg, err := c.ReadMessage()
			var pe *ProtocolError
			switch {
			case errors.As(err, &pe):
				if pe.Code < 1000 || pe.Code > 1014 || pe.Text == "" {
					t.Fatalf("fault answered with close %d %q", pe.Code, pe.Text)
				}
				return
			case err != nil:
				return
			case len(msg) > testLimit:
				t.Fatalf("message of %d bytes passed a %d limit", len(msg), testLimit)
			}
		}
	})
}

// A message is checked for UTF-8 as a whole: a character may be split
// between fragments, and a bad sequence may be too.
func TestConn_TextSplitAcrossFragments_IsCheckedAsOneMessage(t *testing.T) {
	euro := []byte("€") // three bytes: E2 82 AC
	t.Run("a character split between fragments", func(t *testing.T) {
		stream := append(wsframetest.MaskedFrame(0x01, append([]byte(`"`), euro[:2]...)), wsframetest.MaskedFrame(0x80, append(euro[2:], '"'))...)
		text, msg, err := readerConn(stream).ReadMessage()
		if err != nil || !text || string(msg) != `"€"` {
			t.Fatalf("got %v %q %v, want the message whole", text, msg, err)
		}
	})
	t.Run("a bad sequence split between fragments", func(t *testing.T) {
		// The first fragment ends in the start of a character, and the
		// second does not go on with it.
		stream := append(wsframetest.MaskedFrame(0x01, append([]byte(`"`), euro[:2]...)), wsframetest.MaskedFrame(0x80, []byte(`("`))...)
		_, _, err := readerConn(stream).ReadMessage()
		assertProtocolError(t, err, CloseInvalidPayload)
	})
}

func TestConn_CloseCodesAPeerMaySend(t *testing.T) {
	cases := []struct {
		code  int
		valid bool
	}{
		{999, false},
		{1000, true},
		{1003, true},
		{1004, false},
		{1006, false},
		{1011, true},
		// Registered with IANA after RFC 6455.
		{1013, true},
		{1015, false},
		{1016, false},
		{2999, false},
		{3000, true},
		{4999, true},
		{5000, false},
		{65535, false},
	}
	for _, tc := range cases {
		c := readerConn(wsframetest.MaskedFrame(0x88, binary.BigEndian.AppendUint16(nil, uint16(tc.code))))
		got := 0
		c.onClose = func(code int) { got = code }
		_, _, err := c.ReadMessage()
		if tc.valid && (!errors.Is(err, ErrPeerClosed) || got != tc.code) {
			t.Errorf("close code %d: err %v, code passed on %d; want it accepted", tc.code, err, got)
		}
		var pe *ProtocolError
		if !tc.valid && (!errors.As(err, &pe) || pe.Code != CloseProtocolError || got != 0) {
			t.Errorf("close code %d: err %v, code passed on %d; want a 1002 protocol error", tc.code, err, got)
		}
	}
}

// repeatReader returns the same bytes over and over.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

// Reading a frame header takes no memory of its own: an idle connection's
// reader waits with nothing allocated.
func TestConn_ReadingAnEmptyControlFrameAllocatesNothing(t *testing.T) {
	c := &Conn{r: &repeatReader{b: wsframetest.MaskedFrame(0x8A, nil)}, limit: testLimit}
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := c.readFrame(ws.StateServerSide, c.limit); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("reading a pong allocated %.0f times, want none", allocs)
	}
}

// The frames the server builds are what RFC 6455 section 5.2 describes:
// final, unmasked, with the length in the shortest form that holds it.
func TestFrames_TheServerBuildsAreFinalUnmaskedAndShortest(t *testing.T) {
	cases := []struct {
		name   string
		frame  []byte
		op     ws.OpCode
		length int
		header int
	}{
		{"empty text", TextFrame(nil), ws.OpText, 0, 2},
		{"125 bytes of text", TextFrame(bytes.Repeat([]byte("x"), 125)), ws.OpText, 125, 2},
		{"126 bytes of text", TextFrame(bytes.Repeat([]byte("x"), 126)), ws.OpText, 126, 4},
		{"65535 bytes of text", TextFrame(bytes.Repeat([]byte("x"), 65535)), ws.OpText, 65535, 4},
		{"65536 bytes of text", TextFrame(bytes.Repeat([]byte("x"), 65536)), ws.OpText, 65536, 10},
		{"pong", PongFrame([]byte("hi")), ws.OpPong, 2, 2},
		{"close", CloseFrame(closeTooSlow, "slow"), ws.OpClose, 6, 2},
		{"close with a reason too long", CloseFrame(CloseNormal, strings.Repeat("r", 200)), ws.OpClose, 125, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ws.ReadHeader(bytes.NewReader(tc.frame))
			if err != nil {
				t.Fatal(err)
			}
			if !h.Fin || h.Masked || h.Rsv != 0 || h.OpCode != tc.op || h.Length != int64(tc.length) {
				t.Fatalf("header %+v, want final, unmasked, opcode %d, length %d", h, tc.op, tc.length)
			}
			if len(tc.frame) != tc.header+tc.length || cap(tc.frame) != len(tc.frame) {
				t.Fatalf("frame of %d bytes (capacity %d), want a %d-byte header and the payload, nothing spare", len(tc.frame), cap(tc.frame), tc.header)
			}
		})
	}
	body := CloseFrame(closeTooSlow, "slow")[2:]
	if code, reason := ws.ParseCloseFrameData(body); code != closeTooSlow || reason != "slow" {
		t.Fatalf("close frame says %d %q", code, reason)
	}
}
