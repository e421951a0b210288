package importfile_test

import (
	"errors"
	"maps"
	"net/mail"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/syncer/importfile"
)

// fuzzControls are the controls the data file fuzz targets parse with,
// picked by the fuzzer.
func fuzzControls() []importfile.Control {
	return []importfile.Control{
		{},
		{LocationColumn: "site", ProtectedUserNumbers: []int{1}, DefaultPartitions: []int{2, 1}},
		{
			Columns:   map[string]string{"Full Name": "name", "PIN": "code", "Slot": "user_number", "Notes": ""},
			Authority: map[string]string{"Manager": "master", "": "guest"},
		},
	}
}

func FuzzParseCSV(f *testing.F) {
	fuzzParse(f, importfile.FormatCSV, []string{
		"name,user_number\nAnn,5\n",
		"\xEF\xBB\xBFexternal_id,name,email,user_number,authority,partitions,schedule,code\r\nE-1,\"Lee, Ann\",ann@example.com,7,Master,\"1;2\",Mon-Fri,0123\r\n",
		"name,user_number,partitions\nAnn,1,1\n\n\"Bob\",2,\"1\n2\"\n",
		"name,user_number\nAnn,5\nBob,5\n,0\n",
		"site,name,user_number,email\nNorth,Ann,1,a@b\nNorth,Bob,2,\"Bob <b@example.com>\"\nSouth,Cy,2,\n",
		"Full Name,Slot,PIN,Notes,authority\nAnn,3,1234,x,Manager\nBob,4,12a4,,\n",
		"name;user_number\nAnn;5\n",
		"name,user_number\n\"Ann,5\n",
		"name,user_number\nAn\"n,5\n",
		"Ann,5,1234\n",
		"",
		string(importfile.GenerateCSV(20, 3, 1)),
	})
}

func FuzzParseJSON(f *testing.F) {
	fuzzParse(f, importfile.FormatJSON, []string{
		`[{"name":"Ann","user_number":5}]`,
		`{"users":[{"external_id":1,"name":" Ann ","email":"ann@example.com","user_number":"7","authority":"Master","partitions":[2,1,2],"schedule":"x","code":"0123"}]}`,
		`[{"name":"Ann","user_number":5},{"name":"Bob","user_number":5},{"name":"","user_number":0}]`,
		`[{"site":"North","name":"Ann","user_number":1},{"site":101,"name":"Bob","user_number":2,"partitions":null}]`,
		`[{"Full Name":"Ann","Slot":3,"PIN":"1234","Notes":{"a":[1]},"authority":"manager"}]`,
		`[{"name":"Ann","user_number":1,"name":"Bob"},{"NAME":"Cy","Name":"Di","user_number":2}]`,
		`[{"name":"A\u0000nn","user_number":1e3,"code":1234,"partitions":["1",[2],33]}]`,
		`[{"n\u0061me":"Ann","user_number":1}] x`,
		`[{"name":"Ann","user_number":1}`,
		`{"users":{}}`,
		`[]`,
		"\xEF\xBB\xBF[5, null, \"x\"]",
	})
}

// fuzzParse fuzzes Parse of one format from seeds, each tried with every
// one of fuzzControls: whatever the input, Parse must not panic, and must
// either refuse it or return records that keep every rule.
func fuzzParse(f *testing.F, format importfile.Format, seeds []string) {
	for _, seed := range seeds {
		for pick := range len(fuzzControls()) {
			f.Add([]byte(seed), uint8(pick))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, pick uint8) {
		controls := fuzzControls()
		ctl := controls[int(pick)%len(controls)]
		records, err := importfile.Parse(data, format, ctl)
		checkParse(t, records, err, ctl)
	})
}

