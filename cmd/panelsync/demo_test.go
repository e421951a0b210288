package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
)

// runDemoUntil starts the demo command with env and args, waits until its
// stdout holds want, and returns that output; the demo is stopped when the
// test ends and must exit cleanly.
func runDemoUntil(t *testing.T, env map[string]string, want string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut apptest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"demo"}, args...), &out, &errOut, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("demo exited with %d; stderr:\n%s", code, errOut.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), want) {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("demo exited with %d before printing %q; stdout:\n%s\nstderr:\n%s", code, want, out.String(), errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo never printed %q; stdout:\n%s", want, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return out.String()
}

// demoEnv is the environment of a demo in its own data folder.
func demoEnv(dataDir string) map[string]string {
	return map[string]string{
		"PANELSYNC_DATA_DIR":    dataDir,
		"PANELSYNC_ADDR":        "127.0.0.1:0",
		"PANELSYNC_BCRYPT_COST": "4",
		"PANELSYNC_LOG_LEVEL":   "error",
	}
}

func TestDemo_WithoutAnSMTPServer_SaysWhereMailIsWritten(t *testing.T) {
	dataDir := t.TempDir()
	runDemoUntil(t, demoEnv(dataDir), "Mail is written to "+filepath.Join(dataDir, "outbox"), "--locations", "1", "--simulate=false")
}

func TestDemo_PasswordFromTheEnvironment_BannerSaysWhereItIsAndNeverPrintsIt(t *testing.T) {
	env := demoEnv(t.TempDir())
	const chosen = "a chosen demo password"
	env["PANELSYNC_DEMO_PASSWORD"] = chosen
	out := runDemoUntil(t, env, "Mail is written to", "--locations", "1", "--simulate=false")
	if strings.Contains(out, chosen) {
		t.Fatalf("the banner prints the password the operator chose:\n%s", out)
	}
	for _, want := range []string{
		"password:  the one in PANELSYNC_DEMO_PASSWORD\n",
		`"password":"'"$PANELSYNC_DEMO_PASSWORD"'"}'`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the banner lacks %q:\n%s", want, out)
		}
	}
}

func TestDemo_BannerNamesTheConsole_WhichServesThePage(t *testing.T) {
	out := runDemoUntil(t, demoEnv(t.TempDir()), "Mail is written to", "--locations", "1", "--simulate=false")
	m := regexp.MustCompile(`console:   open (http://\S+/) in a browser`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the banner does not say where the console is:\n%s", out)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "/app/js/main.js") {
		t.Fatalf("GET %s: %d, not the console:\n%s", m[1], resp.StatusCode, page)
	}
}
