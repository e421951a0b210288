package importfile_test

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/syncer/importfile"
)

func TestParseCSV_AllFields_BecomeRecords(t *testing.T) {
	data := lines(
		"external_id,name,email,user_number,authority,partitions,schedule,code",
		"E-1, Ann Lee ,ann@example.com,7,Master,1;3,Mon-Fri,0123",
		"E-2,Bob,,8,,,,",
		`e-1,"Lee, Chris",chris.lee+alarm@example.com,0009,arm_only,"2, 1 2",Weekends,12345678`,
		`,"=HYPERLINK(""http://x"",""y"")",,10,duress,32,,`,
	)
	got := parseOK(t, data, importfile.FormatCSV, importfile.Control{})
	want := []importfile.Record{
		{Row: 2, ExternalID: "E-1", Name: "Ann Lee", Email: "ann@example.com", UserNumber: 7, Authority: "master", Partitions: []int{1, 3}, Schedule: "Mon-Fri", Code: "0123"},
		{Row: 3, ExternalID: "E-2", Name: "Bob", UserNumber: 8, Authority: "standard"},
		// External ids are compared as they are written: e-1 is not E-1.
		{Row: 4, ExternalID: "e-1", Name: "Lee, Chris", Email: "chris.lee+alarm@example.com", UserNumber: 9, Authority: "arm_only", Partitions: []int{1, 2}, Schedule: "Weekends", Code: "12345678"},
		// A cell that looks like a formula is data: downloads escape it.
		{Row: 5, Name: `=HYPERLINK("http://x","y")`, UserNumber: 10, Authority: "duress", Partitions: []int{32}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records:\n%+v\nwant:\n%+v", got, want)
	}
}

func TestParseCSV_EachRule_ReportsRowColumnAndMessage(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) }
	tests := []struct {
		name string
		ctl  importfile.Control
		data []byte
		want []importfile.Problem
	}{
		{"name empty", importfile.Control{},
			lines("name,user_number", "Ann,1", " ,5"),
			[]importfile.Problem{problem(3, "name", "name is required")}},
		{"name with a control character", importfile.Control{},
			lines("name,user_number", "\"Ann\tLee\",5"),
			[]importfile.Problem{problem(2, "name", "name must not contain control characters (found U+0009)")}},
		{"name with a line break", importfile.Control{},
			lines("name,user_number", "\"Ann", "Lee\",5"),
			[]importfile.Problem{problem(2, "name", "name must not contain control characters (found U+000A)")}},
		{"name too long", importfile.Control{},
			lines("name,user_number", long(200)+",4", long(201)+",5"),
			[]importfile.Problem{problem(3, "name", "name must be at most 200 characters")}},
		{"user number empty", importfile.Control{},
			lines("name,user_number", "Ann,"),
			[]importfile.Problem{problem(2, "user_number", "user_number is required")}},
		{"user number not a number", importfile.Control{},
			lines("name,user_number", "Ann,seven", "Bob,1.0", "Cy,-3", "Di,0", "Ed,10000", "Flo,9999", "Gus,1"),
			[]importfile.Problem{
				problem(2, "user_number", `user_number must be a whole number from 1 to 9999, got "seven"`),
				problem(3, "user_number", `user_number must be a whole number from 1 to 9999, got "1.0"`),
				problem(4, "user_number", `user_number must be a whole number from 1 to 9999, got "-3"`),
				problem(5, "user_number", `user_number must be a whole number from 1 to 9999, got "0"`),
				problem(6, "user_number", `user_number must be a whole number from 1 to 9999, got "10000"`),
			}},
		{"user number value cut in the message", importfile.Control{},
			lines("name,user_number", "Ann,"+strings.Repeat("x", 50)),
			[]importfile.Problem{problem(2, "user_number", `user_number must be a whole number from 1 to 9999, got "`+strings.Repeat("x", 40)+`"…`)}},
		{"email not an address", importfile.Control{},
			lines("name,user_number,email", "Ann,5,ann@", "Bob,6,bob@example.com"),
			[]importfile.Problem{problem(2, "email", `email is not a valid address: "ann@"`)}},
		{"email with a display name", importfile.Control{},
			lines("name,user_number,email", "Ann,5,Ann <ann@example.com>", "Bob,6,bob@example.com (Bob)"),
			[]importfile.Problem{
				problem(2, "email", `email must be a bare address such as name@example.com, without a name or a comment: "Ann <ann@example.com>"`),
				problem(3, "email", `email must be a bare address such as name@example.com, without a name or a comment: "bob@example.com (Bob)"`),
			}},
		{"email with a control character", importfile.Control{},
			lines("name,user_number,email", "Ann,5,\"ann\t@example.com\""),
			[]importfile.Problem{problem(2, "email", "email must not contain control characters (found U+0009)")}},
		{"authority unknown", importfile.Control{},
			lines("name,user_number,authority", "Ann,5,Boss", "Bob,6,GUEST"),
			[]importfile.Problem{problem(2, "authority", `authority "Boss" is not one of master, standard, arm_only, duress or guest, and the control file does not map it`)}},
		{"partitions not numbers", importfile.Control{},
			lines("name,user_number,partitions", "Ann,5,1;x", "Bob,6,[1]"),
			[]importfile.Problem{
				problem(2, "partitions", `partitions must be numbers separated by ";", "," or spaces, got "1;x"`),
				problem(3, "partitions", `partitions must be numbers separated by ";", "," or spaces, got "[1]"`),
			}},
		{"partition out of range", importfile.Control{},
			lines("name,user_number,partitions", "Ann,5,1;33", "Bob,6,0", "Cy,7,32"),
			[]importfile.Problem{
				problem(2, "partitions", "partition 33 is outside 1 to 32"),
				problem(3, "partitions", "partition 0 is outside 1 to 32"),
			}},
		{"schedule too long or with a control character", importfile.Control{},
			lines("name,user_number,schedule", "Ann,5,"+strings.Repeat("s", 201), "Bob,6,\"a\x7fb\""),
			[]importfile.Problem{
				problem(2, "schedule", "schedule must be at most 200 characters"),
				problem(3, "schedule", "schedule must not contain control characters (found U+007F)"),
			}},
		{"code not 4 to 8 digits", importfile.Control{},
			lines("name,user_number,code", "Ann,5,12a4", "Bob,6,123", "Cy,7,123456789", "Di,8,12 34", "Ed,9,１２３４"),
			[]importfile.Problem{
				problem(2, "code", "code must be 4 to 8 digits"),
				problem(3, "code", "code must be 4 to 8 digits"),
				problem(4, "code", "code must be 4 to 8 digits"),
				problem(5, "code", "code must be 4 to 8 digits"),
				problem(6, "code", "code must be 4 to 8 digits"),
			}},
		{"external id too long", importfile.Control{},
			lines("external_id,name,user_number", strings.Repeat("i", 64)+",Ann,5", strings.Repeat("i", 65)+",Bob,6"),
			[]importfile.Problem{problem(3, "external_id", "external_id must be at most 64 characters")}},
		{"user number twice", importfile.Control{},
			lines("name,user_number", "Ann,5", "Bob,6", "Cy,05", "Di,5"),
			[]importfile.Problem{
				problem(4, "user_number", "user number 5 appears on rows 2 and 4"),
				problem(5, "user_number", "user number 5 appears on rows 2 and 5"),
			}},
		{"external id twice", importfile.Control{},
			lines("external_id,name,user_number", "E-1,Ann,5", "E-2,Bob,6", "E-1,Cy,7", ",Di,8", ",Ed,9"),
			[]importfile.Problem{problem(4, "external_id", `external_id "E-1" appears on rows 2 and 4`)}},
		{"protected user number", importfile.Control{ProtectedUserNumbers: []int{1, 2}},
			lines("name,user_number", "Ann,1", "Bob,3", "Cy,2"),
			[]importfile.Problem{
				problem(2, "user_number", "user number 1 is protected by the control file"),
				problem(4, "user_number", "user number 2 is protected by the control file"),
			}},
		{"every problem of a row", importfile.Control{},
			lines("name,user_number,email,code", ",0,x,12"),
			[]importfile.Problem{
				problem(2, "name", "name is required"),
				problem(2, "user_number", `user_number must be a whole number from 1 to 9999, got "0"`),
				problem(2, "email", `email is not a valid address: "x"`),
				problem(2, "code", "code must be 4 to 8 digits"),
			}},
		{"row of empty cells", importfile.Control{},
			lines("name,user_number", "Ann,5", ","),
			[]importfile.Problem{
				problem(3, "name", "name is required"),
				problem(3, "user_number", "user_number is required"),
			}},
		{"line of spaces is a row", importfile.Control{},
			lines("name,user_number", "Ann,5", "   ", "Bob,6"),
			[]importfile.Problem{problem(3, "", "the row has 1 cell but the header has 2: a cell holding a comma must be in quotes")}},
		{"row of the wrong length", importfile.Control{},
			lines("name,user_number", "Lee, Ann,5", "Bob"),
			[]importfile.Problem{
				problem(2, "", "the row has 3 cells but the header has 2: a cell holding a comma must be in quotes"),
				problem(3, "", "the row has 1 cell but the header has 2: a cell holding a comma must be in quotes"),
			}},
		{"unknown column", importfile.Control{},
			lines("name,user_number,colour,Size", "Ann,5,red,L"),
			[]importfile.Problem{
				problem(1, "colour", `unknown column "colour": it is not a standard field (external_id, name, email, user_number, authority, partitions, schedule, code) and the control file does not map it`),
				problem(1, "Size", `unknown column "Size": it is not a standard field (external_id, name, email, user_number, authority, partitions, schedule, code) and the control file does not map it`),
			}},
		{"required columns missing", importfile.Control{},
			lines("email", "ann@example.com"),
			[]importfile.Problem{
				problem(1, "name", "the file has no name column, which is required"),
				problem(1, "user_number", "the file has no user_number column, which is required"),
			}},
		{"column twice", importfile.Control{},
			lines("name,user_number, Name ", "Ann,5,Bob"),
			[]importfile.Problem{problem(1, "Name", `column "Name" appears twice in the header row (columns 1 and 3)`)}},
		{"column without a name", importfile.Control{},
			lines("name,user_number,", "Ann,5,"),
			[]importfile.Problem{problem(1, "", "column 3 has no name in the header row")}},
		{"column name with a control character", importfile.Control{},
			lines("name,user_number,\"a\x1bb\"", "Ann,5,x"),
			[]importfile.Problem{problem(1, `"a\x1bb"`, "a column name must not contain control characters (found U+001B)")}},
		{"semicolons between columns", importfile.Control{},
			lines("name;user_number", "Ann;5"),
			[]importfile.Problem{problem(1, "", "the header row is a single column: columns must be separated by commas, and this file seems to use semicolons or tabs")}},
		{"no header row", importfile.Control{},
			lines("Ann,5,9137", "Bob,6,4242"),
			[]importfile.Problem{
				problem(1, "Ann", `unknown column "Ann": it is not a standard field (external_id, name, email, user_number, authority, partitions, schedule, code) and the control file does not map it`),
				problem(1, "", "column 2 is named with a number: the first row must name the columns"),
				problem(1, "", "column 3 is named with a number: the first row must name the columns"),
				problem(1, "name", "the file has no name column, which is required"),
				problem(1, "user_number", "the file has no user_number column, which is required"),
			}},
		{"quote inside an unquoted cell", importfile.Control{},
			lines("name,user_number", "Ann,5", `Bob "B" Lee,6`, "Cy,7"),
			[]importfile.Problem{problem(3, "", `line 3, position 5: a quote (") inside a cell that does not start with one: put the whole cell in quotes and double each quote in it`)}},
		{"quoted cell not closed", importfile.Control{},
			lines("name,user_number", "Ann,5", `"Bob,6`, "Cy,7"),
			[]importfile.Problem{problem(3, "", `line 4, position 6: a quoted cell is not closed, or has text after its closing quote`)}},
		{"text after a closing quote", importfile.Control{},
			lines("name,user_number", `"Bob" Lee,6`),
			[]importfile.Problem{problem(2, "", `line 2, position 5: a quoted cell is not closed, or has text after its closing quote`)}},
		{"empty file", importfile.Control{},
			[]byte(" \r\n\n"),
			[]importfile.Problem{problem(0, "", "the data file is empty")}},
		{"header and no users", importfile.Control{},
			lines("name,user_number", "", ""),
			[]importfile.Problem{problem(0, "", "the data file lists no users")}},
		{"not UTF-8", importfile.Control{},
			lines("name,user_number", "Ann,5", "Jos\xe9,6"),
			[]importfile.Problem{problem(0, "", "the data file is not UTF-8 (the first byte that is not is on line 3): save it as UTF-8")}},
		{"UTF-16", importfile.Control{},
			[]byte("\xff\xfen\x00a\x00m\x00e\x00"),
			[]importfile.Problem{problem(0, "", "the data file is UTF-16: save it as UTF-8")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertProblems(t, parseProblems(t, tt.data, importfile.FormatCSV, tt.ctl), tt.want)
		})
	}
}

