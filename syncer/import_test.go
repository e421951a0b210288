package syncer_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// Codes the import tests upload. They are distinctive and as long as codes
// go, so finding one anywhere it must not be (even among the digits of a
// stored time) is not a coincidence.
const (
	codeAnna  = "73914682"
	codeBruno = "58291437"
	codeCarla = "60441759"
)

var secretCodes = []string{codeAnna, codeBruno, codeCarla}

// importControl maps the integrator's column names and protects the
// panel's master code.
const importControl = `{"columns":{"PIN":"code","Full Name":"name","Level":"authority"},"authority":{"Manager":"master","Staff":"standard"},"protected_user_numbers":[1],"defaults":{"partitions":[1]}}`

// newUser is the user number imports add: simulated panels number their
// users from 1 with a few gaps, never this high.
const newUser = 99

// keptUsers are the two users after the master that the test imports keep.
func keptUsers(p *sim.Panel) (int, int) {
	nums := panelNumbers(p)
	return nums[1], nums[2]
}

// keepTwoAddOne is a data file that keeps the panel's second and third
// users (renamed, with new codes), adds user 99 and so removes every other
// user but the protected master.
func keepTwoAddOne(p *sim.Panel) []byte {
	a, b := keptUsers(p)
	return []byte(fmt.Sprintf("Full Name,user_number,Level,PIN,external_id,email\r\n"+
		"Anna Alves,%d,Staff,%s,EMP-A,anna@example.com\r\n"+
		"Bruno Braga,%d,Manager,%s,EMP-B,\r\n"+
		"Carla Costa,%d,Staff,%s,EMP-C,carla@example.com\r\n", a, codeAnna, b, codeBruno, newUser, codeCarla))
}

func dataFile(body []byte) apptest.ImportFile {
	return apptest.ImportFile{Part: "data", Filename: "people.csv", ContentType: "text/csv", Body: body}
}

func controlFile(body string) apptest.ImportFile {
	return apptest.ImportFile{Part: "control", Filename: "control.json", ContentType: "application/json", Body: []byte(body)}
}

// importRun uploads an import for the test's location and returns its
// run once it stops moving.
func importRun(t *testing.T, tb *testBundle, token string, files ...apptest.ImportFile) apptest.Run {
	t.Helper()
	r := tb.node.Upload(t, token, files, url.Values{"location_ids": {tb.loc.Location.ID}})
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var started struct {
		Batch struct {
			ID    string `json:"id"`
			Total int    `json:"total"`
		} `json:"batch"`
		Message string `json:"message"`
	}
	r.JSON(t, &started)
	if started.Message != "User import received" || started.Batch.Total != 1 {
		t.Fatalf("upload answered %s", r.Body)
	}
	var runs []apptest.Run
	for _, run := range runsAt(t, tb) {
		if run.BatchID != nil && *run.BatchID == started.Batch.ID {
			runs = append(runs, run)
		}
	}
	if len(runs) != 1 || runs[0].Kind != "import" || runs[0].ImportID == nil {
		t.Fatalf("import runs %+v", runs)
	}
	return tb.node.WaitRun(t, token, runs[0].ID)
}

func panelUser(p *sim.Panel, number int) (panel.User, bool) {
	for _, u := range p.Users() {
		if u.Number == number {
			return u, true
		}
	}
	return panel.User{}, false
}

func panelNumbers(p *sim.Panel) []int {
	var out []int
	for _, u := range p.Users() {
		out = append(out, u.Number)
	}
	slices.Sort(out)
	return out
}

// changesOf reads a run's changes download.
func changesOf(t *testing.T, tb *testBundle, runID string) []map[string]any {
	t.Helper()
	r := tb.node.Do(t, "GET", "/v1/runs/"+runID+"/changes", tb.token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("changes: %d %s", r.Status, r.Body)
	}
	var out struct {
		Changes []map[string]any `json:"changes"`
	}
	r.JSON(t, &out)
	return out.Changes
}

