package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestReady_ExitsZeroOnlyWhenReadyzAnswers200(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`{"database":"down"}`))
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// A wildcard address, as in the image: the check reaches it on the
	// loopback interface.
	env := map[string]string{"PANELSYNC_ADDR": ":" + port}

	if code, out, errOut := runCmd(t, env, "ready"); code != 0 || !strings.Contains(out, "/readyz") {
		t.Fatalf("ready while /readyz answers 200: %d %q %q", code, out, errOut)
	}
	status.Store(http.StatusServiceUnavailable)
	code, _, errOut := runCmd(t, env, "ready")
	if code != 1 || !strings.Contains(errOut, "503") || !strings.Contains(errOut, "database") {
		t.Fatalf("ready while /readyz answers 503: %d %q", code, errOut)
	}
	srv.Close()
	if code, _, errOut := runCmd(t, env, "ready"); code != 1 || !strings.Contains(errOut, "not ready") {
		t.Fatalf("ready with nothing listening: %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, map[string]string{"PANELSYNC_ADDR": "8080"}, "ready"); code != 1 || !strings.Contains(errOut, "--addr") {
		t.Fatalf("ready with a bad address: %d %q", code, errOut)
	}
}

func TestReadyURL_WildcardsAreReachedOnLoopback(t *testing.T) {
	for addr, want := range map[string]string{
		":8080":          "http://127.0.0.1:8080/readyz",
		"0.0.0.0:8080":   "http://127.0.0.1:8080/readyz",
		"[::]:8080":      "http://[::1]:8080/readyz",
		"10.0.0.7:9000":  "http://10.0.0.7:9000/readyz",
		"localhost:8081": "http://localhost:8081/readyz",
	} {
		if got, err := readyURL(addr); err != nil || got != want {
			t.Errorf("readyURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}
