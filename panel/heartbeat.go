package panel

import (
	"context"
	"time"

	"github.com/panelsync/panelsync/models"
)

// A node that dies without closing its panel links (a crash, a lost
// machine) cannot mark its panels disconnected, and the panels table would
// go on showing them connected. Every node therefore writes a heartbeat,
// and every node looks, at each of its own, for panels recorded as
// connected to a node whose heartbeat has gone silent: those links died
// with it. The panel reconnects wherever it can and is marked connected
// again then. A node judges its peers only after a fair wait of its own
// good beats (models.FairWait), so that an outage of the database, which
// silences every node at once, does not make the first node back blame
// the others.

// sweepBatch bounds the panels marked disconnected in one transaction, and
// sweepBatchesPerBeat the transactions one heartbeat spends on them: a
// lost node's 19,000 panels that did not link again elsewhere are marked
// within a few beats.
const (
	sweepBatch          = 500
	sweepBatchesPerBeat = 10
)

// forgetNodesAfter is how long a silent node stays in the nodes table.
const forgetNodesAfter = 24 * time.Hour

func (l *Link) heartbeatLoop() {
	defer l.dispatch.Done()
	tick := time.NewTicker(l.cfg.Heartbeat)
	defer tick.Stop()
	var last time.Time
	first, reassert := true, 0
	for {
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), max(l.cfg.Heartbeat, time.Second))
		now, err := l.beat(ctx)
		l.fair.Record(err == nil, began)
		l.cfg.Metrics.heartbeat(err)
		if err != nil {
			l.log.Warn("node heartbeat", "error", err.Error())
		} else {
			// Silent for as long as it takes to be thought lost, this node
			// may have had its panels marked disconnected by another; it
			// marks the ones it still holds connected again, on this beat
			// and the next (a sweep that read before this beat may land
			// after it).
			if !last.IsZero() && now.Sub(last) >= l.cfg.NodeLostAfter {
				reassert = 2
			}
			last = now
			if reassert > 0 {
				reassert--
				l.reassertHeld(ctx, now)
			}
			if first {
				l.releaseStale(ctx, now)
				first = false
			}
			if l.fair.Over(time.Now(), l.cfg.NodeLostAfter) {
				l.sweepLostNodes(ctx, now)
			}
		}
		cancel()
		select {
		case <-l.stopBus:
			return
		case <-tick.C:
		}
	}
}

// beat records this node's heartbeat at the database's time, and returns
// that time.
func (l *Link) beat(ctx context.Context) (time.Time, error) {
	now, err := l.store.Now(ctx)
	if err != nil {
		return now, err
	}
	return now, l.store.NodeHeartbeat(ctx, l.cfg.NodeID, l.cfg.Ranks, now)
}

// sweepLostNodes marks disconnected the panels recorded as connected to a
// node whose heartbeat is older than NodeLostAfter.
func (l *Link) sweepLostNodes(ctx context.Context, now time.Time) {
	for range sweepBatchesPerBeat {
		panels, err := l.store.PanelsOfLostNodes(ctx, now.Add(-l.cfg.NodeLostAfter), sweepBatch)
		if err != nil {
			l.log.Warn("find panels of lost nodes", "error", err.Error())
			return
		}
		if err := l.recordLinksLost(ctx, panels, now); err != nil {
			l.log.Warn("mark a lost node's panels disconnected", "panels", len(panels), "error", err.Error())
			return
		}
		if len(panels) < sweepBatch {
			return
		}
	}
}

// releaseStale runs once, at this node's first heartbeat: a node restarted
// under the same --node-id finds panels recorded as connected to it
// through links that died with its previous process.
func (l *Link) releaseStale(ctx context.Context, now time.Time) {
	panels, err := l.store.PanelsOfNode(ctx, l.cfg.NodeID, sweepBatch)
	if err != nil {
		l.log.Warn("find this node's stale panels", "error", err.Error())
		return
	}
	stale := panels[:0]
	for _, p := range panels {
		if c := l.conn(p.ID); c == nil || c.linkID != p.LinkID {
			stale = append(stale, p)
		}
	}
	if err := l.recordLinksLost(ctx, stale, now); err != nil {
		l.log.Warn("mark this node's stale panels disconnected", "panels", len(stale), "error", err.Error())
	}
}

// reassertHeld marks connected again the panels this node still holds
// that another node marked disconnected while this one's heartbeat lapsed.
func (l *Link) reassertHeld(ctx context.Context, now time.Time) {
	l.mu.Lock()
	held := make([]*deviceConn, 0, len(l.conns))
	for _, c := range l.conns {
		held = append(held, c)
	}
	l.mu.Unlock()
	for _, c := range held {
		if err := l.recordReasserted(ctx, c, now); err != nil {
			l.log.Warn("mark a held panel connected again", "panel_serial", c.serial, "error", err.Error())
		}
	}
}

// recordLinksLost marks disconnected, in one transaction, the panels whose
// links died with their node, each with its Event Log entry; a panel that
// linked again meanwhile keeps its new link and gets no entry.
func (l *Link) recordLinksLost(ctx context.Context, panels []models.Panel, now time.Time) error {
	if len(panels) == 0 {
		return nil
	}
	links := make([]models.PanelLink, len(panels))
	for i, p := range panels {
		links[i] = models.PanelLink{PanelID: p.ID, LinkID: p.LinkID}
	}
	return l.store.Tx(ctx, func(ctx context.Context) error {
		changed, err := l.store.MarkPanelsDisconnected(ctx, links, now)
		if err != nil {
			return err
		}
		var events []models.NewEvent
		for i, p := range panels {
			if changed[i] {
				events = append(events, models.NewEvent{
					AccountID: p.AccountID, LocationID: p.LocationID, Type: models.EventPanelDisconnected,
					Severity: models.SeverityWarning, Message: "Panel disconnected: the server it was linked to stopped answering",
					OccurredAt: now, Data: map[string]any{"serial": p.Serial, "reason": "node_lost"},
				})
			}
		}
		_, err = l.events.Append(ctx, events...)
		return err
	})
}

func (l *Link) recordReasserted(ctx context.Context, c *deviceConn, now time.Time) error {
	return l.store.Tx(ctx, func(ctx context.Context) error {
		changed, err := l.store.ReassertPanelConnected(ctx, c.panelID, c.linkID, l.cfg.NodeID, now)
		if err != nil || !changed {
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