// logBuffer collects a node's logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestImport_HeldAppliedReappliedAndCodesNeverLeave walks an integrator's
// upload through the hold, the downloads, Apply, and both kinds of
// re-apply, and then looks for the uploaded codes everywhere they must not
// be: responses, events, the audit log, logs and the database.
func TestImport_HeldAppliedReappliedAndCodesNeverLeave(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			logs := &logBuffer{}
			cfg := apptest.Config(t, b)
			cfg.LogLevel = "debug"
			n := apptest.StartLogged(t, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			acct, token := n.Account(t, "Acme Alarms")
			loc, cred := n.Location(t, acct.ID, "Main Street")
			p, _ := n.Panel(t, cred, sim.Options{Users: 10, Seed: 3})
			tb := &testBundle{node: n, token: token, acct: acct, loc: loc, cred: cred, panel: p}
			var seen []string // every body the API answered, to search for codes
			keep := func(r apptest.Response) apptest.Response { seen = append(seen, string(r.Body)); return r }

			first := n.FirstSync(t, token, loc.Location.ID)
			if first.State != "succeeded" || first.Changes.Added != 10 {
				t.Fatalf("first sync %+v", first)
			}
			// The users the import removes that had a code: a re-apply of
			// the panel read can put them back, but not their codes.
			kept1, kept2 := keptUsers(p)
			hadCode := 0
			for _, u := range p.Users() {
				if u.Number != 1 && u.Number != kept1 && u.Number != kept2 && u.HasCode {
					hadCode++
				}
			}
			if hadCode == 0 {
				t.Fatal("the simulated panel's users the import removes have no codes; pick another seed")
			}
			settle(t, tb, map[string]any{"safety_threshold_percent": 10, "report_emails": []string{"alarms@example.com"}})

			held := importRun(t, tb, token, dataFile(keepTwoAddOne(tb.panel)), controlFile(importControl))
			if held.State != "awaiting_apply" || held.Changes.Added != 1 || held.Changes.Updated != 2 || held.Changes.Removed != 7 {
				t.Fatalf("import %+v, want held with 1 added, 2 updated, 7 removed", held)
			}
			if got := remoteUsers(t, tb); got != 10 {
				t.Fatalf("a held import changed the record: %d users", got)
			}
			if s := locationStatus(t, tb); s != "held" {
				t.Fatalf("status %q, want held", s)
			}
			if nums := panelNumbers(p); len(nums) != 10 {
				t.Fatalf("a held import reached the panel: users %v", nums)
			}
			events := n.Events(t, token, loc.Location.ID)
			if last := events[len(events)-1]; last.Type != "sync.held" || !strings.Contains(last.Message, "User import held") {
				t.Fatalf("last event %+v, want sync.held", last)
			}

			// The files come back as uploaded, codes masked.
			data := keep(n.Do(t, "GET", "/v1/runs/"+held.ID+"/data", token, nil))
			rows, err := csv.NewReader(bytes.NewReader(data.Body)).ReadAll()
			if data.Status != http.StatusOK || err != nil || len(rows) != 4 || rows[0][3] != "PIN" || rows[1][3] != "****" || rows[1][0] != "Anna Alves" {
				t.Fatalf("data download: %d %q (%v)", data.Status, data.Body, err)
			}
			if ct := data.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
				t.Fatalf("data download content type %q", ct)
			}
			asJSON := keep(n.Do(t, "GET", "/v1/runs/"+held.ID+"/data?format=json", token, nil))
			if asJSON.Status != http.StatusOK || !strings.Contains(string(asJSON.Body), `"Carla Costa"`) {
				t.Fatalf("data as JSON: %d %s", asJSON.Status, asJSON.Body)
			}
			control := keep(n.Do(t, "GET", "/v1/runs/"+held.ID+"/control", token, nil))
			if control.Status != http.StatusOK || string(control.Body) != importControl {
				t.Fatalf("control download: %d %s", control.Status, control.Body)
			}
			keep(n.Do(t, "GET", "/v1/runs/"+held.ID+"/changes", token, nil))

			// One open import per location.
			again := keep(n.Upload(t, token, []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel)), controlFile(importControl)}, url.Values{"location_ids": {loc.Location.ID}}))
			if again.Status != http.StatusConflict || !strings.Contains(string(again.Body), held.ID) {
				t.Fatalf("second upload while held: %d %s", again.Status, again.Body)
			}

			// The report e-mails hear of the hold however quickly someone
			// acts on it: the notice is written with the hold.
			applied := keep(n.Do(t, "POST", "/v1/runs/"+held.ID+"/apply", token, nil))
			if applied.Status != http.StatusOK {
				t.Fatalf("apply: %d %s", applied.Status, applied.Body)
			}
			done := n.WaitRun(t, token, held.ID)
			if done.State != "succeeded" {
				t.Fatalf("applied import %+v", done)
			}
			if got := panelNumbers(p); !slices.Equal(got, []int{1, kept1, kept2, newUser}) {
				t.Fatalf("panel users after apply %v, want the protected master and the file's three", got)
			}
			for number, code := range map[int]string{kept1: codeAnna, kept2: codeBruno, newUser: codeCarla} {
				if u, _ := panelUser(p, number); u.Code != code {
					t.Fatalf("user %d holds a code other than the file's", number)
				}
			}
			if u, _ := panelUser(p, kept2); u.Authority != panel.AuthorityMaster || u.Name != "Bruno Braga" {
				t.Fatalf("user %d on the panel %+v, want the file's name and mapped authority", kept2, u)
			}
			if got := remoteUsers(t, tb); got != 4 {
				t.Fatalf("record after apply holds %d users, want 4", got)
			}
			if s := locationStatus(t, tb); s != "ok" {
				t.Fatalf("status after apply %q", s)
			}
			lookup := keep(n.Do(t, "GET", "/v1/people?q=EMP-C", token, nil))
			if lookup.Status != http.StatusOK || !strings.Contains(string(lookup.Body), `"external_id":"EMP-C"`) || !strings.Contains(string(lookup.Body), `"has_code":true`) {
				t.Fatalf("lookup of the imported person: %d %s", lookup.Status, lookup.Body)
			}

			// Re-apply of the panel read before it restores every user but
			// their codes.
			settle(t, tb, map[string]any{"safety_threshold_percent": 100})
			rf := keep(n.Do(t, "POST", "/v1/runs/"+first.ID+"/reapply", token, nil))
			if rf.Status != http.StatusAccepted {
				t.Fatalf("reapply of the first sync: %d %s", rf.Status, rf.Body)
			}
			var started apptest.SyncResult
			rf.JSON(t, &started)
			if started.Run.Trigger != "reapply" || started.Run.ReappliedFrom == nil || *started.Run.ReappliedFrom != first.ID {
				t.Fatalf("reapply run %+v", started.Run)
			}
			restored := n.WaitRun(t, token, started.Run.ID)
			if restored.State != "succeeded" {
				t.Fatalf("reapply %+v", restored)
			}
			if got := panelNumbers(p); len(got) != 10 || slices.Contains(got, newUser) {
				t.Fatalf("panel users after reapply %v, want the ten first read", got)
			}
			missing := 0
			for _, c := range changesOf(t, tb, restored.ID) {
				if c["action"] == "code_missing" {
					missing++
					if u, _ := panelUser(p, int(c["number"].(float64))); u.HasCode {
						t.Fatalf("user %v listed as code_missing has a code on the panel", c["number"])
					}
				}
			}
			if missing != hadCode {
				t.Fatalf("%d users listed code_missing, want the %d put back that had a code", missing, hadCode)
			}
			events = n.Events(t, token, loc.Location.ID)
			if last := events[len(events)-1]; last.Type != "sync.succeeded" || !strings.Contains(last.Message, fmt.Sprintf("%d users need a new code", hadCode)) {
				t.Fatalf("last event %+v, want the count of users needing a code", last)
			}

			// Re-apply of the import brings its codes back, even one
			// changed at the keypad since.
			if err := p.PutUser(panel.User{Number: newUser, Name: "Carla Costa", Authority: panel.AuthorityStandard, Partitions: []int{1}, Code: "1111"}); err != nil {
				t.Fatal(err)
			}
			ri := keep(n.Do(t, "POST", "/v1/runs/"+held.ID+"/reapply", token, nil))
			if ri.Status != http.StatusAccepted {
				t.Fatalf("reapply of the import: %d %s", ri.Status, ri.Body)
			}
			ri.JSON(t, &started)
			if r := n.WaitRun(t, token, started.Run.ID); r.State != "succeeded" {
				t.Fatalf("reapply of the import %+v", r)
			}
			if got := panelNumbers(p); !slices.Equal(got, []int{1, kept1, kept2, newUser}) {
				t.Fatalf("panel users after re-applying the import %v", got)
			}
			if u, _ := panelUser(p, newUser); u.Code != codeCarla {
				t.Fatal("re-applying the import did not restore the new user's code")
			}

			// Nothing a person or a log can read holds a code.
			for _, path := range []string{"/v1/runs?location_id=" + loc.Location.ID, "/v1/events?limit=1000", "/v1/audit?limit=200",
				"/v1/locations/" + loc.Location.ID + "/users", "/v1/runs/" + started.Run.ID + "/data", "/v1/runs/" + started.Run.ID + "/data?format=csv",
				"/v1/runs/" + started.Run.ID + "/changes", "/v1/runs/" + held.ID + "/changes"} {
				keep(n.Do(t, "GET", path, token, nil))
			}
			for _, body := range seen {
				for _, code := range secretCodes {
					if strings.Contains(body, code) {
						t.Fatalf("a response holds an uploaded code: %s", body)
					}
				}
			}
			for _, code := range secretCodes {
				if strings.Contains(logs.String(), code) {
					t.Fatal("the node logged an uploaded code")
				}
			}
			assertNoCodesStored(t, n.Store, cfg)

			// The report e-mails: one when the upload's only run was held,
			// one when its batch finished, one per re-apply.
			mails := waitReports(t, tb, 4)
			var subjects []string
			for _, m := range mails {
				for _, code := range secretCodes {
					if strings.Contains(m, code) {
						t.Fatal("a report mail holds an uploaded code")
					}
				}
				for line := range strings.SplitSeq(m, "\n") {
					if subject, ok := strings.CutPrefix(line, "Subject: "); ok {
						subjects = append(subjects, strings.TrimSpace(subject))
					}
				}
			}
			// The batch's summary waits for a look at the batch, so it may
			// come after the re-applies' reports.
			want := []string{
				"Main Street: re-apply succeeded",
				"Main Street: re-apply succeeded",
				"Selected locations: 0 succeeded, 1 held for apply (user import)",
				"Selected locations: 1 succeeded (user import)",
			}
			slices.Sort(subjects)
			if !slices.Equal(subjects, want) {
				t.Fatalf("report subjects %q, want %q", subjects, want)
			}
		})
	}
}

