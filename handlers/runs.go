package handlers

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/syncer"
)

type syncHandlers struct {
	store  *models.Store
	engine *syncer.Engine
	link   DeviceLink
}

type syncRequest struct {
	Kind *string `json:"kind"`
}

func (h syncHandlers) requestSync(c *fiber.Ctx) error {
	var req syncRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Kind == nil {
		return models.FieldError("kind", "kind is required: users, panel or refresh")
	}
	kind, err := syncer.ParseKind(*req.Kind)
	if err != nil {
		return err
	}
	run, dedup, err := h.engine.RequestSync(c.UserContext(), actor(c), syncer.SyncRequest{
		LocationID: c.Params("id"), Kind: kind, Trigger: trigger(c),
	})
	if err != nil {
		return err
	}
	resp := SyncResponse{Run: toRunResponse(run), Message: syncer.InitiatedMessage(kind)}
	if dedup {
		resp.Deduplicated = true
		resp.Message = "A " + strings.ToLower(kindName(kind)) + " is already in progress"
		return c.JSON(resp)
	}
	return c.Status(fiber.StatusAccepted).JSON(resp)
}

func kindName(k models.RunKind) string {
	switch k {
	case models.RunUsers:
		return "User sync"
	case models.RunPanel:
		return "Panel sync"
	}
	return "Refresh"
}

func (h syncHandlers) listRuns(c *fiber.Ctx) error {
	if err := allowQuery(c, "location_id", "batch_id", "state", "kind", "cursor", "limit"); err != nil {
		return err
	}
	limit, err := queryLimit(c, 50, 200)
	if err != nil {
		return err
	}
	q := models.RunQuery{
		AccountID: principal(c).AccountID, LocationID: c.Query("location_id"), BatchID: c.Query("batch_id"),
		Before: c.Query("cursor"), Limit: limit,
	}
	if err := checkIDCursor(q.Before); err != nil {
		return err
	}
	if s := c.Query("state"); s != "" {
		switch st := models.RunState(s); st {
		case models.RunQueued, models.RunRunning, models.RunAwaitingApply, models.RunSucceeded, models.RunFailed, models.RunCancelled:
			q.State = st
		default:
			return models.FieldError("state", "state must be queued, running, awaiting_apply, succeeded, failed or cancelled")
		}
	}
	if k := c.Query("kind"); k != "" {
		switch kind := models.RunKind(k); kind {
		case models.RunUsers, models.RunPanel, models.RunRefresh, models.RunImport:
			q.Kind = kind
		default:
			return models.FieldError("kind", "kind must be users, panel, refresh or import")
		}
	}
	if q.LocationID != "" {
		if _, err := h.store.Location(c.UserContext(), q.AccountID, q.LocationID); err != nil {
			return err
		}
	}
	if q.BatchID != "" {
		if _, err := h.store.Batch(c.UserContext(), q.AccountID, q.BatchID); err != nil {
			return err
		}
	}
	runs, next, err := h.store.ListRuns(c.UserContext(), q)
	if err != nil {
		return err
	}
	page := RunPage{Items: make([]RunResponse, len(runs))}
	for i, r := range runs {
		page.Items[i] = toRunResponse(r)
	}
	if next != "" {
		page.NextCursor = &next
	}
	return c.JSON(page)
}

// checkIDCursor refuses a cursor that is not the id of a record, the only
// cursor the pages ordered by id hand out.
func checkIDCursor(cursor string) error {
	if cursor == "" {
		return nil
	}
	if _, err := uuid.Parse(cursor); err != nil {
		return models.FieldError("cursor", "cursor is not one this server issued")
	}
	return nil
}

func (h syncHandlers) getRun(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	r, err := h.store.Run(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toRunResponse(r))
}

func (h syncHandlers) cancelRun(c *fiber.Ctx) error {
	r, err := h.engine.CancelRun(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toRunResponse(r))
}

// applyRun applies a held run's changes.
func (h syncHandlers) applyRun(c *fiber.Ctx) error {
	r, err := h.engine.ApplyRun(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toRunResponse(r))
}

