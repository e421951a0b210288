package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
	"github.com/panelsync/panelsync/realtime"
	"github.com/panelsync/panelsync/syncer/importfile"
)

// benchImportControl is the control file of the bench's uploads: the
// location column GenerateCSV writes, and the master code protected, as
// integrators' control files have it.
const benchImportControl = `{"location_column":"site","protected_user_numbers":[1]}`

// benchImportProtected is the user the control file protects; the
// simulated panels protect it too and always have one.
const benchImportProtected = 1

// parseRepeats is how many times the parse part parses its file; the
// median of them is reported.
const parseRepeats = 5

// importBenchConfig is what the import part of bench import is asked.
type importBenchConfig struct {
	locations, users, workers, runs int
	latency                         time.Duration
	databaseURL, cpuProfile         string
}

// importTiming is one timed import.
type importTiming struct {
	// post is how long the upload took to be answered; finished is from
	// the upload's start to its batch.finished event.
	post, finished time.Duration
	summary        string
	// added, updated and removed sum the runs' changes to the record.
	added, updated, removed int
	// The runs' first and last starts and finishes, from the upload's
	// start, as the runs recorded them: where the time between the upload
	// and batch.finished went.
	firstStart, lastStart, firstFinish, lastFinish time.Duration
	// runP50 and runMax are how long the runs took from start to finish.
	runP50, runMax time.Duration
	// nodeCPU is the CPU time this process spent from the upload to
	// batch.finished; machineBusy is the share of all the machine's CPUs
	// busy meanwhile, or negative when it cannot be read.
	nodeCPU     time.Duration
	machineBusy float64
}