// assertNoCodesStored reads every row of every table the product writes
// and the SQLite file, looking for an uploaded code in the clear.
func assertNoCodesStored(t *testing.T, store *models.Store, cfg app.Config) {
	t.Helper()
	for _, table := range []string{"runs", "imports", "events", "audit_entries", "panel_users", "mails", "batches", "locations"} {
		rows, err := store.DB().Table(table).Rows()
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			values := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range values {
				ptrs[i] = &values[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range values {
				text := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					text = string(b)
				}
				for _, code := range secretCodes {
					if strings.Contains(text, code) {
						t.Fatalf("%s.%s holds an uploaded code in the clear", table, cols[i])
					}
				}
			}
		}
		rows.Close()
	}
	if cfg.DatabaseURL == "" {
		// The SQLite file and its write-ahead log are read as bytes.
		files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "*.db*"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, code := range secretCodes {
				if bytes.Contains(raw, []byte(code)) {
					t.Fatalf("%s holds an uploaded code in the clear", f)
				}
			}
		}
		if len(files) == 0 {
			t.Fatalf("no database file found in %s", cfg.DataDir)
		}
	}
}

func TestImport_BadFiles_AreRefusedWithEveryProblemAndStoreNothing(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 3}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		n.FirstSync(t, token, locID)
		ids := url.Values{"location_ids": {locID}}
		bad := []byte("name,user_number,authority,code\n" +
			"Anna,2,standard,1234\n" +
			"Bruno,abc,standard,\n" +
			"Carla,4,boss,12\n")
		r := n.Upload(t, token, []apptest.ImportFile{dataFile(bad)}, ids)
		var problem struct {
			Code   string `json:"code"`
			Errors []struct {
				File    string `json:"file"`
				Row     int    `json:"row"`
				Column  string `json:"column"`
				Message string `json:"message"`
			} `json:"errors"`
		}
		r.JSON(t, &problem)
		if r.Status != http.StatusBadRequest || problem.Code != "invalid_request" || len(problem.Errors) != 3 {
			t.Fatalf("bad data file: %d %s, want 400 with three problems", r.Status, r.Body)
		}
		want := map[string]bool{"3/user_number": true, "4/authority": true, "4/code": true}
		for _, e := range problem.Errors {
			if e.File != "data" || !want[fmt.Sprintf("%d/%s", e.Row, e.Column)] || e.Message == "" {
				t.Errorf("problem %+v is not one of %v", e, want)
			}
			if strings.Contains(e.Message, "12") && e.Column == "code" {
				t.Errorf("a problem quotes the code: %q", e.Message)
			}
		}

		cases := []struct {
			name   string
			files  []apptest.ImportFile
			fields url.Values
			status int
			want   string
		}{
			{"unknown control key", []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel)), controlFile(`{"colums":{}}`)}, ids, 400, `"file":"control"`},
			{"no data part", []apptest.ImportFile{controlFile(importControl)}, ids, 400, "the data file is required"},
			{"two data parts", []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel)), dataFile(keepTwoAddOne(tb.panel))}, ids, 400, "send one"},
			{"ids with scope all", []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel)), controlFile(importControl)}, url.Values{"location_ids": {locID}, "scope": {"all"}}, 400, "only go with scope locations"},
			{"unknown field", []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel))}, url.Values{"location_ids": {locID}, "dry_run": {"1"}}, 400, "unknown field"},
			{"unknown location", []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel)), controlFile(importControl)}, url.Values{"location_ids": {models.NewID()}}, 404, "not found"},
			{"location column naming no location", []apptest.ImportFile{
				dataFile([]byte("site,name,user_number\nElm Road,Anna,2\n")), controlFile(`{"location_column":"site"}`)}, url.Values{}, 400, `"column":"site"`},
			{"a spreadsheet", []apptest.ImportFile{{Part: "data", Filename: "people.xlsx", Body: []byte("PK\x03\x04")}}, ids, 400, "CSV"},
		}
		for _, tc := range cases {
			r := n.Upload(t, token, tc.files, tc.fields)
			if r.Status != tc.status || !strings.Contains(string(r.Body), tc.want) {
				t.Errorf("%s: %d %s, want %d with %q", tc.name, r.Status, r.Body, tc.status, tc.want)
			}
		}
		notMultipart := n.Do(t, "POST", "/v1/imports", token, map[string]string{"data": "x"})
		if notMultipart.Status != http.StatusUnsupportedMediaType {
			t.Errorf("JSON body: %d %s", notMultipart.Status, notMultipart.Body)
		}
		for _, table := range []any{&models.Import{}, &models.Batch{}} {
			var count int64
			n.Store.DB().Model(table).Count(&count)
			if count != 0 {
				t.Errorf("refused uploads stored %d rows of %T", count, table)
			}
		}
		var imports int64
		n.Store.DB().Model(&models.Run{}).Where("kind = ?", models.RunImport).Count(&imports)
		if imports != 0 {
			t.Errorf("refused uploads created %d import runs", imports)
		}
	})
}

