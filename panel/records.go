package panel

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/panelsync/panelsync/models"
)

// The functions below turn what happens on a link into stored state and
// Event Log entries, each in one transaction so that an event exists
// exactly when the change it reports does.

func (l *Link) recordConnected(ctx context.Context, c *deviceConn, now time.Time) error {
	return l.store.Tx(ctx, func(ctx context.Context) error {
		before, err := l.store.MarkPanelConnected(ctx, c.panelID, c.linkID, l.cfg.NodeID, now)
		if err != nil || before == models.PanelConnected {
			return err
		}
		_, err = l.events.Append(ctx, models.NewEvent{
			AccountID: c.accountID, LocationID: c.locationID, Type: models.EventPanelConnected,
			Severity: models.SeverityInfo, Message: "Panel connected", OccurredAt: now,
			Data: map[string]any{"serial": c.serial},
		})
		return err
	})
}

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

func (l *Link) recordCheckin(ctx context.Context, c *deviceConn, st Status) error {
	now := time.Now().UTC()
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	armed := st.ArmedState()
	err = l.store.Tx(ctx, func(ctx context.Context) error {
		if err := l.store.RecordPanelStatus(ctx, c.panelID, string(raw), armed, now); err != nil {
			return err
		}
		_, err := l.events.Append(ctx, models.NewEvent{
			AccountID: c.accountID, LocationID: c.locationID, Type: models.EventPanelCheckin,
			Severity: models.SeverityInfo, Message: "Panel checked in", OccurredAt: now,
			Data: map[string]any{"armed_state": armed, "troubles": st.Troubles, "zone_faults": st.ZoneFaults},
		})
		return err
	})
	if err != nil {
		return err
	}
	return l.tellHandler(ctx, c, Handler.PanelCheckedIn)
}

// tellHandler passes the panel, as stored now, to one of the handler's
// methods.
func (l *Link) tellHandler(ctx context.Context, c *deviceConn, method func(Handler, context.Context, models.Panel)) error {
	h := l.currentHandler()
	if h == nil {
		return nil
	}
	p, err := l.store.PanelByID(ctx, c.panelID)
	if err != nil {
		return err
	}
	method(h, ctx, p)
	return nil
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
	switch e.Kind {
	case EventArmed:
		ev.Message = fmt.Sprintf("%s %s", partitionLabel(e.Partition), armedLabel(e.ArmedState))
	case EventDisarmed:
		ev.Message = partitionLabel(e.Partition) + " disarmed"
	case EventAlarm:
		ev.Severity = models.SeverityError
		ev.Message = fmt.Sprintf("Alarm in zone %d (%s)", e.Zone, partitionLabel(e.Partition))
	case EventTrouble:
		ev.Severity = models.SeverityWarning
		ev.Message = "Trouble: " + e.Trouble
	case EventUserChanged:
		ev.Message = fmt.Sprintf("User %d changed at the keypad", e.UserNumber)
	}
	err := l.store.Tx(ctx, func(ctx context.Context) error {
		if e.Kind == EventArmed || e.Kind == EventDisarmed {
			if err := l.applyArmChange(ctx, c.panelID, e, now); err != nil {
				return err
			}
		} else if err := l.store.TouchPanel(ctx, c.panelID, now); err != nil {
			return err
		}
		_, err := l.events.Append(ctx, ev)
		return err
	})
	if err != nil || e.Kind != EventUserChanged {
		return err
	}
	return l.tellHandler(ctx, c, Handler.PanelUsersChanged)
}

// applyArmChange updates the stored status's partitions and the location's
// summary arm state.
func (l *Link) applyArmChange(ctx context.Context, panelID string, e PanelEvent, now time.Time) error {
	p, err := l.store.PanelByID(ctx, panelID)
	if err != nil {
		return err
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
	return l.store.RecordPanelStatus(ctx, panelID, string(raw), st.ArmedState(), now)
}

func partitionLabel(n int) string {
	if n == 0 {
		return "All partitions"
	}
	return fmt.Sprintf("Partition %d", n)
}

func armedLabel(state string) string {
	switch state {
	case ArmStay:
		return "armed (stay)"
	case ArmNight:
		return "armed (night)"
	}
	return "armed (away)"
}
