package main

import (
	"strings"
	"testing"
)

// A tiny bench import runs end to end, panels in their helper process
// included, so that the command cannot rot unnoticed.
func TestBenchImport_TinyRun_AppliesEveryFileAndReports(t *testing.T) {
	code, out, errOut := runCmd(t, nil, "bench", "import",
		"--locations", "3", "--users", "5", "--latency", "5ms", "--workers", "2", "--runs", "2", "--parse-rows", "1000")
	if code != 0 {
		t.Fatalf("bench import exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"bench import: 3 locations × 5 users (15 rows",
		"bound ceil(3/2) × (1 users.put + 1 read-back) × 5ms = 20ms",
		"import 1: POST answered in",
		"import 2: POST answered in",
		"All locations: 3 succeeded",
		"median of 2:",
		"node peak RSS",
		"bench import: parse and validate 1000 rows",
		"mask codes for keeping",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "matches the file"); n != 2 {
		t.Errorf("%d imports were checked against their files, want 2:\n%s", n, out)
	}
}

func TestBenchImport_RefusesMoreRowsThanAnImportTakes(t *testing.T) {
	code, _, errOut := runCmd(t, nil, "bench", "import", "--locations", "1001", "--users", "50")
	if code != 1 || !strings.Contains(errOut, "at most 50000") {
		t.Fatalf("too many rows: %d %q", code, errOut)
	}
}
