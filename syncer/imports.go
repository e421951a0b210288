package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/syncer/importfile"
)

// ImportRequest is one upload of a user list.
type ImportRequest struct {
	// Data is the data file; DataName and DataType are the file name and
	// content type its part came with, which help tell CSV from JSON.
	Data     []byte
	DataName string
	DataType string
	// Control is the control file, or nil without one.
	Control []byte
	// Scope, Group and LocationIDs choose the locations, as for a batch.
	// An empty scope means locations when ids are given, else all.
	Scope       string
	Group       string
	LocationIDs []string
	// Trigger is what the runs record: api for a key, app for a person.
	Trigger models.RunTrigger
}

// maxOpenImportsNamed bounds the open imports a refusal names.
const maxOpenImportsNamed = 5

// StartImport validates an upload and starts one import run per location
// it lists, as one batch. Every problem of either file is reported in one
// invalid_request error with its row and column, and nothing is stored; an
// import still open at any of the locations refuses the whole upload, so a
// script that uploads twice does not queue two lists for one panel.
func (e *Engine) StartImport(ctx context.Context, actor models.Actor, req ImportRequest) (BatchStatus, error) {
	if e.cfg.Sealer == nil {
		return BatchStatus{}, errors.New("imports need a sealer for the codes they bring")
	}
	format, err := importfile.DetectFormat(req.DataType, req.DataName, req.Data[:min(len(req.Data), 512)])
	if err != nil {
		return BatchStatus{}, models.FieldError("data", "%s", err.Error())
	}
	var ctl importfile.Control
	if req.Control != nil {
		if ctl, err = importfile.ParseControl(req.Control); err != nil {
			return BatchStatus{}, problemsError(err)
		}
	}
	records, err := importfile.Parse(req.Data, format, ctl)
	if err != nil {
		return BatchStatus{}, problemsError(err)
	}
	masked, err := importfile.MaskCodes(req.Data, format, ctl)
	if err != nil {
		return BatchStatus{}, fmt.Errorf("mask the codes of an accepted data file: %w", err)
	}
	req.Group = strings.TrimSpace(req.Group)
	if req.Scope == "" {
		req.Scope = models.ScopeAll
		if len(req.LocationIDs) > 0 {
			req.Scope = models.ScopeLocations
		}
	}
	if req.Scope != models.ScopeGroup {
		req.Group = ""
	}
	if req.Trigger == "" {
		req.Trigger = models.TriggerAPI
	}
	if _, err := e.validateScope(ctx, actor.AccountID, req.Scope, req.Group, req.LocationIDs); err != nil {
		return BatchStatus{}, err
	}
	locs, err := e.scopeLocations(ctx, actor.AccountID, req)
	if err != nil {
		return BatchStatus{}, err
	}
	perLocation, err := assignLocations(records, ctl, locs)
	if err != nil {
		return BatchStatus{}, err
	}
	ids := make([]string, 0, len(perLocation))
	for _, p := range perLocation {
		ids = append(ids, p.loc.Location.ID)
	}
	open, err := e.store.OpenRuns(ctx, models.RunImport, ids, maxOpenImportsNamed)
	if err != nil {
		return BatchStatus{}, err
	}
	if len(open) > 0 {
		return BatchStatus{}, openImportsConflict(open, locs)
	}

	var status BatchStatus
	err = e.store.Tx(ctx, func(ctx context.Context) error {
		idsJSON, _ := json.Marshal(req.LocationIDs)
		b := models.Batch{
			ID: models.NewID(), AccountID: actor.AccountID, Kind: models.RunImport, Scope: req.Scope,
			GroupName: req.Group, LocationIDs: string(idsJSON), RequestedBy: actor.Name,
			TriggerSource: req.Trigger, Total: len(perLocation), State: models.BatchRunning,
			// The runs are created below, with the batch, so there is
			// nothing for a worker to expand.
			Expanded: true,
		}
		if err := e.store.CreateBatch(ctx, &b); err != nil {
			return err
		}
		imp := models.Import{
			AccountID: actor.AccountID, BatchID: b.ID, RequestedBy: actor.Name, Format: string(format),
			FileName: cleanFileName(req.DataName), Rows: len(records), Data: masked, Control: req.Control,
		}
		if err := e.store.CreateImport(ctx, &imp); err != nil {
			return err
		}
		items := make([]pushItem, len(perLocation))
		for i, p := range perLocation {
			push, err := e.importPayload(p, ctl, imp.ID)
			if err != nil {
				return err
			}
			items[i] = pushItem{loc: p.loc, push: push}
		}
		if err := e.enqueuePushes(ctx, actor, b, req.Trigger, items); err != nil {
			return err
		}
		name := imp.FileName
		if name == "" {
			// A file sent under no usable name is known by its size.
			name = fmt.Sprintf("Upload of %d rows", len(records))
		}
		if err := e.store.Audit(ctx, actor, models.AuditChange{
			Action: "import.create", Target: models.AuditTarget{Type: "import", ID: imp.ID, Name: name},
			After: map[string]any{"batch_id": b.ID, "format": format, "rows": len(records), "locations": len(perLocation),
				"scope": req.Scope, "control_file": req.Control != nil},
		}); err != nil {
			return err
		}
		status = BatchStatus{Batch: b}
		return nil
	})
	if err != nil {
		return BatchStatus{}, err
	}
	e.batchChanged(context.WithoutCancel(ctx), status.Batch.ID)
	return e.status(ctx, status.Batch)
}

