package importfile_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/syncer/importfile"
)

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		filename    string
		head        string
		want        importfile.Format
		wantErr     string // the error's code, when one is wanted
	}{
		{"csv content type", "text/csv; charset=utf-8", "users.json", "[", importfile.FormatCSV, ""},
		{"json content type", "application/json", "users.csv", "name", importfile.FormatJSON, ""},
		{"json suffix", "application/vnd.api+json", "", "", importfile.FormatJSON, ""},
		{"excel's csv type defers to the name", "application/vnd.ms-excel", "Users.CSV", "", importfile.FormatCSV, ""},
		{"octet stream defers to the name", "application/octet-stream", "users.json", "", importfile.FormatJSON, ""},
		{"windows path", "", `C:\Users\ann\export.json`, "", importfile.FormatJSON, ""},
		{"malformed content type is ignored", "text/csv;;;=", "users.json", "", importfile.FormatJSON, ""},
		{"sniffed json array", "", "users", " \r\n [{\"name\"", importfile.FormatJSON, ""},
		{"sniffed json object after a bom", "text/plain", "upload.txt", "\xEF\xBB\xBF{\"users\"", importfile.FormatJSON, ""},
		{"sniffed csv", "", "", "name,user_number\n", importfile.FormatCSV, ""},
		{"nothing to go on is csv, for Parse to judge", "", "", "", importfile.FormatCSV, ""},
		{"other content type", "image/png", "users.csv", "", "", models.CodeUnsupportedMediaType},
		{"other charset", "text/csv; charset=windows-1252", "users.csv", "", "", models.CodeUnsupportedMediaType},
		{"xlsx content type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "", "", "", models.CodeUnsupportedMediaType},
		{"xlsx name", "application/octet-stream", "users.xlsx", "", "", models.CodeUnsupportedMediaType},
		{"xlsx bytes", "", "users", "PK\x03\x04\x14\x00", "", models.CodeUnsupportedMediaType},
		{"xls bytes", "", "", "\xD0\xCF\x11\xE0\xA1\xB1", "", models.CodeUnsupportedMediaType},
		{"utf-16 bytes", "", "", "\xFF\xFEn\x00", "", models.CodeUnsupportedMediaType},
		{"binary bytes", "", "", "GIF89a\x00\x01", "", models.CodeUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := importfile.DetectFormat(tt.contentType, tt.filename, []byte(tt.head))
			if code := models.ErrorCode(err); code != tt.wantErr || got != tt.want {
				t.Errorf("got %q, %v (code %q); want %q, code %q", got, err, code, tt.want, tt.wantErr)
			}
		})
	}
}