func TestParseCSV_RowNumbers_CountEmptyLinesAndNotLineBreaksInCells(t *testing.T) {
	for _, eol := range []string{"\n", "\r\n"} {
		file := func(last string) []byte {
			return []byte(strings.Join([]string{
				"name,user_number,partitions", // row 1
				"Ann,1,1",                     // row 2
				"",                            // row 3, empty
				`Bob,2,"1`,                    // row 4 goes on
				`2"`,                          // on this line
				"",                            // row 5, empty
				"",                            // row 6, empty
				last,                          // row 7
			}, eol) + eol)
		}
		records := parseOK(t, file("Cy,3,3"), importfile.FormatCSV, importfile.Control{})
		var rows []int
		for _, r := range records {
			rows = append(rows, r.Row)
		}
		if !reflect.DeepEqual(rows, []int{2, 4, 7}) {
			t.Errorf("eol %q: rows %v, want [2 4 7]", eol, rows)
		}
		if got := records[1].Partitions; !reflect.DeepEqual(got, []int{1, 2}) {
			t.Errorf("eol %q: partitions of a cell with a line break %v, want [1 2]", eol, got)
		}
		assertProblems(t, parseProblems(t, file("Cy,x,3"), importfile.FormatCSV, importfile.Control{}),
			[]importfile.Problem{problem(7, "user_number", `user_number must be a whole number from 1 to 9999, got "x"`)})
	}
}

