package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

func TestRealtimeWire_Parse_KeysEachSyncRequestedByItsRun(t *testing.T) {
	cases := []struct {
		name    string
		frame   string
		keys    []string
		wantErr bool
	}{
		{"sync.requested", `{"type":"event","event":{"offset":7,"type":"sync.requested","run_id":"r1","message":"Refresh requested"}}`, []string{"r1"}, false},
		{"another event", `{"type":"event","event":{"offset":8,"type":"sync.succeeded","run_id":"r1"}}`, nil, false},
		{"an event that only mentions the type", `{"type":"event","event":{"offset":9,"type":"note","message":"\"sync.requested\""}}`, nil, false},
		{"sync.requested without a run", `{"type":"event","event":{"type":"sync.requested","run_id":null}}`, nil, false},
		{"a frame of another shape", `{"type":"event","after":3,"event":{"type":"sync.requested","run_id":"r2"}}`, []string{"r2"}, false},
		{"subscribed", `{"type":"subscribed","after":12}`, nil, false},
		{"error", `{"type":"error","code":"too_slow","message":"the client fell behind"}`, nil, true},
		{"not JSON", `{"type":"event","event":{"type":"sync.requested"`, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, answer, err := realtimeWire{}.parse([]byte(tc.frame), nil)
			if (err != nil) != tc.wantErr || !slices.Equal(keys, tc.keys) || answer != nil {
				t.Fatalf("parse = %q, %q, %v; want %q, no answer, error %v", keys, answer, err, tc.keys, tc.wantErr)
			}
		})
	}
}

func TestCentrifugeWire_Parse_KeysPublicationsAndAnswersPings(t *testing.T) {
	cases := []struct {
		name    string
		msg     string
		keys    []string
		answer  string
		wantErr bool
	}{
		{"publication", `{"push":{"channel":"bench","pub":{"data":{"seq":12,"part":1},"offset":25}}}`, []string{"12"}, "", false},
		{"both parts in one message", `{"push":{"channel":"bench","pub":{"data":{"seq":3,"part":1},"offset":7}}}` + "\n" +
			`{"push":{"channel":"bench","pub":{"data":{"seq":3,"part":2},"offset":8}}}`, []string{"3", "3"}, "", false},
		{"ping", `{}`, nil, "{}", false},
		{"two pings and a publication", "{}\n{}\n" + `{"push":{"channel":"bench","pub":{"data":{"seq":0},"offset":1}}}` + "\n", []string{"0"}, "{}\n{}", false},
		{"another channel", `{"push":{"channel":"other","pub":{"data":{"seq":1},"offset":1}}}`, nil, "", false},
		{"fields in another order", `{"push":{"pub":{"offset":4,"data":{"part":1,"seq":5}},"channel":"bench"}}`, []string{"5"}, "", false},
		{"a seq written with a leading zero", `{"push":{"channel":"bench","pub":{"data":{"seq":05},"offset":1}}}`, nil, "", true},
		{"a seq that is not a number", `{"push":{"channel":"bench","pub":{"data":{"seq":"5"},"offset":1}}}`, nil, "", true},
		{"a late command reply", `{"id":2,"subscribe":{"recoverable":true,"epoch":"x"}}`, nil, "", false},
		{"publication without a seq", `{"push":{"channel":"bench","pub":{"data":{"n":1},"offset":1}}}`, nil, "", true},
		{"disconnect", `{"push":{"disconnect":{"code":3012,"reason":"no pong"}}}`, nil, "", true},
		{"error reply", `{"id":5,"error":{"code":100,"message":"internal server error"}}`, nil, "", true},
		{"not JSON", `{"push":`, nil, "", true},
	}
	w := newCentrifugeWire("", "bench")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, answer, err := w.parse([]byte(tc.msg), nil)
			if (err != nil) != tc.wantErr || !slices.Equal(keys, tc.keys) || string(answer) != tc.answer {
				t.Fatalf("parse = %q, %q, %v; want %q, %q, error %v", keys, answer, err, tc.keys, tc.answer, tc.wantErr)
			}
		})
	}
}