// reapplyRun starts a run that restores a finished run's user list.
func (h syncHandlers) reapplyRun(c *fiber.Ctx) error {
	r, err := h.engine.ReapplyRun(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(SyncResponse{Run: toRunResponse(r), Message: "Re-apply process has been initiated"})
}

// runControl serves the control file an import run was uploaded with.
func (h syncHandlers) runControl(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	r, err := h.store.Run(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	if r.ImportID == nil {
		return models.Errorf(models.CodeNotFound, "only runs of an upload have a control file; this %s run has none", r.Kind)
	}
	imp, err := h.store.Import(c.UserContext(), r.AccountID, *r.ImportID)
	if err != nil {
		return err
	}
	if imp.Control == nil {
		return models.Errorf(models.CodeNotFound, "the import was uploaded without a control file")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="import-`+imp.ID+`-control.json"`)
	return c.Send(imp.Control)
}

type markCancelledRequest struct {
	Confirm *bool `json:"confirm"`
}

// markCancelled ends a run whatever it is doing, once the caller confirms
// they know it may be unsafe.
func (h syncHandlers) markCancelled(c *fiber.Ctx) error {
	var req markCancelledRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Confirm == nil || !*req.Confirm {
		return models.FieldError("confirm", "confirm must be true: marking a run cancelled may leave the panel part way through its changes")
	}
	r, err := h.engine.MarkCancelled(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toRunResponse(r))
}

// runData serves what the panel or the upload sent, as JSON or, with
// ?format=csv, as a spreadsheet of its records. An import run's data is
// the data file as uploaded, codes masked, in the format it came in
// unless another is asked for; the other format lists the run's own
// location's users.
func (h syncHandlers) runData(c *fiber.Ctx) error {
	if err := allowQuery(c, "format"); err != nil {
		return err
	}
	asked := c.Query("format")
	if asked != "" && asked != "json" && asked != "csv" {
		return models.FieldError("format", "format must be json or csv")
	}
	r, err := h.store.RunPayload(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	if r.ImportID != nil {
		imp, err := h.store.Import(c.UserContext(), r.AccountID, *r.ImportID)
		if err != nil {
			return err
		}
		if asked == "" || asked == imp.Format {
			c.Set(fiber.HeaderContentType, importContentType(imp.Format))
			c.Set(fiber.HeaderContentDisposition, `attachment; filename="import-`+imp.ID+`-data.`+imp.Format+`"`)
			return c.Send(imp.Data)
		}
	}
	format := asked
	if format == "" {
		format = "json"
	}
	if len(r.Data) == 0 {
		if r.IsActive() {
			return models.Errorf(models.CodeNotFound, "the run has received no data yet")
		}
		return models.Errorf(models.CodeNotFound, "the run ended (%s) without receiving data", r.State)
	}
	name := "run-" + r.ID + "-" + string(r.Kind)
	if format == "json" {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		c.Set(fiber.HeaderContentDisposition, `inline; filename="`+name+`.json"`)
		return c.Send(r.Data)
	}
	body, err := dataCSV(r)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`.csv"`)
	return c.Send(body)
}

func (h syncHandlers) runChanges(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	r, err := h.store.RunPayload(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	out := ChangesResponse{Counts: ChangeCounts{Added: r.Added, Updated: r.Updated, Removed: r.Removed, Unchanged: r.Unchanged}, Changes: []json.RawMessage{}}
	if len(r.Changes) > 0 {
		var stored struct {
			Changes []json.RawMessage `json:"changes"`
		}
		if err := json.Unmarshal(r.Changes, &stored); err != nil {
			return err
		}
		if stored.Changes != nil {
			out.Changes = stored.Changes
		}
	}
	return c.JSON(out)
}

// dataCSV renders a run's data as CSV rows of its records.
func dataCSV(r models.Run) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	ints := func(ns []int) string {
		parts := make([]string, len(ns))
		for i, n := range ns {
			parts[i] = strconv.Itoa(n)
		}
		return strings.Join(parts, " ")
	}
	switch r.Kind {
	case models.RunUsers, models.RunImport:
		var d syncer.UsersData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, err
		}
		_ = w.Write([]string{"number", "name", "email", "authority", "partitions", "access_schedule", "has_code"})
		for _, u := range d.Users {
			_ = w.Write([]string{strconv.Itoa(u.Number), csvSafe(u.Name), csvSafe(u.Email), csvSafe(u.Authority), ints(u.Partitions), csvSafe(u.AccessSchedule), strconv.FormatBool(u.HasCode)})
		}
	case models.RunPanel:
		var cfg panel.Config
		if err := json.Unmarshal(r.Data, &cfg); err != nil {
			return nil, err
		}
		_ = w.Write([]string{"kind", "number", "name", "type", "partition"})
		for _, p := range cfg.Partitions {
			_ = w.Write([]string{"partition", strconv.Itoa(p.Number), csvSafe(p.Name), "", ""})
		}
		for _, z := range cfg.Zones {
			_ = w.Write([]string{"zone", strconv.Itoa(z.Number), csvSafe(z.Name), csvSafe(z.Type), strconv.Itoa(z.Partition)})
		}
		for _, d := range cfg.Devices {
			_ = w.Write([]string{"device", strconv.Itoa(d.Number), csvSafe(d.Name), csvSafe(d.Type), ""})
		}
	case models.RunRefresh:
		var st panel.Status
		if err := json.Unmarshal(r.Data, &st); err != nil {
			return nil, err
		}
		_ = w.Write([]string{"partition", "armed_state", "ready"})
		for _, p := range st.Partitions {
			_ = w.Write([]string{strconv.Itoa(p.Number), p.ArmedState, strconv.FormatBool(p.Ready)})
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

func importContentType(format string) string {
	if format == "csv" {
		return "text/csv; charset=utf-8"
	}
	return fiber.MIMEApplicationJSON
}

// csvSafe keeps a spreadsheet from reading a panel-supplied name as a
// formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func (h syncHandlers) rotateCredential(c *fiber.Ctx) error {
	// The run behind the sync status is read before the credential
	// changes, so that failing to read it cannot cost the caller the new
	// secret, which is shown once; a rotation leaves the status alone.
	before, err := h.store.Location(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	causes, err := h.store.SyncCauses(c.UserContext(), []models.Location{before.Location})
	if err != nil {
		return err
	}
	v, secret, err := h.link.RotateCredential(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(CreatedLocationResponse{Location: toLocationResponse(v, causes[v.Location.ID]), DeviceSecret: secret})
}

func (h syncHandlers) revokeCredential(c *fiber.Ctx) error {
	v, err := h.link.RevokeCredential(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	loc, err := locationResponse(c.UserContext(), h.store, v)
	if err != nil {
		return err
	}
	return c.JSON(loc)
}
