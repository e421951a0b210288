package importfile_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/panelsync/panelsync/syncer/importfile"
)

// maskOK masks a data file that must be maskable.
func maskOK(t *testing.T, data []byte, format importfile.Format, ctl importfile.Control) []byte {
	t.Helper()
	masked, err := importfile.MaskCodes(data, format, ctl)
	if err != nil {
		t.Fatalf("MaskCodes: %v\n%s", err, listProblems(err))
	}
	return masked
}

// readCSVCells reads a CSV file as encoding/csv does, after the byte order
// mark, rows of any length allowed.
func readCSVCells(data []byte) ([][]string, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))))
	r.FieldsPerRecord = -1
	return r.ReadAll()
}

func mustReadCSVCells(t *testing.T, data []byte) [][]string {
	t.Helper()
	cells, err := readCSVCells(data)
	if err != nil {
		t.Fatalf("reading the CSV back: %v\n%s", err, data)
	}
	return cells
}

// givesCode reports whether Parse takes the code from a column (or JSON
// key) of this name under ctl, worked out here independently of the
// package.
func givesCode(ctl importfile.Control, name string) bool {
	norm := strings.ToLower(strings.TrimSpace(name))
	for key, target := range ctl.Columns {
		if strings.ToLower(strings.TrimSpace(key)) == norm {
			return target == "code"
		}
	}
	return norm == "code"
}

// jsonMember is one key of a JSON user and its value, compacted.
type jsonMember struct {
	Key   string
	Value string
}

// readJSONUsers reads the users of a JSON data file, in either shape,
// keeping the order of their keys.
func readJSONUsers(data []byte) ([][]jsonMember, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))), jsontext.AllowDuplicateNames(true))
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	wrapped := tok.Kind() == '{'
	if wrapped {
		if tok, err = dec.ReadToken(); err != nil {
			return nil, err
		}
		if tok.String() != "users" {
			return nil, errors.New("the object's key is not users")
		}
		if tok, err = dec.ReadToken(); err != nil {
			return nil, err
		}
	}
	if tok.Kind() != '[' {
		return nil, errors.New("no array of users")
	}
	var users [][]jsonMember
	for dec.PeekKind() == '{' {
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		user := []jsonMember{}
		for dec.PeekKind() == '"' {
			key, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			name := key.String()
			value, err := dec.ReadValue()
			if err != nil {
				return nil, err
			}
			value = value.Clone()
			if err := value.Compact(jsontext.AllowDuplicateNames(true)); err != nil {
				return nil, err
			}
			user = append(user, jsonMember{name, string(value)})
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		users = append(users, user)
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	if wrapped {
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, errors.New("text after the users")
	}
	return users, nil
}

func mustReadJSONUsers(t *testing.T, data []byte) [][]jsonMember {
	t.Helper()
	users, err := readJSONUsers(data)
	if err != nil {
		t.Fatalf("reading the JSON back: %v\n%s", err, data)
	}
	return users
}

// assertNoSecrets fails when the masked file holds any of the codes.
func assertNoSecrets(t *testing.T, masked []byte, codes ...string) {
	t.Helper()
	for _, code := range codes {
		if bytes.Contains(masked, []byte(code)) {
			t.Errorf("the masked file holds the code %s:\n%s", code, masked)
		}
	}
}

func TestMaskCodes_CSVCodeColumn_MasksEveryCodeAndKeepsEveryOtherCell(t *testing.T) {
	data := lines(
		"External_ID, Name ,CODE,user_number,partitions,schedule",
		`E-1,"Lee, Ann",908172,7,"1;2",Mon-Fri`,
		"E-2,Bob,,8,1,",
		`E-3,"Zoë ""Z"" Ødegård",55501234,9,"1`,
		`2",Weekends`,
		"",
		"E-4,Cy,  ,10,,",
		`E-5,=SUM(A1),"076543",11,32,`,
	)
	parseOK(t, data, importfile.FormatCSV, importfile.Control{})
	masked := maskOK(t, data, importfile.FormatCSV, importfile.Control{})
	want := [][]string{
		{"External_ID", " Name ", "CODE", "user_number", "partitions", "schedule"},
		{"E-1", "Lee, Ann", "****", "7", "1;2", "Mon-Fri"},
		{"E-2", "Bob", "", "8", "1", ""},
		{"E-3", `Zoë "Z" Ødegård`, "****", "9", "1\n2", "Weekends"},
		// A cell of spaces holds no code, so there is nothing to hide.
		{"E-4", "Cy", "  ", "10", "", ""},
		{"E-5", "=SUM(A1)", "****", "11", "32", ""},
	}
	if got := mustReadCSVCells(t, masked); !reflect.DeepEqual(got, want) {
		t.Errorf("cells:\n%q\nwant:\n%q", got, want)
	}
	assertNoSecrets(t, masked, "908172", "55501234", "076543")
	if bytes.Contains(masked, []byte("\r")) {
		t.Errorf("a file with LF line ends came back with carriage returns:\n%q", masked)
	}
}

func TestMaskCodes_CSVLineEnds_FollowTheFirstLine(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		wantCRLF bool
	}{
		{"CRLF", "name,user_number,code\r\nAnn,1,1234\r\n\"Bob\r\nJr\",2,\r\n", true},
		{"CRLF with no line end at the end", "name,user_number,code\r\nAnn,1,1234", true},
		{"LF", "name,user_number,code\nAnn,1,1234\n\"Bob\nJr\",2,\n", false},
		{"LF first, CRLF after", "name,user_number,code\nAnn,1,1234\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			masked := maskOK(t, []byte(tt.data), importfile.FormatCSV, importfile.Control{})
			lineFeeds := bytes.Count(masked, []byte("\n"))
			crlfs := bytes.Count(masked, []byte("\r\n"))
			if tt.wantCRLF && (crlfs != lineFeeds || !bytes.HasSuffix(masked, []byte("\r\n"))) {
				t.Errorf("want CRLF line ends, got %q", masked)
			}
			if !tt.wantCRLF && (bytes.Contains(masked, []byte("\r")) || !bytes.HasSuffix(masked, []byte("\n"))) {
				t.Errorf("want LF line ends, got %q", masked)
			}
			checkMaskedCSV(t, []byte(tt.data), masked, importfile.Control{})
			assertNoSecrets(t, masked, "1234")
		})
	}
}

