package panel

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/panelsync/panelsync/models"
)

// The functions below turn what happens on a link into stored state and
// Event Log entries, each in one transaction so that an event exists
// exactly when the change it reports does.

func (l *Link) recordDisconnected(ctx context.Context, c *deviceConn) error {
	now := time.Now().UTC()
	return l.store.Tx(ctx, func(ctx context.Context) error {
		changed, err := l.store.MarkPanelDisconnected(ctx, c.panelID, c.linkID, now)
		if err != nil || !changed {
			return err
		}
		_, err = l.events.Append(ctx, models.NewEvent{
			AccountID: c.accountID, LocationID: c.locationID, Type: models.EventPanelDisconnected,
			Severity: models.SeverityWarning, Message: "Panel disconnected", OccurredAt: now,
			Data: map[string]any{"serial": c.serial},
		})
		return err
	})
}

// recordCheckin records a check-in. Most report the status already stored
// and say only that the panel is alive: those write no status and no Event
// Log entry, and their time waits in the link's last-seen batch.
// The connection keeps a digest of the status stored, so that telling
// them apart costs no read.
func (l *Link) recordCheckin(ctx context.Context, c *deviceConn, st Status) error {
	now := time.Now().UTC()
	known, generation := c.knownStatus()
	if known == 0 {
		stored, err := l.storedStatusDigest(ctx, c.panelID)
		if err != nil {
			return err
		}
		known = stored
		c.learnStatus(generation, stored)
	}
	digest := statusDigest(st)
	changed := digest != known
	if changed {
		if err := l.recordNewStatus(ctx, c, st, now); err != nil {
			return err
		}
		c.learnStatus(generation, digest)
	} else {
		l.seen.mark(c.panelID, now)
	}
	l.cfg.Metrics.checkin(changed)
	l.tellHandler(ctx, c, Handler.PanelCheckedIn)
	return nil
}

// recordNewStatus stores a check-in's status, which differs from the one
// stored, with its Event Log entry.
func (l *Link) recordNewStatus(ctx context.Context, c *deviceConn, st Status, now time.Time) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	armed := st.ArmedState()
	return l.store.Tx(ctx, func(ctx context.Context) error {
		if err := l.store.RecordPanelStatus(ctx, c.panelID, string(raw), armed, now); err != nil {
			return err
		}
		_, err := l.events.Append(ctx, models.NewEvent{
			AccountID: c.accountID, LocationID: c.locationID, Type: models.EventPanelCheckin,
			Severity: models.SeverityInfo, Message: "Panel checked in: " + StatusSummary(st), OccurredAt: now,
			Data: map[string]any{"armed_state": armed, "troubles": st.Troubles, "zone_faults": st.ZoneFaults},
		})
		return err
	})
}

// storedStatusDigest returns the digest of the panel's stored status, or 0
// when none is stored or it cannot be read, so that the next check-in is
// written.
func (l *Link) storedStatusDigest(ctx context.Context, panelID string) (uint64, error) {
	p, err := l.store.PanelByID(ctx, panelID)
	if err != nil {
		return 0, err
	}
	return storedDigest(p.StatusJSON), nil
}

// storedDigest returns the digest of a stored status, or 0 when there is
// none or it cannot be read.
func storedDigest(statusJSON string) uint64 {
	if statusJSON == "" {
		return 0
	}
	var st Status
	if json.Unmarshal([]byte(statusJSON), &st) != nil {
		return 0
	}
	return statusDigest(st)
}

// statusDigest returns a digest that two statuses share when they report
// the same state: the partitions' arm states, zone faults, troubles, AC
// power and battery. The order in which a panel lists them does not count.
// It is never 0, which stands for a status not known.
func statusDigest(st Status) uint64 {
	canonical := Status{
		Partitions: slices.Clone(st.Partitions),
		ZoneFaults: slices.Clone(st.ZoneFaults),
		Troubles:   slices.Clone(st.Troubles),
		ACPower:    st.ACPower,
		Battery:    st.Battery,
	}
	canonical.Normalize()
	slices.SortStableFunc(canonical.Partitions, func(a, b PartitionStatus) int { return cmp.Compare(a.Number, b.Number) })
	slices.Sort(canonical.ZoneFaults)
	slices.Sort(canonical.Troubles)
	raw, _ := json.Marshal(canonical)
	h := fnv.New64a()
	_, _ = h.Write(raw)
	return max(h.Sum64(), 1)
}

// tellHandler passes the connection's panel to one of the handler's
// methods.
func (l *Link) tellHandler(ctx context.Context, c *deviceConn, method func(Handler, context.Context, string, string)) {
	if h := l.currentHandler(); h != nil {
		method(h, ctx, c.panelID, c.locationID)
	}
}

// recordPanelEvent writes an unsolicited panel event to the Event Log and
// keeps the stored arm state in step with armed and disarmed events.
func (l *Link) recordPanelEvent(ctx context.Context, c *deviceConn, e PanelEvent) error {
	now := time.Now().UTC()
	// The Event Log is ordered by when the server learned of things, which
	// retention and resume rely on; the panel's own clock, which may be
	// wrong, is kept beside it.
	data := map[string]any{"partition": e.Partition, "zone": e.Zone, "user_number": e.UserNumber, "armed_state": e.ArmedState, "trouble": e.Trouble}
	if !e.At.IsZero() {
		data["panel_time"] = e.At.UTC()
	}
	ev := models.NewEvent{
		AccountID: c.accountID, LocationID: c.locationID, OccurredAt: now,
		Type: "panel." + e.Kind, Severity: models.SeverityInfo, Data: data,
	}
	ev.Message = l.describePanelEvent(ctx, c.panelID, c.locationID, e)
	switch e.Kind {
	case EventAlarm:
		ev.Severity = models.SeverityError
	case EventTrouble:
		ev.Severity = models.SeverityWarning
	}
	var stored Status
	armChange := e.Kind == EventArmed || e.Kind == EventDisarmed
	_, generation := c.knownStatus()
	err := l.store.Tx(ctx, func(ctx context.Context) error {
		if armChange {
			var err error
			if stored, err = l.applyArmChange(ctx, c.panelID, e, now); err != nil {
				return err
			}
		} else if err := l.store.TouchPanel(ctx, c.panelID, now); err != nil {
			return err
		}
		_, err := l.events.Append(ctx, ev)
		return err
	})
	if err != nil {
		return err
	}
	if armChange {
		// The next check-in that reports this arm state has nothing new.
		c.learnStatus(generation, statusDigest(stored))
	}
	if e.Kind == EventUserChanged {
		l.tellHandler(ctx, c, Handler.PanelUsersChanged)
	}
	return nil
}