func TestImport_PanelRefusingSomeUsers_FailsTheRunWithEachUsersError(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 4, Seed: 5}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		n.FirstSync(t, token, locID)
		settle(t, tb, map[string]any{"safety_threshold_percent": 100})
		master, _ := panelUser(tb.panel, 1)
		// The control file does not protect user 1, but the panel does.
		file := []byte("name,user_number,partitions,code\n" +
			"New Master,1,1,4321\n" +
			"Dana Dias,2,1,\n" +
			"Eva Esteves,3,1,\n" +
			"Filipe Faria,4,1,\n")
		run := importRun(t, tb, token, dataFile(file))
		if run.State != "failed" || run.Error == nil || run.Error.Code != "users_refused" || !strings.Contains(run.Error.Message, "user 1: protected") {
			t.Fatalf("import %+v, want failed users_refused naming user 1", run)
		}
		var failed []map[string]any
		for _, c := range changesOf(t, tb, run.ID) {
			if c["action"] == "failed" {
				failed = append(failed, c)
			}
		}
		if len(failed) != 1 || failed[0]["number"] != float64(1) || failed[0]["code"] != "protected" {
			t.Fatalf("failed users in the changes %v, want user 1 refused as protected", failed)
		}
		if u, _ := panelUser(tb.panel, 2); u.Name != "Dana Dias" {
			t.Fatalf("user 2 on the panel %+v: the users the panel took were not applied", u)
		}
		var users struct {
			Items []struct {
				Number int    `json:"number"`
				Name   string `json:"name"`
			} `json:"items"`
		}
		n.Do(t, "GET", "/v1/locations/"+locID+"/users", token, nil).JSON(t, &users)
		for _, u := range users.Items {
			if u.Number == 1 && u.Name != master.Name {
				t.Fatalf("the record took user 1 as %q although the panel refused it", u.Name)
			}
			if u.Number == 2 && u.Name != "Dana Dias" {
				t.Fatalf("the record holds user 2 as %q, not what the panel confirmed", u.Name)
			}
		}
		if s := locationStatus(t, tb); s != "sync_failure" {
			t.Fatalf("status %q, want sync_failure", s)
		}
		events := n.Events(t, token, locID)
		if last := events[len(events)-1]; last.Type != "sync.failed" || last.Severity != "error" {
			t.Fatalf("last event %+v, want the Sync Failure", last)
		}
	})
}