func TestMaskCodes_CSVByteOrderMark_IsDroppedAndTheCodeColumnFound(t *testing.T) {
	data := []byte("\xEF\xBB\xBFcode,name,user_number\r\n4321,Ann,5\r\n")
	masked := maskOK(t, data, importfile.FormatCSV, importfile.Control{})
	if want := "code,name,user_number\r\n****,Ann,5\r\n"; string(masked) != want {
		t.Errorf("got %q, want %q", masked, want)
	}
}

func TestMaskCodes_CSVControlColumns_DecideTheCodeColumn(t *testing.T) {
	tests := []struct {
		name string
		ctl  importfile.Control
		data []byte
		want [][]string
	}{
		{"a column mapped to code",
			importfile.Control{Columns: map[string]string{"PIN": "code", "Full Name": "name"}},
			lines("full name, pIn ,user_number", "Ann,1234,1", "Bob,,2"),
			[][]string{{"full name", " pIn ", "user_number"}, {"Ann", "****", "1"}, {"Bob", "", "2"}}},
		{"the code column mapped to nothing",
			importfile.Control{Columns: map[string]string{"Code": ""}},
			lines("name,user_number,code", "Ann,1,1234"),
			[][]string{{"name", "user_number", "code"}, {"Ann", "1", "1234"}}},
		{"the code column mapped to another field",
			importfile.Control{Columns: map[string]string{"code": "external_id", "Secret": "code"}},
			lines("name,user_number,code,secret", "Ann,1,E-17,1234"),
			[][]string{{"name", "user_number", "code", "secret"}, {"Ann", "1", "E-17", "****"}}},
		{"the location column next to the code",
			importfile.Control{LocationColumn: "Site"},
			lines(" SITE ,name,user_number,code", "North,Ann,1,1234"),
			[][]string{{" SITE ", "name", "user_number", "code"}, {"North", "Ann", "1", "****"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parseOK(t, tt.data, importfile.FormatCSV, tt.ctl)
			masked := maskOK(t, tt.data, importfile.FormatCSV, tt.ctl)
			if got := mustReadCSVCells(t, masked); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("cells:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestMaskCodes_CSVWithoutCodeColumn_KeepsEveryCell(t *testing.T) {
	data := lines(
		"name,user_number,email,partitions",
		`"Lee, Ann",1,ann@example.com,"1;2"`,
		`"Bob ""B""",2,,"3`,
		`4"`,
	)
	masked := maskOK(t, data, importfile.FormatCSV, importfile.Control{})
	if got, want := mustReadCSVCells(t, masked), mustReadCSVCells(t, data); !reflect.DeepEqual(got, want) {
		t.Errorf("cells:\n%q\nwant:\n%q", got, want)
	}
}

func TestMaskCodes_CSVCellsWithCarriageReturns_ReadBackTheSame(t *testing.T) {
	// encoding/csv takes a carriage return off the end of each line, and
	// its writer in CRLF mode drops them from cells; the cells must come
	// back the same all the same.
	for _, lineEnd := range []string{"\n", "\r\n"} {
		data := []byte("name,user_number,partitions,code" + lineEnd +
			"\"Ann\",1,\"1\r\r\n2\",1234" + lineEnd +
			"Bob,2,\"1\r2\",\"12\r34\"" + lineEnd +
			"Cy,3,\"1\r\",\"\r\"" + lineEnd)
		masked := maskOK(t, data, importfile.FormatCSV, importfile.Control{})
		checkMaskedCSV(t, data, masked, importfile.Control{})
	}
}

// checkMaskedCSV checks a masked CSV file against the file it came from:
// the same rows and cells, but for the code cells that held a code, which
// read CodeMask.
func checkMaskedCSV(t *testing.T, data, masked []byte, ctl importfile.Control) {
	t.Helper()
	original := mustReadCSVCells(t, data)
	got := mustReadCSVCells(t, masked)
	if len(got) != len(original) {
		t.Fatalf("%d rows came back, want %d:\n%q", len(got), len(original), masked)
	}
	header := original[0]
	for i, row := range original {
		if len(got[i]) != len(row) {
			t.Fatalf("row %d has %d cells, want %d", i+1, len(got[i]), len(row))
		}
		for j, cell := range row {
			want := cell
			if i > 0 && givesCode(ctl, header[j]) && strings.TrimSpace(cell) != "" {
				want = importfile.CodeMask
			}
			if got[i][j] != want {
				// The cell may be a code: its value is left out.
				t.Fatalf("row %d, column %d (%q) differs from what is wanted", i+1, j+1, header[j])
			}
		}
	}
}

func TestMaskCodes_GeneratedFile_HidesEveryCode(t *testing.T) {
	data := importfile.GenerateCSV(2000, 10, 7)
	records := parseOK(t, data, importfile.FormatCSV, siteControl)
	masked := maskOK(t, data, importfile.FormatCSV, siteControl)
	cells := mustReadCSVCells(t, masked)
	if len(cells) != len(records)+1 {
		t.Fatalf("%d rows came back, want the header and %d users", len(cells), len(records))
	}
	codeColumn := -1
	for i, name := range cells[0] {
		if name == "code" {
			codeColumn = i
		}
	}
	if codeColumn < 0 {
		t.Fatalf("the masked file lost its code column: %q", cells[0])
	}
	codes := map[string]bool{}
	for _, r := range records {
		if r.Code != "" {
			codes[r.Code] = true
		}
	}
	if len(codes) < 100 {
		t.Fatalf("the generated file has only %d codes: the test proves little", len(codes))
	}
	for i, r := range records {
		got := cells[i+1][codeColumn]
		if codes[got] {
			t.Fatalf("row %d still holds a code", r.Row)
		}
		want := ""
		if r.Code != "" {
			want = importfile.CodeMask
		}
		if got != want {
			t.Fatalf("row %d: code cell %q, want %q", r.Row, got, want)
		}
	}
	checkMaskedCSV(t, data, masked, siteControl)
}

func TestMaskCodes_JSON_MasksCodesAndKeepsKeysAndValues(t *testing.T) {
	users := `[` +
		`{"user_number":5,"name":"Zoë Ødegård 日本","code":"0123","partitions":[2, 1],"external_id":12},` +
		`{"name":"Bob","code":null,"user_number":"6","schedule":"Mon-Fri"},` +
		`{"code":"","name":"Cy","user_number":7,"email":"cy@example.com"},` +
		`{"name":"Di","user_number":8,"code":4567},` +
		`{"name":"Ed","user_number":9,"code":{"pin":"7654"}},` +
		`{"name":"Flo","user_number":1e1,"c\u006fde":"\u0039876"},` +
		`{"name":"Gus \"G\" \u00e9","user_number":11,"code":" "}` +
		`]`
	want := [][]jsonMember{
		{{"user_number", "5"}, {"name", `"Zoë Ødegård 日本"`}, {"code", `"****"`}, {"partitions", "[2,1]"}, {"external_id", "12"}},
		{{"name", `"Bob"`}, {"code", "null"}, {"user_number", `"6"`}, {"schedule", `"Mon-Fri"`}},
		{{"code", `""`}, {"name", `"Cy"`}, {"user_number", "7"}, {"email", `"cy@example.com"`}},
		// Parse refuses a code that is not a string, but were one to get
		// here it is still a secret.
		{{"name", `"Di"`}, {"user_number", "8"}, {"code", `"****"`}},
		{{"name", `"Ed"`}, {"user_number", "9"}, {"code", `"****"`}},
		{{"name", `"Flo"`}, {"user_number", "1e1"}, {"code", `"****"`}},
		{{"name", `"Gus \"G\" \u00e9"`}, {"user_number", "11"}, {"code", `" "`}},
	}
	for _, tt := range []struct{ name, data string }{
		{"array", users},
		{"users object", `{"users":` + users + `}`},
		{"users object with a byte order mark and spaces", "\xEF\xBB\xBF{ \"users\" :\n" + strings.ReplaceAll(users, ",", ",\n  ") + "\n}\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			masked := maskOK(t, []byte(tt.data), importfile.FormatJSON, importfile.Control{})
			if got := mustReadJSONUsers(t, masked); !reflect.DeepEqual(got, want) {
				t.Errorf("users:\n%q\nwant:\n%q", got, want)
			}
			assertNoSecrets(t, masked, "0123", "4567", "7654", "9876")
			if wrapped := strings.HasPrefix(strings.TrimPrefix(tt.data, "\xEF\xBB\xBF"), "{"); wrapped != bytes.HasPrefix(masked, []byte(`{"users":`)) {
				t.Errorf("the shape of the file changed:\n%s", masked)
			}
		})
	}
}

func TestMaskCodes_JSONControlColumns_DecideTheCodeKey(t *testing.T) {
	tests := []struct {
		name string
		ctl  importfile.Control
		data string
		want [][]jsonMember
	}{
		{"a key mapped to code",
			importfile.Control{Columns: map[string]string{"PIN": "code"}},
			`[{"name":"Ann"," Pin ":"1234","user_number":1}]`,
			[][]jsonMember{{{"name", `"Ann"`}, {" Pin ", `"****"`}, {"user_number", "1"}}}},
		{"the code key mapped to nothing",
			importfile.Control{Columns: map[string]string{"code": ""}},
			`[{"name":"Ann","CODE":"1234","user_number":1}]`,
			[][]jsonMember{{{"name", `"Ann"`}, {"CODE", `"1234"`}, {"user_number", "1"}}}},
		{"no code key",
			importfile.Control{LocationColumn: "site"},
			`[{"site":101,"name":"Ann","user_number":1,"partitions":[1,2,3]}]`,
			[][]jsonMember{{{"site", "101"}, {"name", `"Ann"`}, {"user_number", "1"}, {"partitions", "[1,2,3]"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parseOK(t, []byte(tt.data), importfile.FormatJSON, tt.ctl)
			masked := maskOK(t, []byte(tt.data), importfile.FormatJSON, tt.ctl)
			if got := mustReadJSONUsers(t, masked); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("users:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestMaskCodes_GeneratedJSON_HidesEveryCode(t *testing.T) {
	data := generateJSON(t, 500, 5, 3)
	records := parseOK(t, data, importfile.FormatJSON, siteControl)
	users := mustReadJSONUsers(t, maskOK(t, data, importfile.FormatJSON, siteControl))
	if len(users) != len(records) {
		t.Fatalf("%d users came back, want %d", len(users), len(records))
	}
	for i, r := range records {
		got := `""` // generateJSON leaves out empty codes
		for _, m := range users[i] {
			if m.Key == "code" {
				got = m.Value
			}
		}
		want := `""`
		if r.Code != "" {
			want = `"` + importfile.CodeMask + `"`
		}
		if got != want {
			t.Fatalf("user %d: code %s, want %s", r.Row, got, want)
		}
	}
}

func TestMaskCodes_UnreadableInput_IsRefusedWithoutQuotingIt(t *testing.T) {
	csvFile, jsonFile := importfile.FormatCSV, importfile.FormatJSON
	tests := []struct {
		name   string
		format importfile.Format
		ctl    importfile.Control
		data   string
	}{
		{"JSON not UTF-8", jsonFile, importfile.Control{}, "[{\"name\":\"\xff\",\"user_number\":1,\"code\":\"1234\"}]"},
		{"JSON cut short", jsonFile, importfile.Control{}, `[{"name":"Ann","user_number":1,"code":"1234"`},
		{"JSON cut short in a code", jsonFile, importfile.Control{}, `[{"name":"Ann","user_number":1,"code":"1234`},
		{"JSON broken between users", jsonFile, importfile.Control{}, `[{"code":"1234"} {"code":"1234"}]`},
		{"JSON text after the users", jsonFile, importfile.Control{}, `[{"name":"Ann","user_number":1,"code":"1234"}] 1234`},
		{"JSON user not an object", jsonFile, importfile.Control{}, `[{"name":"Ann","user_number":1},1234]`},
		{"JSON unknown key", jsonFile, importfile.Control{}, `[{"name":"Ann","user_number":1,"pin":"1234"}]`},
		{"JSON object without users", jsonFile, importfile.Control{}, `{"people":[{"code":"1234"}]}`},
		{"JSON users object with another key", jsonFile, importfile.Control{}, `{"users":[{"code":"1234"}],"code":"1234"}`},
		{"JSON string", jsonFile, importfile.Control{}, `"1234"`},
		{"CSV quote not closed", csvFile, importfile.Control{}, "name,user_number,code\nAnn,1,\"1234\n"},
		{"CSV bare quote", csvFile, importfile.Control{}, "name,user_number,code\nAnn,1,12\"34\n"},
		{"CSV row longer than the header", csvFile, importfile.Control{}, "name,user_number,code\n\"Lee, Ann\",1,1234,5\n"},
		{"CSV row shorter than the header", csvFile, importfile.Control{}, "name,user_number,code\nAnn,1234\n"},
		{"CSV unknown column", csvFile, importfile.Control{}, "name,user_number,pin\nAnn,1,1234\n"},
		{"CSV without header", csvFile, importfile.Control{}, "Ann,1,1234\n"},
		{"CSV not UTF-8", csvFile, importfile.Control{}, "name,user_number,code\nAnn\xff,1,1234\n"},
		{"empty", csvFile, importfile.Control{}, " \r\n\n"},
		{"unknown format", "xml", importfile.Control{}, "name,user_number,code\nAnn,1,1234\n"},
		{"control mapping two columns to code", csvFile,
			importfile.Control{Columns: map[string]string{"PIN": "code", "Secret": "code"}},
			"name,user_number,pin,secret\nAnn,1,1234,1234\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			masked, err := importfile.MaskCodes([]byte(tt.data), tt.format, tt.ctl)
			if err == nil || masked != nil {
				t.Fatalf("got %q and %v, want an error and no file", masked, err)
			}
			var problems *importfile.Problems
			if !errors.As(err, &problems) {
				t.Fatalf("got %T %v, want *Problems", err, err)
			}
			if strings.Contains(err.Error(), "1234") || strings.Contains(listProblems(err), "1234") {
				t.Errorf("the error quotes the file: %v\n%s", err, listProblems(err))
			}
		})
	}
}

func TestMaskCodes_TooBig_IsRefused(t *testing.T) {
	data := append(lines("name,user_number,code"), bytes.Repeat([]byte("Ann,1,1234\n"), importfile.MaxDataBytes/10)...)
	if masked, err := importfile.MaskCodes(data, importfile.FormatCSV, importfile.Control{}); err == nil || masked != nil {
		t.Fatalf("a %d-byte file: got %d bytes and %v, want an error", len(data), len(masked), err)
	}
}

func BenchmarkMaskCodes(b *testing.B) {
	data := importfile.GenerateCSV(50_000, 100, 1)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := importfile.MaskCodes(data, importfile.FormatCSV, siteControl); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMaskCodes_CSVSingleColumn_KeepsRowsOfOneEmptyCell(t *testing.T) {
	// encoding/csv writes a row of one empty cell as an empty line, which
	// a reader skips: the row would be lost.
	data := lines("code", `""`, "1234", `" "`)
	masked := maskOK(t, data, importfile.FormatCSV, importfile.Control{})
	want := [][]string{{"code"}, {""}, {"****"}, {" "}}
	if got := mustReadCSVCells(t, masked); !reflect.DeepEqual(got, want) {
		t.Errorf("cells:\n%q\nwant:\n%q", got, want)
	}
}