// pushItem is one location's run of a batch of pushes, and what it
// carries.
type pushItem struct {
	loc  models.LocationView
	push *pushPayload
}

// enqueuePushes creates a batch's import runs, one per location, with their
// events, in the transaction carried by ctx. It writes them in a few
// multi-row statements, not a handful per location: the caller has
// checked that no import is open at these locations, and should one have
// been opened since, the runs' unique active keys refuse the whole upload.
// A location whose panel cannot take a push now gets a run that failed at
// once with the reason, its list kept for a re-apply.
func (e *Engine) enqueuePushes(ctx context.Context, actor models.Actor, b models.Batch, trigger models.RunTrigger, items []pushItem) error {
	now := e.now()
	runs := make([]models.Run, 0, len(items))
	events := make([]models.NewEvent, 0, len(items))
	var queued, failed []string
	for _, p := range items {
		push := p.push
		r := models.Run{
			ID: models.NewID(), AccountID: b.AccountID, LocationID: p.loc.Location.ID, BatchID: &b.ID,
			Kind: models.RunImport, Mode: models.ModeFull, TriggerSource: trigger, RequestedBy: actor.Name, AvailableAt: now,
			WorkerRank: p.loc.Location.WorkerRank,
		}
		push.apply(&r)
		ev := models.NewEvent{AccountID: r.AccountID, LocationID: r.LocationID, LocationName: p.loc.Location.Name, RunID: r.ID, OccurredAt: now}
		if refusal := checkRunnable(p.loc, models.RunImport); refusal != nil {
			de, _ := refusal.(*models.Error)
			r.State, r.ErrorCode, r.ErrorMessage, r.FinishedAt = models.RunFailed, de.Code, de.Message, &now
			ev.Type, ev.Severity = models.EventSyncFailed, models.SeverityError
			ev.Message = refusedMessage(actor, r.Kind, trigger, de.Message)
			ev.Data = eventData(map[string]any{"kind": r.Kind, "code": de.Code, "attempt": 0}, b.ID)
			failed = append(failed, r.LocationID)
		} else {
			key := models.ActiveKey(r.LocationID, r.Kind)
			r.State, r.ActiveKey = models.RunQueued, &key
			ev.Type, ev.Severity = models.EventSyncRequested, models.SeverityInfo
			ev.Message = requestedMessage(actor, r.Kind, trigger)
			ev.Data = eventData(map[string]any{"kind": r.Kind, "mode": r.Mode, "trigger": trigger}, b.ID)
			queued = append(queued, r.LocationID)
		}
		runs = append(runs, r)
		events = append(events, ev)
	}
	if err := e.store.InsertRuns(ctx, runs); err != nil {
		if models.ErrorCode(err) == models.CodeConflict {
			return models.Errorf(models.CodeConflict, "an import was opened at one of these locations meanwhile: wait for it to finish, or cancel it, then upload again")
		}
		return err
	}
	if err := e.store.MarkLocationsSyncing(ctx, queued, models.RunImport); err != nil {
		return err
	}
	for _, id := range failed {
		if err := e.store.RecordRunFinished(ctx, id, models.RunImport, false, now); err != nil {
			return err
		}
	}
	for len(events) > 0 {
		chunk := events[:min(len(events), cancelEventChunk)]
		events = events[len(chunk):]
		if _, err := e.events.Append(ctx, chunk...); err != nil {
			return err
		}
	}
	if len(queued) > 0 {
		models.AfterCommit(ctx, e.announce)
	}
	return nil
}

