package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// Configuration item kinds, as stored and as listed in changes.
const (
	itemPartition = "partition"
	itemZone      = "zone"
	itemDevice    = "device"
)

// syncPanel reads the panel's configuration. The panel must be disarmed:
// a configuration read can interrupt an armed panel's supervision, so it is
// refused when the sync is requested and checked again here.
func (e *Engine) syncPanel(ctx context.Context, r models.Run, loc models.LocationView) (attemptOutcome, error) {
	st, err := e.readStatus(ctx, loc.Panel.ID)
	if err != nil {
		return attemptOutcome{}, err
	}
	if armed := st.ArmedState(); panel.IsArmed(armed) {
		return attemptOutcome{}, &runError{code: models.CodePanelArmed, message: fmt.Sprintf("the panel is %s; disarm it before a panel sync", panel.ArmedStateLabel(armed)), permanent: true}
	}
	raw, err := e.send(ctx, loc.Panel.ID, panel.CmdConfigGet, struct{}{})
	if err != nil {
		return attemptOutcome{}, err
	}
	var cfg panel.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return attemptOutcome{}, invalidAnswer("configuration", err)
	}
	cfg.Normalize()
	items, err := configItems(loc.Location.ID, cfg)
	if err != nil {
		return attemptOutcome{}, invalidAnswer("configuration", err)
	}
	data, _ := json.Marshal(cfg)
	return attemptOutcome{
		mode: models.ModeFull,
		data: data,
		apply: func(ctx context.Context) (applied, error) {
			existing, err := e.store.PanelConfigItems(ctx, loc.Location.ID)
			if err != nil {
				return applied{}, err
			}
			d := diffConfig(existing, items)
			if err := e.store.ApplyPanelConfig(ctx, d.insert, d.update, d.removeIDs); err != nil {
				return applied{}, err
			}
			changes, _ := json.Marshal(Changes{Counts: d.counts, Changes: d.changes})
			return applied{counts: d.counts, changes: changes, summary: configSummary(d, len(existing), items)}, nil
		},
	}, nil
}

func (e *Engine) readStatus(ctx context.Context, panelID string) (panel.Status, error) {
	raw, err := e.send(ctx, panelID, panel.CmdStatusGet, struct{}{})
	if err != nil {
		return panel.Status{}, err
	}
	var st panel.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return panel.Status{}, invalidAnswer("status", err)
	}
	if err := st.Validate(); err != nil {
		return panel.Status{}, invalidAnswer("status", err)
	}
	st.Normalize()
	return st, nil
}

// configItems flattens a configuration into rows, checking it on the way.
func configItems(locationID string, cfg panel.Config) ([]models.PanelConfigItem, error) {
	var items []models.PanelConfigItem
	seen := map[string]bool{}
	add := func(kind string, number int, name, typ string, partition int) error {
		key := fmt.Sprintf("%s/%d", kind, number)
		switch {
		case number < 1 || number > 9999:
			return fmt.Errorf("%s number %d is outside 1..9999", kind, number)
		case seen[key]:
			return fmt.Errorf("%s %d appears twice", kind, number)
		case len(name) > 200 || len(typ) > 32:
			return fmt.Errorf("%s %d: name or type too long", kind, number)
		}
		if err := panel.CheckText("name", name, panel.MaxTextRunes); err != nil {
			return fmt.Errorf("%s %d: %w", kind, number, err)
		}
		if err := panel.CheckText("type", typ, 32); err != nil {
			return fmt.Errorf("%s %d: %w", kind, number, err)
		}
		seen[key] = true
		items = append(items, models.PanelConfigItem{
			LocationID: locationID, Kind: kind, Number: number,
			Name: strings.TrimSpace(name), Type: typ, Partition: partition,
		})
		return nil
	}
	if len(cfg.Partitions)+len(cfg.Zones)+len(cfg.Devices) > 5000 {
		return nil, fmt.Errorf("configuration has more items than a panel holds")
	}
	for _, p := range cfg.Partitions {
		if err := add(itemPartition, p.Number, p.Name, "", 0); err != nil {
			return nil, err
		}
	}
	for _, z := range cfg.Zones {
		if err := add(itemZone, z.Number, z.Name, z.Type, z.Partition); err != nil {
			return nil, err
		}
	}
	for _, d := range cfg.Devices {
		if err := add(itemDevice, d.Number, d.Name, d.Type, 0); err != nil {
			return nil, err
		}
	}
	return items, nil
}

type configDiff struct {
	insert    []models.PanelConfigItem
	update    []models.PanelConfigItem
	removeIDs []string
	counts    counts
	changes   []Change
}

// diffConfig reconciles the stored configuration with what the panel sent;
// a panel sync always reads the whole configuration.
func diffConfig(existing, got []models.PanelConfigItem) configDiff {
	var d configDiff
	key := func(it models.PanelConfigItem) string { return fmt.Sprintf("%s/%d", it.Kind, it.Number) }
	byKey := make(map[string]models.PanelConfigItem, len(existing))
	for _, it := range existing {
		byKey[key(it)] = it
	}
	sent := map[string]bool{}
	for _, it := range got {
		k := key(it)
		sent[k] = true
		old, ok := byKey[k]
		if !ok {
			it.ID = models.NewID()
			d.insert = append(d.insert, it)
			d.counts.Added++
			d.changes = append(d.changes, Change{Action: "added", Kind: it.Kind, Number: it.Number, Name: it.Name})
			continue
		}
		var fields []FieldChange
		if old.Name != it.Name {
			fields = append(fields, FieldChange{Field: "name", From: old.Name, To: it.Name})
		}
		if old.Type != it.Type {
			fields = append(fields, FieldChange{Field: "type", From: old.Type, To: it.Type})
		}
		if old.Partition != it.Partition {
			fields = append(fields, FieldChange{Field: "partition", From: old.Partition, To: it.Partition})
		}
		if len(fields) == 0 {
			d.counts.Unchanged++
			continue
		}
		it.ID = old.ID
		d.update = append(d.update, it)
		d.counts.Updated++
		d.changes = append(d.changes, Change{Action: "updated", Kind: it.Kind, Number: it.Number, Name: it.Name, Fields: fields})
	}
	var gone []models.PanelConfigItem
	for k, it := range byKey {
		if !sent[k] {
			gone = append(gone, it)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return key(gone[i]) < key(gone[j]) })
	for _, it := range gone {
		d.removeIDs = append(d.removeIDs, it.ID)
		d.counts.Removed++
		d.changes = append(d.changes, Change{Action: "removed", Kind: it.Kind, Number: it.Number, Name: it.Name})
	}
	return d
}

// refresh reads the panel's live status and stores it.
func (e *Engine) refresh(ctx context.Context, r models.Run, loc models.LocationView) (attemptOutcome, error) {
	st, err := e.readStatus(ctx, loc.Panel.ID)
	if err != nil {
		return attemptOutcome{}, err
	}
	data, _ := json.Marshal(st)
	armed := st.ArmedState()
	return attemptOutcome{
		mode: models.ModeFull,
		data: data,
		apply: func(ctx context.Context) (applied, error) {
			if err := e.store.RecordPanelStatus(ctx, loc.Panel.ID, string(data), armed, e.now()); err != nil {
				return applied{}, err
			}
			return applied{summary: panel.StatusSummary(st)}, nil
		},
	}, nil
}