func TestParseProcStatCPU_AddsUserAndSystemTime(t *testing.T) {
	// The command name holds a space and a parenthesis, as names may.
	stat := "4242 (my (serve) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 130 0 0 20 0 12 0 100 1000000 500 18446744073709551615\n"
	got, err := parseProcStatCPU([]byte(stat))
	if err != nil || got != 3800*time.Millisecond {
		t.Fatalf("parseProcStatCPU = %s, %v; want 3.8s", got, err)
	}
	if _, err := parseProcStatCPU([]byte("4242 (serve) S 1 2")); err == nil {
		t.Fatal("a short stat line parsed")
	}
}

func TestBenchFanout_BadFlags_AreRefusedWithTheReason(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--client", "threads"}, "--client must be epoll or goroutines"},
		{[]string{"--peer", "--client", "epoll"}, "leave out --client epoll"},
		{[]string{"--peer-bin", "/bin/true"}, "go with --peer"},
		{[]string{"--peer", "--peer-dir", "x", "--peer-bin", "y"}, "not both"},
		{[]string{"--client", "goroutines", "--locations", "0"}, "--locations must be 1..200"},
		{[]string{"--locations", "5"}, "--locations goes with --client goroutines"},
		{[]string{"--client", "goroutines", "--cpuprofile", "x.prof"}, "a process of its own"},
		{[]string{"--gap", "11s"}, "--gap 0..10s"},
		{[]string{"--clients", "0"}, "--clients must be"},
		{[]string{"--peer", "--peer-dir", "no/such/dir"}, "--peer-dir no/such/dir holds no Go module"},
	}
	for _, tc := range cases {
		code, _, errOut := runCmd(t, nil, append([]string{"bench", "fanout"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("bench fanout %s: exit %d, %q; want an error with %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}

// The goroutines client runs end to end against panelsync as a serve
// process (this test binary, told so by asServerEnv), tap by tap.
func TestBenchFanout_GoroutinesClient_DeliversEveryTap(t *testing.T) {
	t.Setenv(asServerEnv, "serve")
	code, out, errOut := runCmd(t, nil, "bench", "fanout", "--client", "goroutines", "--clients", "20", "--events", "5", "--locations", "5")
	if code != 0 {
		t.Fatalf("bench fanout exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var row string
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "panelsync ") {
			row = line
		}
	}
	if !strings.Contains(out, "20 WebSocket subscribers, one goroutine each") || !strings.Contains(row, "100/100 (100.00%)") ||
		strings.Count(row, "ms") != 3 || !strings.HasSuffix(strings.TrimSpace(row), "s") {
		t.Fatalf("bench fanout printed:\n%s", out)
	}
}

// The centrifuge protocol is checked against the real peer: connect,
// subscribe, pongs the server accepts, and a tick's publications.
func TestCentrifugeWire_AgainstThePeer_AnswersPingsAndReceivesATick(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "peer")
	build := exec.Command("go", "build", "-C", filepath.Join("..", "..", "bench", "peer"), "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the peer: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	peer := exec.CommandContext(ctx, bin, "--addr", "127.0.0.1:0", "--ping-interval", "400ms")
	stdout, err := peer.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stop, err := startChild(peer, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	addr, err := readPeerAddr(stdout, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	w := newCentrifugeWire(addr, peerChannel)
	c, err := w.open(ctx, benchDialer())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Three pings answered, with a pong timeout of 200ms, show that the
	// server takes the answers; then a tick is published.
	pings, published := 0, false
	var keys []string
	for !slices.Contains(keys, "7") {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %d pings: %v", pings, err)
		}
		var answer []byte
		keys, answer, err = w.parse(msg, keys)
		if err != nil {
			t.Fatal(err)
		}
		if answer != nil {
			pings += strings.Count(string(answer), "{}")
			if err := c.WriteMessage(websocket.TextMessage, answer); err != nil {
				t.Fatal(err)
			}
		}
		if pings >= 3 && !published {
			published = true
			if _, err := callJSON(ctx, http.DefaultClient, http.MethodPost, "http://"+addr+"/publish?seq=7", "", "", nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}