// locationRows are the records of one location of an import.
type locationRows struct {
	loc     models.LocationView
	records []importfile.Record
}

// scopeLocations loads every location of the import's scope, with its
// panel.
func (e *Engine) scopeLocations(ctx context.Context, accountID string, req ImportRequest) ([]models.LocationView, error) {
	var all []models.LocationView
	cursor := ""
	for {
		chunk, err := e.store.ScopeChunk(ctx, accountID, req.Scope, req.Group, req.LocationIDs, cursor, batchChunk)
		if err != nil {
			return nil, err
		}
		all = append(all, chunk...)
		if len(chunk) < batchChunk {
			return all, nil
		}
		cursor = chunk[len(chunk)-1].Location.ID
	}
}

// assignLocations gives each record its location. Without a location
// column the scope must be one location, which takes every row; with one,
// each value names a location of the scope by id or by name (ignoring case
// and surrounding spaces). A value that names no location of the scope, or
// a name that several share, is a problem at the first row that gives it.
// Locations of the scope that no row names are left alone.
func assignLocations(records []importfile.Record, ctl importfile.Control, locs []models.LocationView) ([]locationRows, error) {
	if ctl.LocationColumn == "" {
		if len(locs) != 1 {
			return nil, models.FieldError("scope", "the import covers %d locations, but the data file has no location column: name one location, or give the control file a location_column", len(locs))
		}
		return []locationRows{{loc: locs[0], records: records}}, nil
	}
	byID := make(map[string]int, len(locs))
	byName := make(map[string][]int, len(locs))
	for i, v := range locs {
		byID[v.Location.ID] = i
		key := strings.ToLower(strings.TrimSpace(v.Location.Name))
		byName[key] = append(byName[key], i)
	}
	resolved := map[string]int{}
	var problems []models.ErrorDetail
	index := map[int]int{}
	var out []locationRows
	for _, rec := range records {
		at, seen := resolved[rec.Location]
		if !seen {
			at = -1
			if i, ok := byID[rec.Location]; ok {
				at = i
			} else if named := byName[strings.ToLower(rec.Location)]; len(named) == 1 {
				at = named[0]
			} else if len(named) > 1 {
				problems = append(problems, models.ErrorDetail{File: "data", Row: rec.Row, Column: ctl.LocationColumn,
					Message: fmt.Sprintf("%d locations are named %s: give the location's id instead", len(named), quoteValue(rec.Location))})
			} else {
				problems = append(problems, models.ErrorDetail{File: "data", Row: rec.Row, Column: ctl.LocationColumn,
					Message: fmt.Sprintf("%s is not the name or id of a location this import covers", quoteValue(rec.Location))})
			}
			resolved[rec.Location] = at
		}
		if at < 0 || len(problems) > 0 {
			continue
		}
		slot, ok := index[at]
		if !ok {
			slot = len(out)
			index[at] = slot
			out = append(out, locationRows{loc: locs[at]})
		}
		out[slot].records = append(out[slot].records, rec)
	}
	if len(problems) > 0 {
		return nil, &models.Error{Code: models.CodeInvalidRequest, Field: "data",
			Message: fmt.Sprintf("data file: %d rows name locations this import cannot use; nothing was imported", len(problems)),
			Details: problems}
	}
	// Two names of one location (its id and its name) must not list one
	// user number twice.
	for _, p := range out {
		seen := map[int]int{}
		for _, rec := range p.records {
			if first, dup := seen[rec.UserNumber]; dup {
				problems = append(problems, models.ErrorDetail{File: "data", Row: rec.Row, Column: "user_number",
					Message: fmt.Sprintf("user number %d is listed for %s again; row %d lists it already", rec.UserNumber, p.loc.Location.Name, first)})
				continue
			}
			seen[rec.UserNumber] = rec.Row
		}
	}
	if len(problems) > 0 {
		return nil, &models.Error{Code: models.CodeInvalidRequest, Field: "data",
			Message: "data file: a location is named two ways with the same user numbers; nothing was imported", Details: problems}
	}
	return out, nil
}

