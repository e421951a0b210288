package wsframe

import (
	"errors"
	"net"
	"os"
	"time"
)

// TakeOver returns the connection over a socket the HTTP server has
// hijacked after answering the handshake, with whatever the server had
// read past the handshake request, so that nothing of the HTTP server (its
// request state, its buffers) is needed to read it. limit bounds a message
// as NewConn's does.
func TakeOver(hijacked net.Conn, limit int) (*Conn, error) {
	u, ok := hijacked.(interface{ UnsafeConn() net.Conn })
	if !ok {
		return nil, errors.New("wsframe: the HTTP server did not expose the hijacked socket")
	}
	raw := u.UnsafeConn()
	// A read with a deadline already past returns what the server's buffer
	// holds and never waits for, or takes from, the network.
	if err := raw.SetReadDeadline(time.Unix(1, 0)); err != nil {
		return nil, err
	}
	var ahead []byte
	buf := make([]byte, 512)
	for {
		n, err := hijacked.Read(buf)
		ahead = append(ahead, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if err := raw.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return NewConn(raw, ahead, limit), nil
}
