// Command peer is the yardstick of `panelsync bench fanout --peer`: a small
// realtime server built on the centrifuge library (the core of Centrifugo)
// with its memory broker, publication history and recovery on. Clients
// connect over WebSocket with the JSON protocol, without a token, and may
// subscribe to one channel; each POST to /publish?seq=N publishes two
// messages carrying N to that channel, as a panelsync tap pushes two
// events. It lives in a module of its own so that it never enters the
// product's binary or dependencies.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/centrifugal/centrifuge"
)

// History is kept as Centrifugo keeps it for a channel with history and
// recovery on: a bounded stream with a time to live.
const (
	historySize = 1000
	historyTTL  = 5 * time.Minute
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on; it must be on 127.0.0.1")
	channel := flag.String("channel", "bench", "the one channel clients may subscribe to")
	ping := flag.Duration("ping-interval", 25*time.Second, "how often the server pings each client, which must answer within half of it (at most 10s)")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || host != "127.0.0.1" {
		return fmt.Errorf("--addr must be 127.0.0.1:PORT, not %q", *addr)
	}
	if *channel == "" {
		return errors.New("--channel must not be empty")
	}
	if *ping < 100*time.Millisecond || *ping > time.Hour {
		return errors.New("--ping-interval must be 100ms..1h")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	node, err := newNode(*channel, centrifuge.PingPongConfig{PingInterval: *ping, PongTimeout: min(*ping/2, 10*time.Second)})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{}))
	mux.HandleFunc("POST /publish", publishHandler(node, *channel))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// The parent reads this line to learn the port.
	fmt.Println(ln.Addr().String())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Hijacked WebSocket connections are not the HTTP server's to wait
	// for: the node's shutdown closes them.
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	return node.Shutdown(shutCtx)
}

// newNode starts a node on the memory broker whose clients connect as one
// bench user, are pinged as ping says, and may subscribe only to channel,
// with recovery on.
func newNode(channel string, ping centrifuge.PingPongConfig) (*centrifuge.Node, error) {
	node, err := centrifuge.New(centrifuge.Config{HistoryMetaTTL: time.Hour})
	if err != nil {
		return nil, err
	}
	broker, err := centrifuge.NewMemoryBroker(node, centrifuge.MemoryBrokerConfig{})
	if err != nil {
		return nil, err
	}
	node.SetBroker(broker)
	node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: "bench"}, PingPongConfig: &ping}, nil
	})
	node.OnConnect(func(client *centrifuge.Client) {
		client.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			if e.Channel != channel {
				cb(centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied)
				return
			}
			cb(centrifuge.SubscribeReply{Options: centrifuge.SubscribeOptions{EnableRecovery: true, EnablePositioning: true}}, nil)
		})
	})
	if err := node.Run(); err != nil {
		return nil, err
	}
	return node, nil
}

// publishHandler publishes the two messages of tick seq and answers the
// second one's offset.
func publishHandler(node *centrifuge.Node, channel string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		seq, err := strconv.ParseUint(r.URL.Query().Get("seq"), 10, 63)
		if err != nil {
			http.Error(w, "seq must be a whole number", http.StatusBadRequest)
			return
		}
		var res centrifuge.PublishResult
		for part := 1; part <= 2; part++ {
			data := fmt.Appendf(nil, `{"seq":%d,"part":%d}`, seq, part)
			res, err = node.Publish(channel, data, centrifuge.WithHistory(historySize, historyTTL))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"offset":%d}`, res.Offset)
	}
}