// applyArmChange updates the stored status's partitions and the location's
// summary arm state, and returns the status it stored.
func (l *Link) applyArmChange(ctx context.Context, panelID string, e PanelEvent, now time.Time) (Status, error) {
	p, err := l.store.PanelByID(ctx, panelID)
	if err != nil {
		return Status{}, err
	}
	var st Status
	if p.StatusJSON != "" {
		_ = json.Unmarshal([]byte(p.StatusJSON), &st)
	}
	state := ArmDisarmed
	if e.Kind == EventArmed {
		state = e.ArmedState
	}
	st.Normalize()
	found := false
	for i := range st.Partitions {
		if e.Partition == 0 || st.Partitions[i].Number == e.Partition {
			st.Partitions[i].ArmedState = state
			found = true
		}
	}
	if !found {
		number := max(e.Partition, 1)
		st.Partitions = append(st.Partitions, PartitionStatus{Number: number, ArmedState: state})
	}
	raw, _ := json.Marshal(st)
	return st, l.store.RecordPanelStatus(ctx, panelID, string(raw), st.ArmedState(), now)
}

// describePanelEvent words a panel event for the Event Log with what the
// remote copy knows: the user's name rather than a bare number, and the
// partition and zone by name. The partition is named only on a panel that
// has more than one, where it tells which part of the premises is meant.
// A name that cannot be loaded is left out, never the event.
func (l *Link) describePanelEvent(ctx context.Context, panelID, locationID string, e PanelEvent) string {
	names := eventNames{user: map[int]string{}, partition: map[int]string{}, zone: map[int]string{}}
	if items, err := l.store.PanelConfigItems(ctx, locationID); err == nil {
		for _, it := range items {
			switch it.Kind {
			case "partition":
				names.partition[it.Number] = it.Name
				names.partitions++
			case "zone":
				names.zone[it.Number] = it.Name
			}
		}
	}
	if p, err := l.store.PanelByID(ctx, panelID); err == nil && p.StatusJSON != "" {
		var st Status
		if json.Unmarshal([]byte(p.StatusJSON), &st) == nil {
			names.partitions = max(names.partitions, len(st.Partitions))
		}
	}
	if e.UserNumber > 0 {
		if name, err := l.store.PanelUserName(ctx, locationID, e.UserNumber); err == nil {
			names.user[e.UserNumber] = name
		}
	}
	return names.describe(e)
}

// eventNames is what the remote copy knows of a panel, for wording its
// events.
type eventNames struct {
	user, partition, zone map[int]string
	// partitions is how many partitions the panel has, as far as known.
	partitions int
}

func (n eventNames) describe(e PanelEvent) string {
	switch e.Kind {
	case EventArmed, EventDisarmed:
		what := ArmedStateLabel(e.ArmedState)
		if e.Kind == EventDisarmed {
			what = "disarmed"
		}
		msg := what
		if where := n.partitionPhrase(e.Partition); where != "" {
			msg = where + " " + what
		} else {
			msg = strings.ToUpper(what[:1]) + what[1:]
		}
		if e.UserNumber > 0 {
			msg += " by " + n.userPhrase(e.UserNumber, false)
		}
		return msg
	case EventAlarm:
		msg := "Alarm"
		if e.Zone > 0 {
			msg += " in zone " + named(e.Zone, n.zone[e.Zone])
		}
		if where := n.partitionPhrase(e.Partition); where != "" {
			msg += ", " + strings.ToLower(where[:1]) + where[1:]
		}
		return msg
	case EventTrouble:
		return "Trouble at the panel: " + TroubleLabel(e.Trouble)
	case EventUserChanged:
		return n.userPhrase(e.UserNumber, true) + " was changed at the keypad"
	}
	return "Panel reported " + e.Kind
}

// partitionPhrase names a partition, such as "Partition 2 (Garage)", or
// is empty on a panel with one partition, where naming it says nothing.
func (n eventNames) partitionPhrase(number int) string {
	if n.partitions <= 1 {
		return ""
	}
	if number == 0 {
		return "All partitions"
	}
	return "Partition " + named(number, n.partition[number])
}

// userPhrase names a panel user, such as "Anna Berg (user 6)", or "user
// 6" when the remote copy has no name for them; capital starts it with a
// capital letter.
func (n eventNames) userPhrase(number int, capital bool) string {
	if name := n.user[number]; name != "" {
		return fmt.Sprintf("%s (user %d)", name, number)
	}
	if capital {
		return fmt.Sprintf("User %d", number)
	}
	return fmt.Sprintf("user %d", number)
}

// named is a number with its name beside it when there is one: "3
// (Kitchen Window)" or "3".
func named(number int, name string) string {
	if name == "" {
		return fmt.Sprint(number)
	}
	return fmt.Sprintf("%d (%s)", number, name)
}