func FuzzParseControl(f *testing.F) {
	for _, seed := range []string{
		`{"columns":{"PIN":"code","Full Name":"name","Notes":""},"authority":{"Manager":"master","":"guest"},"location_column":"site","protected_user_numbers":[1],"defaults":{"partitions":[1]}}`,
		`{}`,
		`{"columns":null,"defaults":null}`,
		`{"columns":{"PIN":"code","pin":"name","X":"nope","Y":"code"},"authority":{"Boss":"king"},"location_column":"email"}`,
		`{"protected_user_numbers":[0,1,1,2.5,"3",99999999999999999999],"defaults":{"partitions":[],"x":1}}`,
		`{"location_column":"a","location_column":"b"}`,
		`{"columns":{"a":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}}`,
		`{"columns":{"PIN":"code",}}`,
		`[] {}`,
		"\xEF\xBB\xBF{\"columns\":{\"\\u0000\":\"name\"}}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctl, err := importfile.ParseControl(data)
		if err != nil {
			if !reflect.DeepEqual(ctl, importfile.Control{}) {
				t.Fatalf("got %+v with the error %v", ctl, err)
			}
			checkProblems(t, err, "control")
			return
		}
		checkControl(t, ctl)
		// A control file that passes is one Parse takes.
		for format, file := range map[importfile.Format]string{
			importfile.FormatCSV:  "name,user_number,site,PIN\nAnn,5,North,1234\n",
			importfile.FormatJSON: `[{"name":"Ann","user_number":5,"site":"North","PIN":"1234"}]`,
		} {
			records, err := importfile.Parse([]byte(file), format, ctl)
			var problems *importfile.Problems
			if errors.As(err, &problems) && problems.File != "data" {
				t.Fatalf("a control ParseControl accepted is refused by Parse: %v", err)
			}
			checkParse(t, records, err, ctl)
		}
	})
}

// checkParse checks what Parse returned: either records that keep every
// rule, or problems and no records.
func checkParse(t *testing.T, records []importfile.Record, err error, ctl importfile.Control) {
	t.Helper()
	if err != nil {
		if records != nil {
			t.Fatalf("got %d records with the error %v", len(records), err)
		}
		checkProblems(t, err, "data")
		return
	}
	if len(records) == 0 || len(records) > importfile.MaxDataRows {
		t.Fatalf("got %d records and no error", len(records))
	}
	defaults := slices.Compact(slices.Sorted(slices.Values(ctl.DefaultPartitions)))
	numbers := map[[2]string]int{}
	ids := map[[2]string]int{}
	lastRow := 0
	for _, r := range records {
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("row %d: "+format+"\nrecord %+v", append([]any{r.Row}, append(args, r)...)...)
		}
		if r.Row <= lastRow {
			fail("rows out of order (after row %d)", lastRow)
		}
		lastRow = r.Row
		if !isLabel(r.Name, 200, true) {
			fail("name %q", r.Name)
		}
		if r.UserNumber < 1 || r.UserNumber > 9999 || slices.Contains(ctl.ProtectedUserNumbers, r.UserNumber) {
			fail("user number %d", r.UserNumber)
		}
		if r.Email != "" {
			a, err := mail.ParseAddress(r.Email)
			if err != nil || a.Name != "" || a.Address != r.Email || !isLabel(r.Email, 254, true) {
				fail("email %q: %v", r.Email, err)
			}
		}
		switch r.Authority {
		case "master", "standard", "arm_only", "duress", "guest":
		default:
			fail("authority %q", r.Authority)
		}
		if len(r.Partitions) == 0 {
			if len(defaults) > 0 {
				fail("no partitions, though the defaults are %v", defaults)
			}
		} else if !slices.IsSorted(r.Partitions) || len(slices.Compact(slices.Clone(r.Partitions))) != len(r.Partitions) ||
			r.Partitions[0] < 1 || r.Partitions[len(r.Partitions)-1] > 32 {
			fail("partitions %v", r.Partitions)
		}
		if !isLabel(r.Schedule, 200, false) {
			fail("schedule %q", r.Schedule)
		}
		if r.Code != "" && (len(r.Code) < 4 || len(r.Code) > 8 || strings.Trim(r.Code, "0123456789") != "") {
			fail("code is not 4 to 8 digits")
		}
		if !isLabel(r.ExternalID, 64, false) {
			fail("external id %q", r.ExternalID)
		}
		if (ctl.LocationColumn != "") != (r.Location != "") || !isLabel(r.Location, 200, false) {
			fail("location %q", r.Location)
		}
		number := [2]string{r.Location, string(rune(r.UserNumber))}
		if first, seen := numbers[number]; seen {
			fail("user number %d is also on row %d", r.UserNumber, first)
		}
		numbers[number] = r.Row
		if r.ExternalID != "" {
			id := [2]string{r.Location, r.ExternalID}
			if first, seen := ids[id]; seen {
				fail("external id %q is also on row %d", r.ExternalID, first)
			}
			ids[id] = r.Row
		}
	}
}

