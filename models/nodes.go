package models

import (
	"context"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm/clause"
)

// Now reads the database's clock. Heartbeats are written and judged on
// it, so that nodes whose own clocks disagree still agree on how long a
// peer has been silent. Embedded SQLite runs on this machine, whose clock
// it shares.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	if !IsMySQL(s.db) {
		return time.Now().UTC(), nil
	}
	var now time.Time
	if err := s.conn(ctx).Raw("SELECT UTC_TIMESTAMP(6)").Scan(&now).Error; err != nil {
		return time.Time{}, fmt.Errorf("read the database's clock: %w", err)
	}
	return now.UTC(), nil
}

// FairWait tells a node when it may judge its peers by their heartbeats.
// An outage of the database stops every node's heartbeat at once, so the
// first node to reach the database again would find all its peers silent
// although they are only waiting for their next beat. A node therefore
// judges its peers only once it has itself reached the database without a
// break for as long as a peer may be silent: every peer that is alive has
// had that long to beat again. The zero value has not reached the
// database yet.
type FairWait struct {
	mu sync.Mutex
	// since is when the current run of good calls began; zero after a
	// failed one.
	since time.Time
}

// Record notes whether the call to the database begun at began succeeded.
func (w *FairWait) Record(ok bool, began time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case !ok:
		w.since = time.Time{}
	case w.since.IsZero():
		w.since = began
	}
}

// Over reports whether, at now, the database has been reached without a
// break for at least d.
func (w *FairWait) Over(now time.Time, d time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.since.IsZero() && now.Sub(w.since) >= d
}

// NodeHeartbeat records that node nodeID, serving ranks (besides 0, as
// FormatRanks writes them), is alive at now, adding it on its first beat.
func (s *Store) NodeHeartbeat(ctx context.Context, nodeID, ranks string, now time.Time) error {
	err := s.conn(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		DoUpdates: clause.AssignmentColumns([]string{"heartbeat_at", "ranks"}),
	}).Create(&Node{ID: nodeID, StartedAt: now, HeartbeatAt: now, Ranks: ranks}).Error
	if err != nil {
		return fmt.Errorf("node heartbeat: %w", err)
	}
	return nil
}

// RemoveNode forgets a node that is shutting down, and nodes whose last
// heartbeat is older than staleBefore (long gone; their panels have been
// dealt with).
func (s *Store) RemoveNode(ctx context.Context, nodeID string, staleBefore time.Time) error {
	err := s.conn(ctx).Where("id = ? OR heartbeat_at < ?", nodeID, staleBefore).Delete(&Node{}).Error
	if err != nil {
		return fmt.Errorf("remove node: %w", err)
	}
	return nil
}

// PanelsOfLostNodes returns up to limit panels recorded as connected to a
// node whose heartbeat is older than lostBefore, or that has none: their
// links died with the node. A panel a stopping node let go of (relinking,
// with no node) is among them once it was last seen before lostBefore: it
// has had that long to link again.
func (s *Store) PanelsOfLostNodes(ctx context.Context, lostBefore time.Time, limit int) ([]Panel, error) {
	alive := s.conn(ctx).Model(&Node{}).Select("id").Where("heartbeat_at >= ?", lostBefore)
	var panels []Panel
	err := s.conn(ctx).
		Select("id", "account_id", "location_id", "serial", "link_id", "node_id").
		Where("connection = ?", PanelConnected).
		Where(s.conn(ctx).Where("node_id <> '' AND node_id NOT IN (?)", alive).
			Or("node_id = '' AND last_seen_at < ?", lostBefore)).
		Order("id").Limit(limit).Find(&panels).Error
	if err != nil {
		return nil, fmt.Errorf("panels of lost nodes: %w", err)
	}
	return panels, nil
}

// MarkNodePanelsRelinking records that the node is letting go of every
// panel connected to it, each told to link again within seconds: they stay
// connected, held by no node, last seen now on the database's clock, so
// that a panel back in time shows no disconnection, and PanelsOfLostNodes
// finds one that is not. It returns how many panels it marked.
func (s *Store) MarkNodePanelsRelinking(ctx context.Context, nodeID string) (int64, error) {
	now, err := s.Now(ctx)
	if err != nil {
		return 0, err
	}
	res := s.conn(ctx).Model(&Panel{}).
		Where("node_id = ? AND connection = ?", nodeID, PanelConnected).
		Updates(map[string]any{"node_id": "", "last_seen_at": now})
	if res.Error != nil {
		return 0, fmt.Errorf("mark a node's panels relinking: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// ReassertPanelConnected marks a panel connected again through link
// linkID, if that link is still the panel's latest and another node had
// marked it disconnected while this node's heartbeat lapsed. It reports
// whether the state changed.
func (s *Store) ReassertPanelConnected(ctx context.Context, panelID, linkID, nodeID string, now time.Time) (bool, error) {
	res := s.conn(ctx).Model(&Panel{}).
		Where("id = ? AND link_id = ? AND connection = ?", panelID, linkID, PanelDisconnected).
		Updates(map[string]any{"connection": PanelConnected, "node_id": nodeID, "last_seen_at": now})
	if res.Error != nil {
		return false, fmt.Errorf("reassert panel connected: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// PanelsOfNode returns up to limit panels recorded as connected to
// nodeID.
func (s *Store) PanelsOfNode(ctx context.Context, nodeID string, limit int) ([]Panel, error) {
	var panels []Panel
	err := s.conn(ctx).
		Select("id", "account_id", "location_id", "serial", "link_id", "node_id").
		Where("connection = ? AND node_id = ?", PanelConnected, nodeID).
		Order("id").Limit(limit).Find(&panels).Error
	if err != nil {
		return nil, fmt.Errorf("panels of node: %w", err)
	}
	return panels, nil
}

// PanelHeldByLiveNode reports whether the panel is recorded as connected
// to a node other than except whose heartbeat is at or after aliveSince.
func (s *Store) PanelHeldByLiveNode(ctx context.Context, panelID, except string, aliveSince time.Time) (bool, error) {
	alive := s.conn(ctx).Model(&Node{}).Select("id").Where("heartbeat_at >= ? AND id <> ?", aliveSince, except)
	var n int64
	err := s.conn(ctx).Model(&Panel{}).
		Where("id = ? AND connection = ? AND node_id IN (?)", panelID, PanelConnected, alive).
		Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("panel held by a live node: %w", err)
	}
	return n > 0, nil
}
