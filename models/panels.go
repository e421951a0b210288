package models

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// PanelByID loads one panel.
func (s *Store) PanelByID(ctx context.Context, id string) (Panel, error) {
	var p Panel
	if err := s.conn(ctx).Where("id = ?", id).Take(&p).Error; err != nil {
		return Panel{}, notFound(err, "panel")
	}
	return p, nil
}

// PanelHolder is how a panel's link stood: its connection state and, while
// connected, the node holding it ("" while it links again).
type PanelHolder struct {
	Connection PanelConnection
	NodeID     string
}

// MarkPanelConnected records that connection linkID on node nodeID now
// holds the panel, and returns how its link stood before.
func (s *Store) MarkPanelConnected(ctx context.Context, panelID, linkID, nodeID string, now time.Time) (PanelHolder, error) {
	before, err := s.MarkPanelsConnected(ctx, nodeID, []PanelLink{{PanelID: panelID, LinkID: linkID, At: now}})
	if err != nil {
		return PanelHolder{}, err
	}
	if before[0].Connection == "" {
		return PanelHolder{}, Errorf(CodeNotFound, "panel not found")
	}
	return before[0], nil
}

// PanelLink is a new connection to record: the panel it holds, the link's
// ID and when it opened.
type PanelLink struct {
	PanelID string
	LinkID  string
	At      time.Time
}

// MarkPanelsConnected records that each of links, all on node nodeID, now
// holds its panel, and returns how each panel's link stood before, in the
// order of links; a panel that no longer exists comes back with an empty
// Connection and is not changed. A fleet linking again after a restart is
// recorded a few hundred links to a statement, where one transaction each
// would bound it by how many commits the database makes a second. A panel
// must appear at most once in links.
func (s *Store) MarkPanelsConnected(ctx context.Context, nodeID string, links []PanelLink) ([]PanelHolder, error) {
	if len(links) == 0 {
		return nil, nil
	}
	before := make([]PanelHolder, len(links))
	err := s.Tx(ctx, func(ctx context.Context) error {
		rows, err := s.lockPanelRows(ctx, links, "node_id")
		if err != nil {
			return fmt.Errorf("mark panels connected: %w", err)
		}
		found := make(map[string]PanelHolder, len(rows))
		for _, p := range rows {
			found[p.ID] = PanelHolder{Connection: p.Connection, NodeID: p.NodeID}
		}
		var present []PanelLink
		for i, l := range links {
			before[i] = found[l.PanelID]
			if before[i].Connection != "" {
				present = append(present, l)
			}
		}
		if len(present) == 0 {
			return nil
		}
		return s.conn(ctx).Model(&Panel{}).Where("id IN ?", panelIDs(present)).Updates(map[string]any{
			"connection":   PanelConnected,
			"node_id":      nodeID,
			"link_id":      perPanel(present, func(l PanelLink) any { return l.LinkID }),
			"connected_at": perPanel(present, func(l PanelLink) any { return l.At }),
			"last_seen_at": perPanel(present, func(l PanelLink) any { return l.At }),
		}).Error
	})
	if err != nil {
		return nil, err
	}
	return before, nil
}

// lockPanelRows reads the links' panels for update, with their id,
// connection and the column named, in the transaction carried by ctx. The
// rows are locked in the order of their keys, so that two nodes' batches,
// or a batch and a sweep, wait for each other instead of deadlocking.
func (s *Store) lockPanelRows(ctx context.Context, links []PanelLink, column string) ([]Panel, error) {
	sorted := panelIDs(links)
	slices.Sort(sorted)
	var rows []Panel
	err := lockForUpdate(s.conn(ctx)).Select("id", "connection", column).
		Where("id IN ?", sorted).Order("id").Find(&rows).Error
	return rows, err
}

func panelIDs(links []PanelLink) []string {
	ids := make([]string, len(links))
	for i, l := range links {
		ids[i] = l.PanelID
	}
	return ids
}

// perPanel is a column value that differs by panel: a CASE on the panel's
// key, which both databases take in one UPDATE.
func perPanel(links []PanelLink, value func(PanelLink) any) clause.Expr {
	var sql strings.Builder
	args := make([]any, 0, 2*len(links))
	sql.WriteString("CASE id")
	for _, l := range links {
		sql.WriteString(" WHEN ? THEN ?")
		args = append(args, l.PanelID, value(l))
	}
	sql.WriteString(" END")
	return gorm.Expr(sql.String(), args...)
}