func TestImport_RunActions_StateTableAndWhoMayUpload(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 4, Seed: 9}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		first := n.FirstSync(t, token, locID)
		settle(t, tb, map[string]any{"auto_apply": false})
		held := importRun(t, tb, token, dataFile(keepTwoAddOne(tb.panel)), controlFile(importControl))
		if held.State != "awaiting_apply" {
			t.Fatalf("import with auto apply off %+v", held)
		}
		sealedCodes := func() []byte {
			var row struct{ Codes []byte }
			if err := n.Store.DB().Model(&models.Run{}).Select("codes").Where("id = ?", held.ID).Scan(&row).Error; err != nil {
				t.Fatal(err)
			}
			return row.Codes
		}
		if len(sealedCodes()) == 0 {
			t.Fatal("a held import keeps no sealed codes")
		}
		refresh := n.WaitRun(t, token, n.Sync(t, token, locID, "refresh").Run.ID)
		cases := []struct {
			action, runID string
			status        int
			code          string
		}{
			{"reapply", held.ID, 409, "invalid_state"},
			{"reapply", refresh.ID, 409, "invalid_state"},
			{"cancel", held.ID, 200, ""},
			{"apply", held.ID, 409, "invalid_state"},
			{"reapply", held.ID, 409, "invalid_state"},
			{"cancel", held.ID, 409, "invalid_state"},
		}
		for _, tc := range cases {
			r := n.Do(t, "POST", "/v1/runs/"+tc.runID+"/"+tc.action, token, nil)
			if r.Status != tc.status || (tc.code != "" && !strings.Contains(string(r.Body), `"code":"`+tc.code+`"`)) {
				t.Errorf("%s of %s: %d %s, want %d %s", tc.action, tc.runID, r.Status, r.Body, tc.status, tc.code)
			}
		}
		if len(sealedCodes()) != 0 {
			t.Fatal("a cancelled import still keeps its sealed codes")
		}
		if nums := panelNumbers(tb.panel); len(nums) != 4 {
			t.Fatalf("a cancelled import reached the panel: %v", nums)
		}
		// A cancelled import frees the location for the next upload.
		next := importRun(t, tb, token, dataFile(keepTwoAddOne(tb.panel)), controlFile(importControl))
		if next.State != "awaiting_apply" {
			t.Fatalf("upload after cancel %+v", next)
		}
		// A re-apply is refused while that import is open.
		if r := n.Do(t, "POST", "/v1/runs/"+first.ID+"/reapply", token, nil); r.Status != http.StatusConflict || !strings.Contains(string(r.Body), next.ID) {
			t.Fatalf("reapply while an import is held: %d %s", r.Status, r.Body)
		}

		member := n.Login(t, tb.acct.ID, models.RoleMember)
		ids := url.Values{"location_ids": {locID}}
		if r := n.Upload(t, member, []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel))}, ids); r.Status != http.StatusForbidden {
			t.Errorf("member upload: %d %s", r.Status, r.Body)
		}
		if r := n.Do(t, "POST", "/v1/runs/"+first.ID+"/reapply", member, nil); r.Status != http.StatusForbidden {
			t.Errorf("member reapply: %d %s", r.Status, r.Body)
		}
		syncKey := apiKeyWithScopes(t, tb, "sync")
		if r := n.Upload(t, syncKey, []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel))}, ids); r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "import scope") {
			t.Errorf("upload with a sync key: %d %s", r.Status, r.Body)
		}
		importKey := apiKeyWithScopes(t, tb, "import")
		n.Do(t, "POST", "/v1/runs/"+next.ID+"/cancel", token, nil)
		if r := n.Upload(t, importKey, []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel)), controlFile(importControl)}, ids); r.Status != http.StatusAccepted {
			t.Errorf("upload with an import key: %d %s", r.Status, r.Body)
		}
		var audit []models.AuditEntry
		n.Store.DB().Where("account_id = ? AND action = ?", tb.acct.ID, "import.create").Find(&audit)
		if len(audit) != 3 {
			t.Errorf("imports audited %d times, want 3", len(audit))
		}
	})
}

