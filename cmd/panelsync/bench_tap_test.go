package main

import (
	"strings"
	"testing"
)

// A short bench tap runs end to end after the panel's own first sync, so
// that the command cannot rot unnoticed.
func TestBenchTap_ShortRun_TimesEveryTap(t *testing.T) {
	code, out, errOut := runCmd(t, nil, "bench", "tap", "--taps", "5", "--users", "5")
	if code != 0 {
		t.Fatalf("bench tap exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "bench tap: 5 sequential SYNC USERS taps") || !strings.Contains(out, "POST to committed sync.succeeded: p50") {
		t.Fatalf("bench tap printed:\n%s", out)
	}
}