// MarkPanelDisconnected records that connection linkID closed. It changes
// nothing, and reports false, when another connection has replaced it.
func (s *Store) MarkPanelDisconnected(ctx context.Context, panelID, linkID string, now time.Time) (bool, error) {
	res := s.conn(ctx).Model(&Panel{}).
		Where("id = ? AND link_id = ? AND connection = ?", panelID, linkID, PanelConnected).
		Updates(map[string]any{"connection": PanelDisconnected, "node_id": "", "last_seen_at": now})
	if res.Error != nil {
		return false, fmt.Errorf("mark panel disconnected: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// MarkPanelsDisconnected records that links died together, as they do
// with a lost node: each panel still recorded connected through its link
// is marked disconnected, last seen now, in one statement. It reports, in
// the order of links, which panels it changed; one that another link holds
// by now, or that is gone, is left as it is. Each link's At is not used. A
// panel must appear at most once in links.
func (s *Store) MarkPanelsDisconnected(ctx context.Context, links []PanelLink, now time.Time) ([]bool, error) {
	changed := make([]bool, len(links))
	if len(links) == 0 {
		return changed, nil
	}
	err := s.Tx(ctx, func(ctx context.Context) error {
		rows, err := s.lockPanelRows(ctx, links, "link_id")
		if err != nil {
			return fmt.Errorf("mark panels disconnected: %w", err)
		}
		holding := make(map[string]string, len(rows))
		for _, p := range rows {
			if p.Connection == PanelConnected {
				holding[p.ID] = p.LinkID
			}
		}
		var ids []string
		for i, l := range links {
			if link, ok := holding[l.PanelID]; ok && link == l.LinkID {
				changed[i] = true
				ids = append(ids, l.PanelID)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		err = s.conn(ctx).Model(&Panel{}).Where("id IN ?", ids).
			Updates(map[string]any{"connection": PanelDisconnected, "node_id": "", "last_seen_at": now}).Error
		if err != nil {
			return fmt.Errorf("mark panels disconnected: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// MarkPanelAuthorizationExpired records that the panel presented a
// credential that is no longer valid. It reports whether the state changed.
func (s *Store) MarkPanelAuthorizationExpired(ctx context.Context, panelID string) (bool, error) {
	res := s.conn(ctx).Model(&Panel{}).
		Where("id = ? AND connection <> ?", panelID, PanelAuthorizationExpired).
		Updates(map[string]any{"connection": PanelAuthorizationExpired, "link_id": "", "node_id": ""})
	if res.Error != nil {
		return false, fmt.Errorf("mark panel authorization expired: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// RecordPanelStatus stores a status snapshot the panel sent or answered.
func (s *Store) RecordPanelStatus(ctx context.Context, panelID, statusJSON, armedState string, now time.Time) error {
	err := s.conn(ctx).Model(&Panel{}).Where("id = ?", panelID).Updates(map[string]any{
		"status_json":  statusJSON,
		"armed_state":  armedState,
		"last_seen_at": now,
	}).Error
	if err != nil {
		return fmt.Errorf("record panel status: %w", err)
	}
	return nil
}

// SetPanelArmedState records an arm state change the panel reported.
func (s *Store) SetPanelArmedState(ctx context.Context, panelID, armedState string, now time.Time) error {
	err := s.conn(ctx).Model(&Panel{}).Where("id = ?", panelID).
		Updates(map[string]any{"armed_state": armedState, "last_seen_at": now}).Error
	if err != nil {
		return fmt.Errorf("record panel arm state: %w", err)
	}
	return nil
}

// TouchPanel records that the panel was heard from.
func (s *Store) TouchPanel(ctx context.Context, panelID string, now time.Time) error {
	return s.conn(ctx).Model(&Panel{}).Where("id = ?", panelID).Update("last_seen_at", now).Error
}

// RevokePanelCredential ends the panel's device credential: the panel can
// no longer connect and shows authorization_expired until a new credential
// is issued.
func (s *Store) RevokePanelCredential(ctx context.Context, actor Actor, locationID string, now time.Time) (LocationView, error) {
	var view LocationView
	err := s.Tx(ctx, func(ctx context.Context) error {
		v, err := s.location(ctx, actor.AccountID, locationID, true)
		if err != nil {
			return err
		}
		updates := map[string]any{"credential_revoked_at": now, "connection": PanelAuthorizationExpired, "link_id": "", "node_id": ""}
		if err := s.conn(ctx).Model(&Panel{}).Where("id = ?", v.Panel.ID).Updates(updates).Error; err != nil {
			return fmt.Errorf("revoke panel credential: %w", err)
		}
		if err := s.Audit(ctx, actor, AuditChange{
			Action: "panel.credential_revoke", Target: AuditTarget{Type: "location", ID: locationID, Name: v.Location.Name},
			Before: map[string]any{"panel_serial": v.Panel.Serial, "credential_revoked_at": v.Panel.CredentialRevokedAt},
			After:  map[string]any{"panel_serial": v.Panel.Serial, "credential_revoked_at": now},
		}); err != nil {
			return err
		}
		view, err = s.location(ctx, actor.AccountID, locationID, false)
		return err
	})
	return view, err
}

// RotatePanelCredential replaces the panel's device credential with the
// one whose digest is given; the old secret stops working at once.
func (s *Store) RotatePanelCredential(ctx context.Context, actor Actor, locationID, secretDigest string, expiresAt *time.Time) (LocationView, error) {
	var view LocationView
	err := s.Tx(ctx, func(ctx context.Context) error {
		v, err := s.location(ctx, actor.AccountID, locationID, true)
		if err != nil {
			return err
		}
		updates := map[string]any{"secret_hash": secretDigest, "credential_revoked_at": nil, "credential_expires_at": expiresAt}
		if v.Panel.Connection == PanelAuthorizationExpired {
			updates["connection"] = PanelDisconnected
		}
		if err := s.conn(ctx).Model(&Panel{}).Where("id = ?", v.Panel.ID).Updates(updates).Error; err != nil {
			return fmt.Errorf("rotate panel credential: %w", err)
		}
		if err := s.Audit(ctx, actor, AuditChange{
			Action: "panel.credential_rotate", Target: AuditTarget{Type: "location", ID: locationID, Name: v.Location.Name},
			Before: map[string]any{"panel_serial": v.Panel.Serial, "credential_expires_at": v.Panel.CredentialExpiresAt, "credential_revoked_at": v.Panel.CredentialRevokedAt},
			After:  map[string]any{"panel_serial": v.Panel.Serial, "credential_expires_at": expiresAt, "credential_revoked_at": nil},
		}); err != nil {
			return err
		}
		view, err = s.location(ctx, actor.AccountID, locationID, false)
		return err
	})
	return view, err
}
