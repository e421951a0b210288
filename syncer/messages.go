package syncer

import (
	"fmt"
	"strings"
	"time"

	"github.com/panelsync/panelsync/models"
)

// The names the service acts under when it starts a run by itself. Each
// is a run's requested_by, and says in the Event Log what happened.
const (
	actorSchedule        = "schedule"
	actorCheckin         = "check-in"
	actorFirstConnection = "first connection"
	actorKeypadChange    = "keypad change"
)

// requestedMessage is a sync.requested event's message: who asked for the
// run, or what happened at the panel that started it.
func requestedMessage(actor models.Actor, kind models.RunKind, trigger models.RunTrigger) string {
	if actor.Kind == "system" {
		switch actor.Name {
		case actorFirstConnection:
			return "The panel connected for the first time: reading all its users"
		case actorCheckin:
			return "The panel checked in: running the full user sync requested for its next check-in"
		case actorKeypadChange:
			return "Users were changed at the panel's keypad: reading the changes"
		}
	}
	return requestSubject(actor, kind, trigger)
}

// refusedMessage is the sync.failed event's message for a run that could
// not start: who asked for it, and why nothing reached the panel.
func refusedMessage(actor models.Actor, kind models.RunKind, trigger models.RunTrigger, reason string) string {
	return requestSubject(actor, kind, trigger) + " could not start: " + reason
}

// requestSubject names a request as the subject of a sentence, such as
// "User sync requested by ana@example.com" or "Scheduled user sync".
func requestSubject(actor models.Actor, kind models.RunKind, trigger models.RunTrigger) string {
	label := runLabel(kind, trigger)
	if actor.Kind == "system" && actor.Name == actorSchedule {
		return "Scheduled " + strings.ToLower(label)
	}
	by := actor.Name
	if by == "" {
		by = string(trigger)
	}
	return label + " requested by " + by
}

// retryMessage is the event written when an attempt failed and the run
// waits to try again, such as "User sync: the panel did not answer in
// time; trying again in 20 s (attempt 2 of 3)".
func retryMessage(kind models.RunKind, trigger models.RunTrigger, reason string, wait time.Duration, next, of int) string {
	return fmt.Sprintf("%s: %s; trying again %s (attempt %d of %d)", runLabel(kind, trigger), reason, inWords(wait), next, of)
}

// inWords says when a wait ends, in whole seconds or minutes.
func inWords(d time.Duration) string {
	switch {
	case d < time.Second:
		return "in a moment"
	case d < 2*time.Minute:
		return fmt.Sprintf("in %d s", int(d.Round(time.Second)/time.Second))
	}
	return fmt.Sprintf("in %d min", int(d.Round(time.Minute)/time.Minute))
}

// plural is "1 zone" or "3 zones".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// joinAnd joins parts as a sentence does: "a", "a and b", "a, b and c".
func joinAnd(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// usersSummary completes a users run's success message. The first read
// of a panel records the users it always had rather than adding them, so
// it says so instead of counting them as added.
func usersSummary(c counts, onRecord int, full bool) string {
	if onRecord == 0 && full && c.Updated == 0 && c.Removed == 0 {
		if c.Added == 0 {
			return "the panel has no users"
		}
		return "recorded the panel's " + plural(c.Added, "user", "users")
	}
	return c.String()
}

// configSummary completes a panel sync's success message with what was
// read, by kind: "recorded the panel's 2 partitions, 29 zones and 8
// devices" for the first read, and otherwise what changed, such as
// "1 zone added, 2 zones updated (2 partitions, 29 zones, 8 devices)".
func configSummary(d configDiff, onRecord int, got []models.PanelConfigItem) string {
	kinds := []struct{ kind, one, many string }{
		{itemPartition, "partition", "partitions"},
		{itemZone, "zone", "zones"},
		{itemDevice, "device", "devices"},
	}
	total := map[string]int{}
	for _, it := range got {
		total[it.Kind]++
	}
	var inAll []string
	for _, k := range kinds {
		inAll = append(inAll, plural(total[k.kind], k.one, k.many))
	}
	if onRecord == 0 {
		return "recorded the panel's " + joinAnd(inAll)
	}
	byAction := map[string]map[string]int{}
	for _, ch := range d.changes {
		if byAction[ch.Action] == nil {
			byAction[ch.Action] = map[string]int{}
		}
		byAction[ch.Action][ch.Kind]++
	}
	var changed []string
	for _, action := range []string{"added", "updated", "removed"} {
		for _, k := range kinds {
			if n := byAction[action][k.kind]; n > 0 {
				changed = append(changed, plural(n, k.one, k.many)+" "+action)
			}
		}
	}
	if len(changed) == 0 {
		changed = []string{"no changes"}
	}
	return strings.Join(changed, ", ") + " (" + strings.Join(inAll, ", ") + ")"
}
