package models

import (
	"context"
	"fmt"
	"time"
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
	var before PanelHolder
	err := s.Tx(ctx, func(ctx context.Context) error {
		var p Panel
		if err := lockForUpdate(s.conn(ctx)).Select("id", "connection", "node_id").Where("id = ?", panelID).Take(&p).Error; err != nil {
			return notFound(err, "panel")
		}
		before = PanelHolder{Connection: p.Connection, NodeID: p.NodeID}
		return s.conn(ctx).Model(&Panel{}).Where("id = ?", panelID).Updates(map[string]any{
			"connection":   PanelConnected,
			"link_id":      linkID,
			"node_id":      nodeID,
			"connected_at": now,
			"last_seen_at": now,
		}).Error
	})
	return before, err
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
