package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/panelsync/panelsync/panel/sim"
)

// reporter prints one status line per call, with the command rate since
// the previous line.
type reporter struct {
	fleet        *sim.Fleet
	out          io.Writer
	lastAnswered int64
	lastAt       time.Time
}

func newReporter(fleet *sim.Fleet, out io.Writer) *reporter {
	return &reporter{fleet: fleet, out: out, lastAt: time.Now()}
}

func (r *reporter) report(prefix string) {
	now := time.Now()
	st := r.fleet.Stats()
	answered := st.Answered()
	rate := 0.0
	if elapsed := now.Sub(r.lastAt).Seconds(); elapsed > 0 {
		rate = float64(answered-r.lastAnswered) / elapsed
	}
	r.lastAnswered, r.lastAt = answered, now

	line := fmt.Sprintf("%s%s connected %d/%d", prefix, now.Format("15:04:05"), r.fleet.ConnectedCount(), r.fleet.Len())
	if n := r.fleet.AuthRejectedCount(); n > 0 {
		line += fmt.Sprintf(" (credentials rejected: %d)", n)
	}
	line += fmt.Sprintf(" | commands %d (%.1f/s), errors %d, unanswered %d, users refused %d | connects %d, disconnects %d | check-ins %d, events %d",
		answered, rate, st.CommandErrors, st.Ignored, st.UsersRefused, st.Connects, st.Disconnects, st.Checkins, st.Events)
	if st.DrainCloses > 0 || st.DroppedLinks > 0 {
		line += fmt.Sprintf(" | drain closes %d, dropped links %d", st.DrainCloses, st.DroppedLinks)
	}
	if len(st.DialFailures) > 0 {
		kinds := slices.Sorted(maps.Keys(st.DialFailures))
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = fmt.Sprintf("%s %d", k, st.DialFailures[k])
		}
		line += " | dial failures: " + strings.Join(parts, ", ")
	}
	if r.fleet.ConnectedCount() < r.fleet.Len() {
		if err := r.fleet.LastDialError(); err != nil {
			line += " | last error: " + err.Error()
		}
	}
	fmt.Fprintln(r.out, line)
}
