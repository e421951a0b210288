package models

import "context"

// PanelRoute reads from the directory of panel links, the panels table,
// which node holds the panel's connection: nodeID, with connected true,
// while a link is recorded; connected false once it is not. A node that
// dies without closing its links keeps them recorded until the heartbeat
// sweep of the nodes still alive marks them disconnected.
func (s *Store) PanelRoute(ctx context.Context, panelID string) (nodeID string, connected bool, err error) {
	var p Panel
	err = s.conn(ctx).Select("connection", "node_id").Where("id = ?", panelID).Take(&p).Error
	if err != nil {
		return "", false, notFound(err, "panel")
	}
	if p.Connection != PanelConnected || p.NodeID == "" {
		return "", false, nil
	}
	return p.NodeID, true, nil
}