func TestParseCSV_ByteOrderMarkAndLineEnds_ReadTheSame(t *testing.T) {
	plain := "name,user_number,schedule\nAnn,5,\"Mon\nFri\"\n"
	want := parseProblems(t, []byte(plain), importfile.FormatCSV, importfile.Control{})
	if len(want) != 1 {
		t.Fatalf("got %v, want one problem about the line break in the schedule", want)
	}
	for name, data := range map[string]string{
		"BOM":           "\xEF\xBB\xBF" + plain,
		"CRLF":          strings.ReplaceAll(plain, "\n", "\r\n"),
		"BOM and CRLF":  "\xEF\xBB\xBF" + strings.ReplaceAll(plain, "\n", "\r\n"),
		"no final line": strings.TrimSuffix(plain, "\n"),
	} {
		t.Run(name, func(t *testing.T) {
			assertProblems(t, parseProblems(t, []byte(data), importfile.FormatCSV, importfile.Control{}), want)
		})
	}
	// With a BOM the first column is still "name", not "\ufeffname".
	records := parseOK(t, []byte("\xEF\xBB\xBFname,user_number\r\nAnn,5\r\n"), importfile.FormatCSV, importfile.Control{})
	if records[0].Name != "Ann" || records[0].UserNumber != 5 {
		t.Errorf("got %+v", records[0])
	}
}

