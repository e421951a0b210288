package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
)

// runWatch follows an account's Event Log over the realtime socket and
// prints each event as a line. When the connection drops it reconnects
// with the last offset it printed, so nothing is missed or shown twice.
func runWatch(ctx context.Context, env cmdEnv, args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	server := fs.String("server", "http://localhost:8080", "base `URL` of the panelsync server")
	email := fs.String("email", "", "sign in as the login with this `e-mail`, with the password in PANELSYNC_PASSWORD")
	var after offsetFlag
	fs.Var(&after, "after", "print the events after this `offset` first, then go on live (without it: live only)")
	location := fs.String("location", "", "watch only the location with this `id` instead of the whole account")
	asJSON := fs.Bool("json", false, "print each event as one line of JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: panelsync watch [flags]

Prints the account's Event Log live, one line per event; when the
connection drops it reconnects and goes on after the last offset printed.
Sign in with --email and the password in PANELSYNC_PASSWORD, or set
PANELSYNC_TOKEN to an access token (it expires after 15 minutes) or to an
API key with the read scope.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	token := env.getenv("PANELSYNC_TOKEN")
	if token == "" {
		if *email == "" {
			return fmt.Errorf("give --email (and PANELSYNC_PASSWORD) or set PANELSYNC_TOKEN")
		}
		var err error
		token, err = httpLogin(*server, *email, env.getenv("PANELSYNC_PASSWORD"))
		if err != nil {
			return err
		}
	}
	last := int64(-1)
	if after.set {
		last = after.n
	}
	for {
		err := watchOnce(ctx, env, *server, token, *location, &last, *asJSON)
		if ctx.Err() != nil {
			return nil
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) && (ce.Code == 4001 || ce.Code == 4003 || ce.Code == 4010) {
			return fmt.Errorf("server closed the connection: %d %s", ce.Code, ce.Text)
		}
		fmt.Fprintf(env.stderr, "watch: %v; reconnecting after offset %d\n", err, last)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func watchOnce(ctx context.Context, env cmdEnv, server, token, location string, last *int64, asJSON bool) error {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, wsBase(server), h)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	sub := map[string]any{"op": "subscribe"}
	if location != "" {
		sub["location_ids"] = []string{location}
	}
	if *last >= 0 {
		sub["after"] = *last
	}
	if err := conn.WriteJSON(sub); err != nil {
		return err
	}
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		var f struct {
			Type    string          `json:"type"`
			After   *int64          `json:"after"`
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Offset  *int64          `json:"offset"`
			Event   json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return err
		}
		switch f.Type {
		case "subscribed":
			if *last < 0 && f.After != nil {
				*last = *f.After
			}
			fmt.Fprintf(env.stderr, "watch: subscribed after offset %d\n", *last)
		case "error":
			if f.Code == "resume_expired" && f.Offset != nil {
				fmt.Fprintf(env.stderr, "watch: events after %d are no longer kept; continuing from %d\n", *last, *f.Offset)
				*last = *f.Offset
				return fmt.Errorf("resume expired")
			}
			return fmt.Errorf("server error %s: %s", f.Code, f.Message)
		case "event":
			var e struct {
				Offset     int64     `json:"offset"`
				Type       string    `json:"type"`
				Severity   string    `json:"severity"`
				Message    string    `json:"message"`
				OccurredAt time.Time `json:"occurred_at"`
			}
			if err := json.Unmarshal(f.Event, &e); err != nil {
				return err
			}
			*last = e.Offset
			if asJSON {
				fmt.Fprintln(env.stdout, string(f.Event))
				continue
			}
			fmt.Fprintf(env.stdout, "%6d  %s  %-7s %-22s %s\n", e.Offset, e.OccurredAt.Format(time.TimeOnly), strings.ToUpper(e.Severity), e.Type, e.Message)
		}
	}
}

// offsetFlag is --after: an Event Log offset, or unset for live only.
type offsetFlag struct {
	set bool
	n   int64
}

func (f *offsetFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.FormatInt(f.n, 10)
}

func (f *offsetFlag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("an offset is a whole number from 0 up")
	}
	f.set, f.n = true, n
	return nil
}