// apiKeyWithScopes creates an API key and returns its secret.
func apiKeyWithScopes(t *testing.T, tb *testBundle, scopes ...string) string {
	t.Helper()
	r := tb.node.Do(t, "POST", "/v1/api-keys", tb.token, map[string]any{"name": "integration " + strings.Join(scopes, "+"), "scopes": scopes})
	if r.Status != http.StatusCreated {
		t.Fatalf("create key: %d %s", r.Status, r.Body)
	}
	var out struct {
		Secret string `json:"secret"`
	}
	r.JSON(t, &out)
	if out.Secret == "" {
		t.Fatalf("key answer without a secret: %s", r.Body)
	}
	return out.Secret
}

func TestImport_ManyLocations_ByLocationColumn(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 2, Seed: 11}, func(t *testing.T, tb *testBundle) {
		n, token := tb.node, tb.token
		n.FirstSync(t, token, tb.loc.Location.ID)
		second, cred := n.Location(t, tb.acct.ID, "Elm Road")
		_, stop := n.Panel(t, cred, sim.Options{Users: 2, Seed: 12})
		defer stop()
		n.FirstSync(t, token, second.Location.ID)
		for _, id := range []string{tb.loc.Location.ID, second.Location.ID} {
			r := n.Do(t, "PATCH", "/v1/locations/"+id, token, map[string]any{"settings": map[string]any{"safety_threshold_percent": 100}})
			if r.Status != http.StatusOK {
				t.Fatal(string(r.Body))
			}
		}
		file := []byte("Site,name,user_number,partitions\n" +
			"main street,Anna,1,1\n" +
			"main street,Bruno,2,1\n" +
			second.Location.ID + ",Carla,2,1\n" +
			second.Location.ID + ",Dora,3,1\n")
		r := n.Upload(t, token, []apptest.ImportFile{dataFile(file), controlFile(`{"location_column":"site","protected_user_numbers":[1]}`)}, url.Values{"scope": {"all"}})
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "protected") {
			t.Fatalf("a row for a protected user: %d %s", r.Status, r.Body)
		}
		file = bytes.Replace(file, []byte("main street,Anna,1,1\n"), nil, 1)
		r = n.Upload(t, token, []apptest.ImportFile{dataFile(file), controlFile(`{"location_column":"site","protected_user_numbers":[1]}`)}, url.Values{"scope": {"all"}})
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload for two locations: %d %s", r.Status, r.Body)
		}
		var started struct {
			Batch struct {
				ID    string `json:"id"`
				Total int    `json:"total"`
			} `json:"batch"`
		}
		r.JSON(t, &started)
		if started.Batch.Total != 2 {
			t.Fatalf("batch %s, want two runs", r.Body)
		}
		apptest.Eventually(t, 20*1e9, func() (bool, string) {
			var b struct {
				State     string `json:"state"`
				Succeeded int    `json:"succeeded"`
			}
			n.Do(t, "GET", "/v1/batches/"+started.Batch.ID, token, nil).JSON(t, &b)
			return b.State == "done" && b.Succeeded == 2, fmt.Sprintf("%+v", b)
		})
		var users struct {
			Items []struct {
				Number int    `json:"number"`
				Name   string `json:"name"`
			} `json:"items"`
		}
		n.Do(t, "GET", "/v1/locations/"+second.Location.ID+"/users", token, nil).JSON(t, &users)
		var names []string
		for _, u := range users.Items {
			names = append(names, fmt.Sprintf("%d %s", u.Number, u.Name))
		}
		got, _ := json.Marshal(names)
		if len(names) != 3 || !strings.Contains(string(got), "2 Carla") || !strings.Contains(string(got), "3 Dora") {
			t.Fatalf("Elm Road's users after the import %s, want its protected master, Carla and Dora", got)
		}
	})
}

