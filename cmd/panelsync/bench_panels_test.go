package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBenchPanels_BadFlags_AreRefusedWithTheReason(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--panels", "0"}, "--panels must be 1..60000, got 0"},
		{[]string{"--panels", "60001"}, "--panels must be 1..60000, got 60001"},
		{[]string{"--checkin-interval", "10ms"}, "--checkin-interval must be 100ms..1h"},
		{[]string{"--checkin-interval", "2h"}, "--checkin-interval must be 100ms..1h"},
		{[]string{"--checkin-seconds", "0"}, "--checkin-seconds must be 1..600, got 0"},
		{[]string{"--checkin-seconds", "601"}, "--checkin-seconds must be 1..600, got 601"},
		{[]string{"--panels", "many"}, "invalid value \"many\" for flag -panels"},
		{[]string{"extra"}, "unexpected argument \"extra\""},
	}
	for _, tc := range cases {
		code, out, errOut := runCmd(t, nil, append([]string{"bench", "panels"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("bench panels %s: exit %d, %q; want an error with %q and nothing measured", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	// Every bad flag is named at once.
	_, _, errOut := runCmd(t, nil, "bench", "panels", "--panels", "0", "--checkin-seconds", "0")
	if !strings.Contains(errOut, "--panels must be") || !strings.Contains(errOut, "--checkin-seconds must be") {
		t.Errorf("two bad flags: %q; want both named", errOut)
	}
}

func TestMetricSum_AddsEverySeriesOfTheMetric(t *testing.T) {
	const text = `# HELP panelsync_panel_checkins_total Check-ins processed, by whether the status changed.
# TYPE panelsync_panel_checkins_total counter
panelsync_panel_checkins_total{result="changed"} 1500
panelsync_panel_checkins_total{result="unchanged"} 2.5e+04
panelsync_panel_checkins_total_created{result="changed"} 1.7e+09
panelsync_panel_checkins_totals 99
# HELP panelsync_panels_connected Panels whose link is held by this node.
# TYPE panelsync_panels_connected gauge
panelsync_panels_connected 19010
panelsync_odd_labels{note="a } and a \" inside",node="n1"} 3 1733140000000
panelsync_odd_labels{note="plain"} 4
`
	cases := []struct {
		name      string
		want      float64
		wantFound bool
	}{
		{"panelsync_panel_checkins_total", 26500, true},
		{"panelsync_panels_connected", 19010, true},
		{"panelsync_odd_labels", 7, true},
		{"panelsync_panel_checkins", 0, false},
		{"panelsync_absent", 0, false},
	}
	for _, tc := range cases {
		got, found, err := metricSum(text, tc.name)
		if err != nil || got != tc.want || found != tc.wantFound {
			t.Errorf("metricSum(%s) = %v, %v, %v; want %v, %v, no error", tc.name, got, found, err, tc.want, tc.wantFound)
		}
	}
	for _, bad := range []string{
		"panelsync_panels_connected{node=\"n1\" 5\n",
		"panelsync_panels_connected many\n",
		"panelsync_panels_connected{node=\"n1\"}\n",
	} {
		if _, _, err := metricSum(bad, "panelsync_panels_connected"); err == nil {
			t.Errorf("metricSum(%q) took a malformed sample", bad)
		}
	}
}

// A short bench panels runs end to end against a real serve process on
// SQLite. Its helpers are processes of the panelsync binary, so the test
// builds it.
func TestBenchPanels_ShortRun_MeasuresMemoryAndRelink(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "panelsync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build panelsync: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "bench", "panels", "--panels", "50", "--checkin-seconds", "2")
	cmd.Env = append(cmd.Environ(), "PANELSYNC_DATABASE_URL=")
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out, errOut := stdout.String(), stderr.String()

	if !strings.Contains(out, "bench panels: 50 simulated panels (in 1 helper process) and 10 warm-up panels linked to a separate serve process on sqlite") {
		t.Fatalf("bench panels printed no heading:\n%s\nstderr:\n%s", out, errOut)
	}
	memory := regexp.MustCompile(`memory: server RSS (\d+) KB before, (\d+) KB after the first links \(and their first syncs\): (-?[\d.]+) KB per idle linked panel`).FindStringSubmatch(out)
	if memory == nil {
		t.Fatalf("no memory line:\n%s", out)
	}
	if perPanel, _ := strconv.ParseFloat(memory[3], 64); perPanel <= 0 || perPanel > 5000 {
		t.Errorf("%s KB per idle linked panel; want a positive figure of a few hundred KB at most", memory[3])
	}
	relink := regexp.MustCompile(`relink: the server exited (\S+) after SIGTERM; all 60 panels linked again (\S+) after the new serve started \((\S+) after SIGTERM\)`).FindStringSubmatch(out)
	if relink == nil {
		t.Fatalf("no relink line:\n%s", out)
	}
	for _, s := range relink[1:] {
		if d, err := time.ParseDuration(s); err != nil || d <= 0 || d > 2*time.Minute {
			t.Errorf("relink time %q; want a duration between 0 and 2m", s)
		}
	}
	if !regexp.MustCompile(`every link recorded and every panel's first check-in taken \S+ after the new serve started`).MatchString(out) {
		t.Errorf("no line for when the restarted node had recorded every link:\n%s", out)
	}
	if !regexp.MustCompile(`memory on the restarted node: server RSS \d+ KB with every panel linked again: -?[\d.]+ KB per idle linked panel`).MatchString(out) {
		t.Errorf("no memory line for the restarted node:\n%s", out)
	}
	if !regexp.MustCompile(`failed authentications 0, links accepted and dropped 0, drain closes 60, dial failures: `).MatchString(out) {
		t.Errorf("no relink counts, or failed authentications:\n%s", out)
	}
	if err != nil {
		t.Fatalf("bench panels: %v\nstderr:\n%s", err, errOut)
	}
	checkins := regexp.MustCompile(`check-ins: offered 50/s \(50 panels every 1s\), sent (\d+)/s, absorbed (\d+)/s`).FindStringSubmatch(out)
	if checkins == nil {
		t.Fatalf("no check-ins line:\n%s", out)
	}
	if absorbed, _ := strconv.Atoi(checkins[2]); absorbed <= 0 {
		t.Errorf("absorbed %s check-ins a second; want some", checkins[2])
	}
}