func TestParseCSV_QuotedCells_HoldCommasQuotesAndLineBreaks(t *testing.T) {
	data := lines(
		"name,user_number,partitions,schedule",
		`"Lee, Ann ""Annie""",5,"1,2","Mon, Wed"`,
		`"O'Brien, Bob",6,"1`,
		`2;3",`,
	)
	records := parseOK(t, data, importfile.FormatCSV, importfile.Control{})
	want := []importfile.Record{
		{Row: 2, Name: `Lee, Ann "Annie"`, UserNumber: 5, Authority: "standard", Partitions: []int{1, 2}, Schedule: "Mon, Wed"},
		{Row: 3, Name: "O'Brien, Bob", UserNumber: 6, Authority: "standard", Partitions: []int{1, 2, 3}},
	}
	if !reflect.DeepEqual(records, want) {
		t.Errorf("records:\n%+v\nwant:\n%+v", records, want)
	}
}

func TestParseCSV_ControlFile_MapsColumnsAuthorityLocationAndDefaults(t *testing.T) {
	ctl := importfile.Control{
		Columns:              map[string]string{"Full Name": "name", "Slot": "user_number", "PIN": "code", "Level": "authority", "E-Mail": "email", "Notes": ""},
		Authority:            map[string]string{"Manager": "master", "Cleaner": "guest", "": "arm_only"},
		LocationColumn:       "Site",
		ProtectedUserNumbers: []int{1},
		DefaultPartitions:    []int{2, 1},
	}
	data := lines(
		" full name ,SLOT,pin,Level,Notes,site,partitions,e-mail",
		"Ann Lee,2,1234,manager,call first,North,,ann@example.com",
		"Bob,2,,Cleaner,,South,3,",
		"Cy,3,,,,North,,",
		"Di,4,,Standard,,North,,",
	)
	got := parseOK(t, data, importfile.FormatCSV, ctl)
	want := []importfile.Record{
		{Row: 2, Location: "North", Name: "Ann Lee", Email: "ann@example.com", UserNumber: 2, Authority: "master", Partitions: []int{1, 2}, Code: "1234"},
		// The same user number is fine in another location.
		{Row: 3, Location: "South", Name: "Bob", UserNumber: 2, Authority: "guest", Partitions: []int{3}},
		{Row: 4, Location: "North", Name: "Cy", UserNumber: 3, Authority: "arm_only", Partitions: []int{1, 2}},
		{Row: 5, Location: "North", Name: "Di", UserNumber: 4, Authority: "standard", Partitions: []int{1, 2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records:\n%+v\nwant:\n%+v", got, want)
	}
	// Each record has its own partitions.
	got[0].Partitions[0] = 9
	if got[2].Partitions[0] != 1 || ctl.DefaultPartitions[0] != 2 {
		t.Error("records share their default partitions")
	}
}

func TestParseCSV_ControlFile_Problems(t *testing.T) {
	site := importfile.Control{LocationColumn: "Site"}
	tests := []struct {
		name string
		ctl  importfile.Control
		data []byte
		want []importfile.Problem
	}{
		{"user number twice in one location", site,
			lines("name,user_number,site", "Ann,2,North", "Bob,2,South", "Cy,2,North"),
			[]importfile.Problem{problem(4, "user_number", `user number 2 appears on rows 2 and 4 for location "North"`)}},
		{"external id twice in one location", site,
			lines("external_id,name,user_number,site", "E1,Ann,2,North", "E1,Bob,3,South", "E1,Cy,4,North"),
			[]importfile.Problem{problem(4, "external_id", `external_id "E1" appears on rows 2 and 4 for location "North"`)}},
		{"location empty", site,
			lines("name,user_number,site", "Ann,2,North", "Bob,3, "),
			[]importfile.Problem{problem(3, "site", "the location must not be empty")}},
		{"location column missing", site,
			lines("name,user_number", "Ann,2"),
			[]importfile.Problem{problem(1, "Site", `the file has no column "Site", which the control file names as the location column`)}},
		{"mapped column missing", importfile.Control{Columns: map[string]string{"Full Name": "name"}},
			lines("user_number", "2"),
			[]importfile.Problem{problem(1, "Full Name", `the file has no column "Full Name", which the control file maps to name, a required field`)}},
		{"mapped column and standard column both", importfile.Control{Columns: map[string]string{"Full Name": "name"}},
			lines("Full Name,name,user_number", "Ann,Annie,2"),
			[]importfile.Problem{problem(1, "name", `columns "Full Name" and "name" both give name`)}},
		{"numbered column the control file maps", importfile.Control{Columns: map[string]string{"2024": "schedule"}},
			lines("name,user_number,2024,2025", "Ann,5,x,y"),
			[]importfile.Problem{problem(1, "", "column 4 is named with a number: the first row must name the columns")}},
		{"mapped column named in problems", importfile.Control{Columns: map[string]string{"PIN": "code", "Slot": "user_number"}},
			lines("name,slot,pin", "Ann,0,12"),
			[]importfile.Problem{
				problem(2, "slot", `user_number must be a whole number from 1 to 9999, got "0"`),
				problem(2, "pin", "code must be 4 to 8 digits"),
			}},
		{"authority not mapped", importfile.Control{Authority: map[string]string{"Manager": "master"}},
			lines("name,user_number,authority", "Ann,2,Boss"),
			[]importfile.Problem{problem(2, "authority", `authority "Boss" is not one of master, standard, arm_only, duress or guest, and the control file does not map it`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertProblems(t, parseProblems(t, tt.data, importfile.FormatCSV, tt.ctl), tt.want)
		})
	}
}

func TestParse_InvalidControl_IsRefusedAsTheControlFile(t *testing.T) {
	ctl := importfile.Control{Columns: map[string]string{"PIN": "pin"}, ProtectedUserNumbers: []int{0}}
	_, err := importfile.Parse(lines("name,user_number", "Ann,5"), importfile.FormatCSV, ctl)
	assertProblems(t, problemsOf(t, err, "control").List, []importfile.Problem{
		problem(0, "columns.PIN", `"pin" is not a field: map the column to one of external_id, name, email, user_number, authority, partitions, schedule, code, or to "" to ignore it`),
		problem(0, "protected_user_numbers[0]", "user number 0 is outside 1 to 9999"),
	})
}

func TestParse_UnknownFormat_IsAProblem(t *testing.T) {
	assertProblems(t, parseProblems(t, lines("name,user_number", "Ann,5"), "xml", importfile.Control{}),
		[]importfile.Problem{problem(0, "", `unknown data file format "xml": use csv or json`)})
}

func TestParse_Limits(t *testing.T) {
	t.Run("10 MiB is accepted", func(t *testing.T) {
		data := lines("name,user_number", "Ann,5")
		data = append(data, bytes.Repeat([]byte("\n"), importfile.MaxDataBytes-len(data))...)
		if records := parseOK(t, data, importfile.FormatCSV, importfile.Control{}); len(records) != 1 {
			t.Errorf("got %d records", len(records))
		}
	})
	t.Run("a byte more is one problem", func(t *testing.T) {
		data := bytes.Repeat([]byte("x"), importfile.MaxDataBytes+1)
		for _, format := range []importfile.Format{importfile.FormatCSV, importfile.FormatJSON} {
			assertProblems(t, parseProblems(t, data, format, importfile.Control{}),
				[]importfile.Problem{problem(0, "", "the data file is 10485761 bytes; it may be at most 10485760 (10 MiB)")})
		}
	})
	tooMany := []importfile.Problem{problem(0, "", "the data file has more than 50000 rows: split it into files of at most 50000")}
	t.Run("50,000 CSV rows are accepted, 50,001 are one problem", func(t *testing.T) {
		if records := parseOK(t, importfile.GenerateCSV(50_000, 100, 1), importfile.FormatCSV, siteControl); len(records) != 50_000 {
			t.Errorf("got %d records", len(records))
		}
		assertProblems(t, parseProblems(t, importfile.GenerateCSV(50_001, 100, 1), importfile.FormatCSV, siteControl), tooMany)
	})
	t.Run("50,001 JSON users are one problem", func(t *testing.T) {
		var b bytes.Buffer
		b.WriteString("[")
		for i := range 50_001 {
			fmt.Fprintf(&b, `{"name":"A","user_number":%d,"site":"S%d"},`, 1+i%9999, i/9999)
		}
		data := b.Bytes()
		data[len(data)-1] = ']'
		assertProblems(t, parseProblems(t, data, importfile.FormatJSON, siteControl), tooMany)
	})
	t.Run("problems beyond 1,000 are counted, the file's own first", func(t *testing.T) {
		var b bytes.Buffer
		b.WriteString("name,user_number\n")
		for range 50_001 {
			b.WriteString("Ann,0\n")
		}
		_, err := importfile.Parse(b.Bytes(), importfile.FormatCSV, importfile.Control{})
		problems := problemsOf(t, err, "data")
		if len(problems.List) != 1000 || problems.Omitted != 50_001-1000 {
			t.Fatalf("got %d problems and %d omitted, want 1000 and %d", len(problems.List), problems.Omitted, 50_001-1000)
		}
		if problems.List[0] != tooMany[0] || problems.List[1].Row != 2 || problems.List[999].Row != 1000 {
			t.Errorf("first problems %v %v, last %v", problems.List[0], problems.List[1], problems.List[999])
		}
		if want := "data file: 50001 problems; the data file has more than 50000 rows: split it into files of at most 50000"; err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}
	})
}