// fileOf writes a data file that lists the panel's users as they are, but
// for user 1 (protected by the control file) and those in drop.
func fileOf(t *testing.T, users []panel.User, drop ...int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"user_number", "name", "email", "authority", "partitions", "schedule"})
	for _, u := range users {
		if u.Number == 1 || slices.Contains(drop, u.Number) {
			continue
		}
		parts := make([]string, len(u.Partitions))
		for i, p := range u.Partitions {
			parts[i] = fmt.Sprint(p)
		}
		_ = w.Write([]string{fmt.Sprint(u.Number), u.Name, u.Email, u.Authority, strings.Join(parts, ";"), u.AccessSchedule})
	}
	w.Flush()
	return buf.Bytes()
}

// withNewUsers adds a row per user number to a file fileOf wrote.
func withNewUsers(file []byte, numbers ...int) []byte {
	for _, n := range numbers {
		file = append(file, fmt.Sprintf("%d,New User %d,,standard,1,\n", n, n)...)
	}
	return file
}

func TestImport_ThresholdEdges_AtTheLimitAppliesJustOverHolds(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 10, Seed: 21}, func(t *testing.T, tb *testBundle) {
		n, token := tb.node, tb.token
		n.FirstSync(t, token, tb.loc.Location.ID)
		settle(t, tb, map[string]any{"safety_threshold_percent": 20})
		protect := controlFile(`{"protected_user_numbers":[1]}`)
		users := tb.panel.Users()
		// Two of the ten on record removed: exactly 20%.
		at := importRun(t, tb, token, dataFile(fileOf(t, users, users[1].Number, users[2].Number)), protect)
		if at.State != "succeeded" || at.Changes.Removed != 2 || at.Changes.Updated != 0 {
			t.Fatalf("import removing 20%% %+v, want applied", at)
		}
		if got := len(tb.panel.Users()); got != 8 {
			t.Fatalf("panel holds %d users after removing 2 of 10", got)
		}
		// Two of the eight left: 25%, just over.
		users = tb.panel.Users()
		over := importRun(t, tb, token, dataFile(fileOf(t, users, users[1].Number, users[2].Number)), protect)
		if over.State != "awaiting_apply" || over.Changes.Removed != 2 {
			t.Fatalf("import removing 25%% %+v, want held", over)
		}
		n.Do(t, "POST", "/v1/runs/"+over.ID+"/cancel", token, nil)
		// The count: three changes at a count of 3 apply, four hold.
		settle(t, tb, map[string]any{"safety_threshold_percent": 100, "safety_threshold_count": 3})
		users = tb.panel.Users()
		three := importRun(t, tb, token, dataFile(withNewUsers(fileOf(t, users), 201, 202, 203)), protect)
		if three.State != "succeeded" || three.Changes.Added != 3 {
			t.Fatalf("import of 3 changes at a count of 3 %+v, want applied", three)
		}
		users = tb.panel.Users()
		four := importRun(t, tb, token, dataFile(withNewUsers(fileOf(t, users), 301, 302, 303, 304)), protect)
		if four.State != "awaiting_apply" || four.Changes.Added != 4 {
			t.Fatalf("import of 4 changes at a count of 3 %+v, want held", four)
		}
	})
}

// runningImport waits for an import run at the location to be running and
// returns its id.
func runningImport(t *testing.T, tb *testBundle) string {
	t.Helper()
	var runID string
	apptest.Eventually(t, 10*time.Second, func() (bool, string) {
		for _, run := range runsAt(t, tb) {
			if run.Kind == "import" && run.State == "running" {
				runID = run.ID
				return true, ""
			}
		}
		return false, "no import running yet"
	})
	return runID
}