// checkProblems checks the shape of a refusal, and that its text can go
// into a log line or a mail as it is.
func checkProblems(t *testing.T, err error, file string) {
	t.Helper()
	var problems *importfile.Problems
	if !errors.As(err, &problems) || problems.File != file {
		t.Fatalf("got %T %v, want *Problems about the %s file", err, err, file)
	}
	if len(problems.List) == 0 || len(problems.List) > 1000 || problems.Omitted < 0 ||
		(problems.Omitted > 0 && len(problems.List) != 1000) {
		t.Fatalf("%d problems listed, %d omitted", len(problems.List), problems.Omitted)
	}
	for _, p := range problems.List {
		// A JSON key is named as the file spells it, spaces and all.
		if p.Row < 0 || p.Message == "" || !isLabel(strings.TrimSpace(p.Column), 1000, false) || !isLabel(p.Message, 10_000, true) {
			t.Fatalf("problem %+v", p)
		}
	}
	if !isLabel(err.Error(), 20_000, true) {
		t.Fatalf("Error() = %q", err.Error())
	}
}

// checkControl checks the rules of a control ParseControl accepted.
func checkControl(t *testing.T, ctl importfile.Control) {
	t.Helper()
	fields := []string{"", "external_id", "name", "email", "user_number", "authority", "partitions", "schedule", "code"}
	columns := map[string]bool{}
	targets := map[string]bool{}
	for _, key := range slices.Sorted(maps.Keys(ctl.Columns)) {
		target, norm := ctl.Columns[key], strings.ToLower(strings.TrimSpace(key))
		// Keys are matched after trimming, so they may come with spaces.
		if !isLabel(strings.TrimSpace(key), 200, true) || columns[norm] || !slices.Contains(fields, target) || (target != "" && targets[target]) {
			t.Fatalf("columns: %q → %q in %v", key, target, ctl.Columns)
		}
		columns[norm], targets[target] = true, true
	}
	if lc := ctl.LocationColumn; lc != "" {
		norm := strings.ToLower(strings.TrimSpace(lc))
		if !isLabel(strings.TrimSpace(lc), 200, true) || columns[norm] || slices.Contains(fields, norm) {
			t.Fatalf("location column %q with columns %v", lc, ctl.Columns)
		}
	}
	values := map[string]bool{}
	for key, authority := range ctl.Authority {
		norm := strings.ToLower(strings.TrimSpace(key))
		if !isLabel(strings.TrimSpace(key), 200, false) || values[norm] || !slices.Contains([]string{"master", "standard", "arm_only", "duress", "guest"}, authority) {
			t.Fatalf("authority: %q → %q in %v", key, authority, ctl.Authority)
		}
		values[norm] = true
	}
	checkList := func(name string, list []int, lo, hi int) {
		sorted := slices.Sorted(slices.Values(list))
		if len(slices.Compact(sorted)) != len(list) || (len(list) > 0 && (sorted[0] < lo || sorted[len(sorted)-1] > hi)) {
			t.Fatalf("%s %v", name, list)
		}
	}
	checkList("protected user numbers", ctl.ProtectedUserNumbers, 1, 9999)
	checkList("default partitions", ctl.DefaultPartitions, 1, 32)
	if ctl.DefaultPartitions != nil && len(ctl.DefaultPartitions) == 0 {
		t.Fatal("default partitions given and empty")
	}
}

// isLabel reports whether models.Label takes s as it is: trimmed, valid
// UTF-8, free of control characters and at most maxRunes long.
func isLabel(s string, maxRunes int, required bool) bool {
	v, err := models.Label("x", s, maxRunes, required)
	return err == nil && v == s && utf8.ValidString(s)
}