// importPayload is what one location's import run carries: its users
// without codes, the codes sealed, and the protected user numbers.
func (e *Engine) importPayload(p locationRows, ctl importfile.Control, importID string) (*pushPayload, error) {
	data := UsersData{
		Full: true, Users: make([]panel.User, len(p.records)), ExternalIDs: make(map[int]string, len(p.records)),
		Protected: slices.Clone(ctl.ProtectedUserNumbers), KeepUnsetCodes: true,
	}
	codes := map[int]string{}
	for i, rec := range p.records {
		data.Users[i] = panel.User{
			Number: rec.UserNumber, Name: rec.Name, Email: models.NormalizeEmail(rec.Email), Authority: rec.Authority,
			Partitions: slices.Clone(rec.Partitions), AccessSchedule: rec.Schedule, HasCode: rec.Code != "",
		}
		data.ExternalIDs[rec.UserNumber] = rec.ExternalID
		if rec.Code != "" {
			codes[rec.UserNumber] = rec.Code
		}
	}
	slices.SortFunc(data.Users, func(a, b panel.User) int { return a.Number - b.Number })
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	push := &pushPayload{data: raw, importID: &importID}
	if len(codes) > 0 {
		if push.codes, err = e.sealCodes(codes); err != nil {
			return nil, err
		}
	}
	return push, nil
}

// sealCodes seals a run's codes for keeping.
func (e *Engine) sealCodes(codes map[int]string) ([]byte, error) {
	plain, err := json.Marshal(codes)
	if err != nil {
		return nil, err
	}
	sealed, err := e.cfg.Sealer.Seal(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("seal import codes: %w", err)
	}
	return []byte(sealed), nil
}

// openCodes opens a run's sealed codes to push them.
func (e *Engine) openCodes(sealed []byte) (map[int]string, error) {
	codes := map[int]string{}
	if len(sealed) == 0 {
		return codes, nil
	}
	if e.cfg.Sealer == nil {
		return nil, &runError{code: "internal", message: "the run's codes cannot be opened on this node", permanent: true}
	}
	plain, err := e.cfg.Sealer.Open(string(sealed))
	if err != nil {
		return nil, &runError{code: "internal", message: "the run's codes cannot be opened: " + err.Error(), permanent: true}
	}
	defer clear(plain)
	if err := json.Unmarshal(plain, &codes); err != nil {
		return nil, &runError{code: "internal", message: "the run's codes are unreadable", permanent: true}
	}
	return codes, nil
}

// problemsError turns a file's problems into the one invalid_request
// error that lists them all.
func problemsError(err error) error {
	var ps *importfile.Problems
	if !errors.As(err, &ps) {
		return err
	}
	out := &models.Error{Code: models.CodeInvalidRequest, Field: ps.File, Message: ps.Error() + "; nothing was imported", DetailsOmitted: ps.Omitted}
	for _, p := range ps.List {
		out.Details = append(out.Details, models.ErrorDetail{File: ps.File, Row: p.Row, Column: p.Column, Message: p.Message})
	}
	return out
}

// openImportsConflict refuses an upload while imports are open at some of
// its locations, naming them.
func openImportsConflict(open []models.Run, locs []models.LocationView) error {
	names := make(map[string]string, len(locs))
	for _, v := range locs {
		names[v.Location.ID] = v.Location.Name
	}
	parts := make([]string, len(open))
	for i, r := range open {
		parts[i] = fmt.Sprintf("%s (run %s, %s)", names[r.LocationID], r.ID, strings.ReplaceAll(string(r.State), "_", " "))
	}
	return models.Errorf(models.CodeConflict, "an import is still open at %s: apply or cancel it first, then upload again", strings.Join(parts, ", "))
}

// quoteValue quotes a file's value for a message, cut to 40 characters.
func quoteValue(s string) string {
	r := []rune(s)
	if len(r) > 40 {
		return strconv.Quote(string(r[:40]) + "…")
	}
	return strconv.Quote(s)
}

// cleanFileName keeps the last element of an uploaded file's name, without
// control characters, at most 255 bytes.
func cleanFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}