func TestImport_MarkCancelledWhilePushing_SaysItMayBeUnsafeAndRecordsNothing(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { markCancelledWhilePushing(t, b) })
	}
}

func markCancelledWhilePushing(t *testing.T, b dbtest.Backend) {
	logs := &logBuffer{}
	cfg := apptest.Config(t, b)
	cfg.LogLevel = "debug"
	n := apptest.StartLogged(t, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	acct, token := n.Account(t, "Acme Alarms")
	loc, cred := n.Location(t, acct.ID, "Main Street")
	p, _ := n.Panel(t, cred, sim.Options{Users: 6, Seed: 4})
	tb := &testBundle{node: n, token: token, acct: acct, loc: loc, cred: cred, panel: p}
	locID := loc.Location.ID
	{
		n.FirstSync(t, token, locID)
		settle(t, tb, map[string]any{"safety_threshold_percent": 100})
		before := remoteUsers(t, tb)
		tb.panel.SetLatency(700 * time.Millisecond)
		r := n.Upload(t, token, []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel)), controlFile(importControl)}, url.Values{"location_ids": {locID}})
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload: %d %s", r.Status, r.Body)
		}
		runID := runningImport(t, tb)
		if r := n.Do(t, "POST", "/v1/runs/"+runID+"/cancel", token, nil); r.Status != http.StatusOK {
			t.Fatalf("cancel while pushing: %d %s", r.Status, r.Body)
		}
		events := n.Events(t, token, locID)
		if last := events[len(events)-1]; last.Type != "sync.cancelled" {
			t.Fatalf("last event %+v", last)
		}
		tb.panel.SetLatency(0)
		// The worker's result is refused: the run stays cancelled and the
		// record does not take what the panel answered.
		r = n.Upload(t, token, []apptest.ImportFile{dataFile(keepTwoAddOne(tb.panel)), controlFile(importControl)}, url.Values{"location_ids": {locID}})
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload after cancel: %d %s", r.Status, r.Body)
		}
		tb.panel.SetLatency(700 * time.Millisecond)
		runID = runningImport(t, tb)
		marked := n.Do(t, "POST", "/v1/runs/"+runID+"/mark-cancelled", token, map[string]bool{"confirm": true})
		if marked.Status != http.StatusOK {
			t.Fatalf("mark cancelled: %d %s", marked.Status, marked.Body)
		}
		events = n.Events(t, token, locID)
		last := events[len(events)-1]
		if last.Type != "sync.cancelled" || !strings.Contains(last.Message, "may hold part of its changes") || !strings.Contains(string(last.Data), `"unsafe":true`) {
			t.Fatalf("last event %+v, want the unsafe mark", last)
		}
		tb.panel.SetLatency(0)
		if r := n.WaitRun(t, token, runID); r.State != "cancelled" {
			t.Fatalf("marked run %+v", r)
		}
		// Both workers finish their pushes and are refused when they come
		// to record them.
		apptest.Eventually(t, 15*time.Second, func() (bool, string) {
			dropped := strings.Count(logs.String(), "its result is dropped")
			return dropped == 2, fmt.Sprintf("%d of 2 cancelled runs' results dropped", dropped)
		})
		if got := remoteUsers(t, tb); got != before {
			t.Fatalf("the record changed from %d to %d users after cancelled imports", before, got)
		}
	}
}

func TestImport_ForceUpdateAll_PushesUnchangedUsersAndKeepsTheirCodes(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 6, Seed: 8}, func(t *testing.T, tb *testBundle) {
		n, token := tb.node, tb.token
		n.FirstSync(t, token, tb.loc.Location.ID)
		protect := controlFile(`{"protected_user_numbers":[1]}`)
		before := tb.panel.Users()
		puts := func() int64 { return tb.panel.Stats().Commands[panel.CmdUsersPut] }

		same := importRun(t, tb, token, dataFile(fileOf(t, before)), protect)
		if same.State != "succeeded" || same.Changes.Added+same.Changes.Updated+same.Changes.Removed != 0 || puts() != 0 {
			t.Fatalf("an import of the panel's own list %+v sent %d users.put, want none", same, puts())
		}
		settle(t, tb, map[string]any{"force_update_all": true})
		forced := importRun(t, tb, token, dataFile(fileOf(t, before)), protect)
		if forced.State != "succeeded" || puts() != 1 {
			t.Fatalf("a forced import %+v sent %d users.put, want one with every user", forced, puts())
		}
		after := tb.panel.Users()
		if len(after) != len(before) {
			t.Fatalf("panel users %d after a forced push of the same list, want %d", len(after), len(before))
		}
		for i := range before {
			if after[i].Code != before[i].Code || after[i].HasCode != before[i].HasCode {
				t.Fatalf("user %d lost or changed its code in a forced push of a list without codes", before[i].Number)
			}
		}
	})
}
