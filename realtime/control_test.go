package realtime

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/panelsync/panelsync/wsframe"
	"github.com/panelsync/panelsync/wsframe/wsframetest"
)

// tcpPair returns the two ends of a loopback TCP connection with small
// socket buffers, so that a peer that does not read blocks the other
// side's writes early.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	dialed, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := <-accepted
	if got == nil {
		t.Fatal("accept failed")
	}
	server, client = got.(*net.TCPConn), dialed.(*net.TCPConn)
	_ = server.SetWriteBuffer(64 << 10)
	_ = client.SetReadBuffer(64 << 10)
	t.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	return server, client
}

// A client that sends pings and never reads must not make the server
// hold an answer per ping: what waits to be written for it stays bounded,
// and the server goes on serving other clients.
func TestPings_FromAClientThatDoesNotRead_KeepItsPendingRepliesBounded(t *testing.T) {
	h := &Hub{ready: newReadyQueue()}
	h.cfg.setDefaults()
	for range 2 {
		go h.writeWorker()
	}
	t.Cleanup(h.ready.stop)
	newClient := func(sock net.Conn) *Client {
		return &Client{hub: h, conn: wsframe.NewConn(sock, nil, MaxClientFrameBytes), closing: make(chan struct{}), writeDone: make(chan struct{})}
	}

	server, peer := tcpPair(t)
	flooded := newClient(server)
	served := make(chan struct{})
	go func() {
		defer close(served)
		flooded.serve(context.Background())
	}()

	const pings, perWrite = 100_000, 500
	ping := wsframetest.MaskedFrame(0x89, bytes.Repeat([]byte("p"), 125))
	chunk := bytes.Repeat(ping, perWrite)
	deadline := time.Now().Add(30 * time.Second)
	most := 0
	sent := 0
	for sent < pings && time.Now().Before(deadline) {
		_ = peer.SetWriteDeadline(deadline)
		if _, err := peer.Write(chunk); err != nil {
			// The server may close a client whose socket stays full:
			// bounded too.
			t.Logf("the server stopped reading after %d pings: %v", sent, err)
			break
		}
		sent += perWrite
		most = max(most, flooded.pendingBytes())
	}
	if limit := 2 * len(ping); most > limit {
		t.Fatalf("after %d pings the server held %d bytes for the client, want at most %d", sent, most, limit)
	}
	t.Logf("%d pings sent; at most %d bytes pending", sent, most)

	// Another client is served meanwhile.
	otherServer, otherPeer := tcpPair(t)
	other := newClient(otherServer)
	other.queue([]byte("hello"))
	got := make([]byte, 5)
	_ = otherPeer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(otherPeer, got); err != nil || string(got) != "hello" {
		t.Fatalf("another client received %q (%v)", got, err)
	}

	_ = peer.Close()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the flooding client's connection did not end once its socket closed")
	}
}