// benchImport times a user import applied across many locations: a data
// file listing every location's users, uploaded once, from the upload to
// the batch.finished event, beside the bound ceil(N/C) round trips of one
// users.put and one read-back each; then parsing and validating a large
// file on its own.
func benchImport(ctx context.Context, env cmdEnv, args []string) error {
	fs := flag.NewFlagSet("bench import", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var cfg importBenchConfig
	fs.IntVar(&cfg.locations, "locations", 100, "locations, each with a simulated panel")
	fs.IntVar(&cfg.users, "users", 50, "users per location in the data file; each panel starts with as many of its own")
	fs.DurationVar(&cfg.latency, "latency", 50*time.Millisecond, "how long each panel takes to answer")
	fs.IntVar(&cfg.workers, "workers", 32, "sync runs in flight (C)")
	fs.IntVar(&cfg.runs, "runs", 3, "timed imports, each of a file that changes every user")
	fs.StringVar(&cfg.databaseURL, "database-url", env.getenv("PANELSYNC_DATABASE_URL"), "MySQL DSN of a scratch database; empty uses a fresh SQLite file")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed imports to this file")
	parseRows := fs.Int("parse-rows", importfile.MaxDataRows, "rows of the file parsed and validated on its own; 0 skips it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// A simulated panel holds at most sim.MaxUsers users, and an import
	// adds its users before it removes the panel's own, which are numbered
	// with gaps: a third of that bound leaves room for both at once.
	const maxUsers = sim.MaxUsers / 3
	switch {
	case cfg.locations < 1 || cfg.locations > 19000:
		return errors.New("--locations must be 1..19000")
	case cfg.users < 1 || cfg.users > maxUsers:
		return fmt.Errorf("--users must be 1..%d", maxUsers)
	case cfg.locations*cfg.users > importfile.MaxDataRows:
		return fmt.Errorf("--locations × --users must be at most %d, the most rows an import takes", importfile.MaxDataRows)
	case cfg.workers < 1 || cfg.workers > 1024:
		return errors.New("--workers must be 1..1024")
	case cfg.runs < 1 || cfg.runs > 100:
		return errors.New("--runs must be 1..100")
	case cfg.latency < 0:
		return errors.New("--latency must not be negative")
	case *parseRows < 0 || *parseRows > importfile.MaxDataRows:
		return fmt.Errorf("--parse-rows must be 0..%d", importfile.MaxDataRows)
	}
	if err := raiseFileLimit(uint64(cfg.locations) + 512); err != nil {
		return fmt.Errorf("need %d open files: %w", cfg.locations+512, err)
	}

	// The node and its panels are gone before the parse part starts, so
	// that the peak RSS is the import's and the parse has the machine to
	// itself.
	timings, fileBytes, err := timeImports(ctx, env, cfg)
	if err != nil {
		return err
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)

	backend := "sqlite"
	if cfg.databaseURL != "" {
		backend = "mysql"
	}
	// Each location needs at least one users.put per MaxUsersPerPut users
	// and one read-back, and C locations run at once.
	rounds := (cfg.locations + cfg.workers - 1) / cfg.workers
	puts := (cfg.users + panel.MaxUsersPerPut - 1) / panel.MaxUsersPerPut
	bound := time.Duration(rounds*(puts+1)) * cfg.latency
	fmt.Fprintf(env.stdout, "bench import: %d locations × %d users (%d rows, %d KB CSV), applied, panels answer in %s, C=%d, %s, %d CPUs\n",
		cfg.locations, cfg.users, cfg.locations*cfg.users, fileBytes/1024, cfg.latency, cfg.workers, backend, numCPU())
	fmt.Fprintf(env.stdout, "  bound ceil(%d/%d) × (%d users.put + 1 read-back) × %s = %s; target ≤ 2× = %s\n",
		cfg.locations, cfg.workers, puts, cfg.latency, bound, 2*bound)
	// The target is timed to the last run's finish, as the runs recorded
	// it; batch.finished follows once a node next looks at the batch.
	posts := make([]time.Duration, len(timings))
	totals := make([]time.Duration, len(timings))
	batches := make([]time.Duration, len(timings))
	for i, t := range timings {
		posts[i], totals[i], batches[i] = t.post, t.lastFinish, t.finished
		fmt.Fprintf(env.stdout, "  import %d: POST answered in %s; last run finished after %s (%s); batch.finished after %s: %s; record +%d ~%d -%d users, matches the file\n",
			i+1, ms(t.post), t.lastFinish.Round(time.Millisecond), ratio(t.lastFinish, bound), t.finished.Round(time.Millisecond), t.summary, t.added, t.updated, t.removed)
		fmt.Fprintf(env.stdout, "    runs started %s to %s and finished %s to %s after the upload began; each took p50 %s, max %s\n",
			t.firstStart.Round(time.Millisecond), t.lastStart.Round(time.Millisecond), t.firstFinish.Round(time.Millisecond), t.lastFinish.Round(time.Millisecond),
			t.runP50.Round(time.Millisecond), t.runMax.Round(time.Millisecond))
		busy := "unknown"
		if t.machineBusy >= 0 {
			busy = fmt.Sprintf("%.0f%%", 100*t.machineBusy)
		}
		fmt.Fprintf(env.stdout, "    node CPU %s (%.2f cores); the machine's %d CPUs were %s busy\n",
			t.nodeCPU.Round(time.Millisecond), t.nodeCPU.Seconds()/t.finished.Seconds(), numCPU(), busy)
	}
	med := median(totals)
	target := "no target without latency"
	if bound > 0 {
		target = verdict(med <= 2*bound)
	}
	fmt.Fprintf(env.stdout, "  median of %d: POST %s; last run finished after %s (%s): %s; batch.finished after %s\n",
		len(timings), ms(median(posts)), med.Round(time.Millisecond), ratio(med, bound), target, median(batches).Round(time.Millisecond))
	fmt.Fprintf(env.stdout, "  node peak RSS %d MB (the panels run in a helper process)\n", ru.Maxrss/1024)

	if *parseRows > 0 {
		return benchParse(env, *parseRows)
	}
	return nil
}

// timeImports seeds the locations and their panels, waits for the
// panels' first syncs, and times cfg.runs imports one after another,
// each verified against its file. It returns the timings and the size of
// the data file.
func timeImports(ctx context.Context, env cmdEnv, cfg importBenchConfig) ([]importTiming, int, error) {
	a, base, stop, err := benchNode(ctx, cfg.databaseURL, cfg.workers)
	if err != nil {
		return nil, 0, err
	}
	defer stop()
	seedStart := time.Now()
	seed, err := seedBench(ctx, a, base, "Importer", cfg.locations, cfg.users)
	if err != nil {
		return nil, 0, err
	}
	// Every run's file has the same site names, which depend on a
	// location's place in the file alone; each seed changes every user.
	file, err := makeBenchImportFile(cfg.locations, cfg.users, 1)
	if err != nil {
		return nil, 0, err
	}
	ids, err := prepareImportLocations(ctx, a, seed, file.sites)
	if err != nil {
		return nil, 0, err
	}
	stopPanels, err := startBenchPanels(ctx, env, a, seed, cfg.latency)
	if err != nil {
		return nil, 0, err
	}
	defer stopPanels()
	if err := waitFirstSyncs(ctx, a, seed.AccountID, 5*time.Minute); err != nil {
		return nil, 0, err
	}
	fmt.Fprintf(env.stderr, "seeded %d locations, linked their panels and synced their users in %s\n", cfg.locations, time.Since(seedStart).Round(time.Second))

	tokens, err := a.Auth().Login(ctx, seed.Email, seed.Password, "127.0.0.1")
	if err != nil {
		return nil, 0, err
	}
	// batch.finished events arrive here from the bus, as every node's
	// clients get them, by batch id.
	finished := make(chan batchFinished, cfg.runs+16)
	unsubscribe, err := realtime.SubscribeAll(a.Bus(), func(e realtime.Event) {
		if e.Type != models.EventBatchFinished {
			return
		}
		var data struct {
			BatchID string `json:"batch_id"`
		}
		_ = json.Unmarshal(e.Data, &data)
		finished <- batchFinished{id: data.BatchID, summary: e.Message, at: time.Now()}
	})
	if err != nil {
		return nil, 0, err
	}
	defer unsubscribe()

	stopProfile, err := startCPUProfile(cfg.cpuProfile)
	if err != nil {
		return nil, 0, err
	}
	defer stopProfile()
	timings := make([]importTiming, 0, cfg.runs)
	size := len(file.data)
	for i := range cfg.runs {
		if i > 0 {
			if file, err = makeBenchImportFile(cfg.locations, cfg.users, int64(i+1)); err != nil {
				return nil, 0, err
			}
		}
		t, err := timeOneImport(ctx, a, base, tokens.AccessToken, file, ids, finished)
		if err != nil {
			return nil, 0, fmt.Errorf("import %d: %w", i+1, err)
		}
		fmt.Fprintf(env.stderr, "import %d: batch.finished after %s\n", i+1, t.finished.Round(time.Millisecond))
		timings = append(timings, t)
	}
	return timings, size, nil
}

// batchFinished is one batch.finished event, and when it arrived.
type batchFinished struct {
	id, summary string
	at          time.Time
}

// timeOneImport uploads one file to every location, waits for its batch
// to finish, and checks that every run succeeded and that the record now
// holds the file's users.
func timeOneImport(ctx context.Context, a *app.App, base, token string, f benchImportFile, ids map[string]string, finished <-chan batchFinished) (importTiming, error) {
	body, contentType, err := importBody(f.data)
	if err != nil {
		return importTiming{}, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/imports", bytes.NewReader(body))
	if err != nil {
		return importTiming{}, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	cpuBefore, machineBefore := processCPU(), readMachineCPU()
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return importTiming{}, err
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t := importTiming{post: time.Since(start)}
	if resp.StatusCode != http.StatusAccepted {
		return importTiming{}, fmt.Errorf("POST /v1/imports answered %d: %s", resp.StatusCode, answer)
	}
	var started struct {
		Batch struct {
			ID string `json:"id"`
		} `json:"batch"`
	}
	if err := json.Unmarshal(answer, &started); err != nil || started.Batch.ID == "" {
		return importTiming{}, fmt.Errorf("POST /v1/imports answered without a batch: %s", answer)
	}
	timeout := time.After(30 * time.Minute)
	for done := false; !done; {
		select {
		case ev := <-finished:
			if ev.id == started.Batch.ID {
				t.finished, t.summary, done = ev.at.Sub(start), ev.summary, true
			}
			t.nodeCPU, t.machineBusy = processCPU()-cpuBefore, readMachineCPU().busySince(machineBefore)
		case <-timeout:
			return importTiming{}, fmt.Errorf("no batch.finished for batch %s within 30 minutes", started.Batch.ID)
		case <-ctx.Done():
			return importTiming{}, ctx.Err()
		}
	}
	if err := checkImportRuns(ctx, a, started.Batch.ID, len(ids), start, &t); err != nil {
		return importTiming{}, err
	}
	if err := checkImportRecord(ctx, a, f, ids); err != nil {
		return importTiming{}, err
	}
	return t, nil
}

// checkImportRuns fails unless the batch has one succeeded run per
// location, and sums their changes into t.
func checkImportRuns(ctx context.Context, a *app.App, batchID string, locations int, start time.Time, t *importTiming) error {
	var runs []models.Run
	if err := a.Store().DB().WithContext(ctx).Select("id", "location_id", "state", "error_code", "error_message", "added", "updated", "removed", "started_at", "finished_at").
		Where("batch_id = ?", batchID).Find(&runs).Error; err != nil {
		return err
	}
	if len(runs) != locations {
		return fmt.Errorf("batch %s has %d runs, not one for each of the %d locations", batchID, len(runs), locations)
	}
	var bad []string
	var starts, finishes, took []time.Duration
	for _, r := range runs {
		if r.StartedAt != nil && r.FinishedAt != nil {
			starts = append(starts, r.StartedAt.Sub(start))
			finishes = append(finishes, r.FinishedAt.Sub(start))
			took = append(took, r.FinishedAt.Sub(*r.StartedAt))
		}
		if r.State != models.RunSucceeded {
			bad = append(bad, fmt.Sprintf("run %s at %s %s (%s: %s)", r.ID, r.LocationID, r.State, r.ErrorCode, r.ErrorMessage))
		}
		t.added += r.Added
		t.updated += r.Updated
		t.removed += r.Removed
	}
	if len(starts) > 0 {
		t.firstStart, t.lastStart = slices.Min(starts), slices.Max(starts)
		t.firstFinish, t.lastFinish = slices.Min(finishes), slices.Max(finishes)
		t.runP50, t.runMax = percentile(took, 50), slices.Max(took)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d runs did not succeed: %s", len(bad), len(runs), strings.Join(bad[:min(len(bad), 5)], "; "))
	}
	return nil
}

// checkImportRecord fails unless every location's record of its panel's
// users, which is what the import read back from the panel, is the
// file's users plus the protected master.
func checkImportRecord(ctx context.Context, a *app.App, f benchImportFile, ids map[string]string) error {
	records, err := importfile.Parse(f.data, importfile.FormatCSV, importfile.Control{LocationColumn: "site"})
	if err != nil {
		return err
	}
	want := make(map[string]map[int]importfile.Record, len(ids))
	for _, rec := range records {
		loc := ids[rec.Location]
		if want[loc] == nil {
			want[loc] = map[int]importfile.Record{}
		}
		want[loc][rec.UserNumber] = rec
	}
	var got []models.PanelUser
	for list := range slices.Chunk(slices.Collect(maps.Values(ids)), 500) {
		var chunk []models.PanelUser
		if err := a.Store().DB().WithContext(ctx).Where("location_id IN ?", list).Find(&chunk).Error; err != nil {
			return err
		}
		got = append(got, chunk...)
	}
	var problems []string
	seen := map[string]int{}
	for _, u := range got {
		if u.UserNumber == benchImportProtected {
			seen[u.LocationID+"/protected"]++
			continue
		}
		rec, ok := want[u.LocationID][u.UserNumber]
		if !ok {
			problems = append(problems, fmt.Sprintf("location %s holds user %d, which the file does not list", u.LocationID, u.UserNumber))
			continue
		}
		seen[u.LocationID]++
		switch {
		case u.Name != rec.Name, u.Email != models.NormalizeEmail(rec.Email), u.Authority != rec.Authority,
			u.AccessSchedule != rec.Schedule, u.Partitions != "1", u.ExternalID != rec.ExternalID:
			problems = append(problems, fmt.Sprintf("location %s user %d is %q <%s> %s [%s] %q %s, the file says %q <%s> %s [1] %q %s",
				u.LocationID, u.UserNumber, u.Name, u.Email, u.Authority, u.Partitions, u.AccessSchedule, u.ExternalID,
				rec.Name, rec.Email, rec.Authority, rec.Schedule, rec.ExternalID))
		case rec.Code != "" && !u.HasCode:
			problems = append(problems, fmt.Sprintf("location %s user %d has no code, but the file gives one", u.LocationID, u.UserNumber))
		}
	}
	for loc, users := range want {
		if seen[loc] != len(users) {
			problems = append(problems, fmt.Sprintf("location %s holds %d of the file's %d users", loc, seen[loc], len(users)))
		}
		if seen[loc+"/protected"] != 1 {
			problems = append(problems, fmt.Sprintf("location %s lost its protected user %d", loc, benchImportProtected))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("the record does not match the file in %d ways: %s", len(problems), strings.Join(problems[:min(len(problems), 5)], "; "))
	}
	return nil
}

// benchImportFile is a generated data file fitted to the simulated
// panels, with its locations' names in the order the file lists them.
type benchImportFile struct {
	data  []byte
	sites []string
}

// makeBenchImportFile generates locations × users rows and gives every
// user partition 1 alone: simulated panels have one to four partitions,
// and a user put with a partition the panel lacks is refused, which is
// not what this bench measures.
func makeBenchImportFile(locations, users int, seed int64) (benchImportFile, error) {
	rows, err := csv.NewReader(bytes.NewReader(importfile.GenerateCSV(locations*users, locations, seed))).ReadAll()
	if err != nil {
		return benchImportFile{}, err
	}
	site, parts := slices.Index(rows[0], "site"), slices.Index(rows[0], "partitions")
	if site < 0 || parts < 0 {
		return benchImportFile{}, fmt.Errorf("generated file lacks the site or partitions column: %q", rows[0])
	}
	var f benchImportFile
	for _, row := range rows[1:] {
		row[parts] = "1"
		if len(f.sites) == 0 || f.sites[len(f.sites)-1] != row[site] {
			f.sites = append(f.sites, row[site])
		}
	}
	if len(f.sites) != locations {
		return benchImportFile{}, fmt.Errorf("generated file names %d locations, not %d", len(f.sites), locations)
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.WriteAll(rows); err != nil {
		return benchImportFile{}, err
	}
	f.data = buf.Bytes()
	return f, nil
}

// prepareImportLocations names the seeded locations as the file does and
// lets each apply an import that changes every user, and returns the
// locations' ids by name. It runs before the panels link, so no sync
// writes a location meanwhile.
func prepareImportLocations(ctx context.Context, a *app.App, seed app.SeedResult, sites []string) (map[string]string, error) {
	actor := models.SystemActor(seed.AccountID, "bench")
	// Every user changes, far over the default safety threshold; the
	// longest interval keeps scheduled syncs out of the timings.
	hundred, on, interval := 100, true, models.MaxSyncIntervalMinutes
	ids := make(map[string]string, len(sites))
	for i, p := range seed.Panels.Panels {
		name := sites[i]
		_, err := a.Store().UpdateLocation(ctx, actor, p.LocationID, models.LocationSettings{
			Name: &name, AutoApply: &on, SafetyThresholdPercent: &hundred, SyncIntervalMinutes: &interval,
		})
		if err != nil {
			return nil, err
		}
		ids[name] = p.LocationID
	}
	return ids, nil
}

// waitFirstSyncs waits until every location of the account has had its
// users synced and no run is queued or running, so that what a benchmark
// times next runs alone.
func waitFirstSyncs(ctx context.Context, a *app.App, accountID string, limit time.Duration) error {
	db := a.Store().DB().WithContext(ctx)
	for deadline := time.Now().Add(limit); ; {
		var unsynced, open int64
		if err := db.Model(&models.Location{}).Where("account_id = ? AND users_synced_at IS NULL", accountID).Count(&unsynced).Error; err != nil {
			return err
		}
		if err := db.Model(&models.Run{}).Where("account_id = ? AND state IN ?", accountID, []models.RunState{models.RunQueued, models.RunRunning}).Count(&open).Error; err != nil {
			return err
		}
		if unsynced == 0 && open == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s, %d locations still have no users synced and %d runs are open", limit, unsynced, open)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// importBody is the multipart upload of a data file for every location,
// with the bench's control file.
func importBody(data []byte) ([]byte, string, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for _, part := range []struct {
		name, file, contentType string
		body                    []byte
	}{
		{"data", "users.csv", "text/csv", data},
		{"control", "control.json", "application/json", []byte(benchImportControl)},
	} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, part.name, part.file))
		h.Set("Content-Type", part.contentType)
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, "", err
		}
		if _, err := pw.Write(part.body); err != nil {
			return nil, "", err
		}
	}
	if err := w.WriteField("scope", models.ScopeAll); err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return body.Bytes(), w.FormDataContentType(), nil
}

// benchParse times what an upload does to its files before it touches
// the database: the control file parsed, the data file parsed and
// validated, then its codes masked for keeping.
func benchParse(env cmdEnv, rows int) error {
	const locations = 100
	data := importfile.GenerateCSV(rows, locations, 1)
	control := []byte(benchImportControl)
	parse := func() (time.Duration, error) {
		start := time.Now()
		format, err := importfile.DetectFormat("text/csv", "users.csv", data[:min(len(data), 512)])
		if err != nil {
			return 0, err
		}
		ctl, err := importfile.ParseControl(control)
		if err != nil {
			return 0, err
		}
		records, err := importfile.Parse(data, format, ctl)
		if err != nil {
			return 0, err
		}
		if len(records) != rows {
			return 0, fmt.Errorf("parsed %d records of %d rows", len(records), rows)
		}
		return time.Since(start), nil
	}
	mask := func() (time.Duration, error) {
		start := time.Now()
		masked, err := importfile.MaskCodes(data, importfile.FormatCSV, importfile.Control{LocationColumn: "site"})
		if err != nil {
			return 0, err
		}
		if bytes.Equal(masked, data) {
			return 0, errors.New("masking the codes left the file as it was")
		}
		return time.Since(start), nil
	}
	// One pass of each first, to warm caches and grow the heap.
	if _, err := parse(); err != nil {
		return err
	}
	if _, err := mask(); err != nil {
		return err
	}
	parsed := make([]time.Duration, 0, parseRepeats)
	masked := make([]time.Duration, 0, parseRepeats)
	for range parseRepeats {
		d, err := parse()
		if err != nil {
			return err
		}
		parsed = append(parsed, d)
		if d, err = mask(); err != nil {
			return err
		}
		masked = append(masked, d)
	}
	// What one parse allocates, measured apart from the timed passes.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := parse(); err != nil {
		return err
	}
	runtime.ReadMemStats(&after)
	p, m := median(parsed), median(masked)
	fmt.Fprintf(env.stdout, "bench import: parse and validate %d rows (%.1f MB CSV, %d locations), median of %d: %s (%.0f rows/s, %.0f MB allocated); target < 1s: %s\n",
		rows, float64(len(data))/(1<<20), locations, parseRepeats, ms(p), float64(rows)/p.Seconds(),
		float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), verdict(p < time.Second))
	fmt.Fprintf(env.stdout, "  mask codes for keeping: median %s; parse and mask together %s\n", ms(m), ms(p+m))
	return nil
}

// median returns the middle duration, or the mean of the middle two.
func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio says how a duration compares with the bound.
func ratio(d, bound time.Duration) string {
	if bound <= 0 {
		return "no bound without latency"
	}
	return fmt.Sprintf("%.2f× the bound", float64(d)/float64(bound))
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "OVER"
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the machine's CPU time so far, in clock ticks, as
// /proc/stat counts it: all of it, and the part spent idle or waiting for
// I/O. The database server and the panels' helper process use the same
// CPUs as the node, so whether they were all busy tells a slow import
// held up by the machine from one held up by waiting.
type machineCPU struct {
	total, idle uint64
	ok          bool
}

func readMachineCPU() machineCPU {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[0] != "cpu" {
		return machineCPU{}
	}
	var m machineCPU
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return machineCPU{}
		}
		// Guest time is counted in user time already.
		if i >= 8 {
			break
		}
		m.total += v
		if i == 3 || i == 4 {
			m.idle += v
		}
	}
	m.ok = true
	return m
}

// busySince is the share of the machine's CPU time busy since before, or
// -1 when either reading failed or no time passed.
func (m machineCPU) busySince(before machineCPU) float64 {
	if !m.ok || !before.ok || m.total <= before.total {
		return -1
	}
	total := float64(m.total - before.total)
	return (total - float64(m.idle-before.idle)) / total
}