func TestProblems_Error_SummarisesWithTheFirstProblem(t *testing.T) {
	tests := []struct {
		problems importfile.Problems
		want     string
	}{
		{importfile.Problems{File: "data", List: []importfile.Problem{
			problem(2, "PIN", "code must be 4 to 8 digits"), problem(3, "name", "name is required"), problem(4, "", "x"),
		}}, "data file: 3 problems; row 2, column PIN: code must be 4 to 8 digits"},
		{importfile.Problems{File: "data", List: []importfile.Problem{problem(0, "", "the data file is empty")}},
			"data file: 1 problem; the data file is empty"},
		{importfile.Problems{File: "data", List: []importfile.Problem{problem(7, "", "the row has 1 cell but the header has 2")}},
			"data file: 1 problem; row 7: the row has 1 cell but the header has 2"},
		{importfile.Problems{File: "control", List: []importfile.Problem{problem(0, "columns.PIN", `"pin" is not a field`)}, Omitted: 1},
			`control file: 2 problems; columns.PIN: "pin" is not a field`},
	}
	for _, tt := range tests {
		if got := tt.problems.Error(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}

// TestParse_CodesNeverAppearInProblems feeds files whose bad rows carry
// codes in every way a code can go wrong, and checks that no message,
// column or summary holds one.
func TestParse_CodesNeverAppearInProblems(t *testing.T) {
	codes := []string{"91375", "55501", "8080123", "424242", "73915", "04248", "66013", "3141592", "27182818", "718281828"}
	files := []struct {
		format importfile.Format
		ctl    importfile.Control
		data   string
	}{
		{importfile.FormatCSV, importfile.Control{}, string(lines(
			"name,user_number,code",
			"Ann,5,91375x",    // bad code
			"Bob,x,55501",     // bad row, good code
			"Cy,5,8080123",    // repeated user number
			"Di, Jr,7,424242", // cells out of their columns
			"Ed,8,718281828",  // code too long
			`"Fay,9,66013`,    // quote never closed
		))},
		{importfile.FormatCSV, importfile.Control{}, string(lines(
			"Ann,5,73915", // no header: the first row takes its place
			"Bob,6,04248",
		))},
		{importfile.FormatCSV, importfile.Control{Columns: map[string]string{"PIN": "code"}}, string(lines(
			"name,user_number,PIN",
			`Ann "A" Lee,5,3141592`, // a bare quote on the line
		))},
		{importfile.FormatJSON, importfile.Control{}, `[
			{"name":"Ann","user_number":5,"code":91375},
			{"name":"Bob","user_number":6,"code":"55501x"},
			{"name":"Cy","user_number":6,"code":"8080123"},
			{"name":"Di","user_number":7,"code":["424242"]},
			{"name":"Ed","user_number":8,"code":{"pin":"73915"}},
			{"name":"Fay","user_number":9,"code":"27182818","code":"66013"},
			{"name":"Gus","user_number":10,"code":04248}
		]`},
		{importfile.FormatJSON, importfile.Control{}, `[{"name":"Ann","user_number":5,"code":"3141592"`},
	}
	for i, f := range files {
		_, err := importfile.Parse([]byte(f.data), f.format, f.ctl)
		problems := problemsOf(t, err, "data")
		texts := []string{err.Error()}
		for _, p := range problems.List {
			texts = append(texts, p.Column, p.Message)
		}
		all := strings.Join(texts, "\n")
		for _, code := range codes {
			if strings.Contains(all, code) {
				t.Errorf("file %d: code %s appears in the problems:\n%s", i, code, all)
			}
		}
	}
}

func TestGenerateCSV_IsValidRealisticAndRepeatable(t *testing.T) {
	data := importfile.GenerateCSV(2_000, 7, 42)
	if !bytes.Equal(data, importfile.GenerateCSV(2_000, 7, 42)) {
		t.Error("the same arguments gave different files")
	}
	if bytes.Equal(data, importfile.GenerateCSV(2_000, 7, 43)) {
		t.Error("another seed gave the same file")
	}
	if !bytes.HasPrefix(data, []byte("site,external_id,name,email,user_number,authority,partitions,schedule,code\n")) {
		t.Errorf("header: %q", data[:80])
	}
	records := parseOK(t, data, importfile.FormatCSV, importfile.Control{LocationColumn: "site", ProtectedUserNumbers: []int{1}})
	if len(records) != 2_000 {
		t.Fatalf("got %d records", len(records))
	}
	locations, withCode, withEmail, quoted := map[string]bool{}, 0, 0, bytes.Count(data, []byte(`"`))
	for _, r := range records {
		locations[r.Location] = true
		if r.Code != "" {
			withCode++
		}
		if r.Email != "" {
			withEmail++
		}
	}
	if len(locations) != 7 || withCode < 1_200 || withEmail < 1_200 || quoted == 0 {
		t.Errorf("%d locations, %d codes, %d e-mails, %d quotes", len(locations), withCode, withEmail, quoted)
	}
	// More users than one panel holds are spread over more locations.
	if records := parseOK(t, importfile.GenerateCSV(20_000, 1, 1), importfile.FormatCSV, siteControl); len(records) != 20_000 {
		t.Errorf("got %d records", len(records))
	}
}
