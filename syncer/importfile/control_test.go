package importfile_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/syncer/importfile"
)

func TestParseControl_FullFile_BecomesControl(t *testing.T) {
	data := "\xEF\xBB\xBF" + `{
		"columns": {"PIN": "code", "Full Name": "name", "Notes": ""},
		"authority": {"Manager": "master", "": "guest"},
		"location_column": "site",
		"protected_user_numbers": [1, 9999],
		"defaults": {"partitions": [2, 1]}
	}`
	got, err := importfile.ParseControl([]byte(data))
	if err != nil {
		t.Fatalf("ParseControl: %v\n%s", err, listProblems(err))
	}
	want := importfile.Control{
		Columns:              map[string]string{"PIN": "code", "Full Name": "name", "Notes": ""},
		Authority:            map[string]string{"Manager": "master", "": "guest"},
		LocationColumn:       "site",
		ProtectedUserNumbers: []int{1, 9999},
		DefaultPartitions:    []int{2, 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseControl_EmptyObjectAndNulls_AreTheZeroControl(t *testing.T) {
	for _, data := range []string{
		`{}`,
		`{"columns":null,"authority":null,"location_column":null,"protected_user_numbers":null,"defaults":null}`,
		`{"defaults":{"partitions":null}}`,
	} {
		got, err := importfile.ParseControl([]byte(data))
		if err != nil || !reflect.DeepEqual(got, importfile.Control{}) {
			t.Errorf("%s: got %+v, %v", data, got, err)
		}
	}
}

func TestParseControl_EachRule_ReportsPathAndMessage(t *testing.T) {
	const notField = `is not a field: map the column to one of external_id, name, email, user_number, authority, partitions, schedule, code, or to "" to ignore it`
	tests := []struct {
		name string
		data string
		want []importfile.Problem
	}{
		{"unknown keys", `{"columns":{},"colums":{},"defaults":{"partitions":[1],"authority":"guest"}}`,
			[]importfile.Problem{
				problem(0, "colums", "unknown key: the control file takes columns, authority, location_column, protected_user_numbers and defaults"),
				problem(0, "defaults.authority", "unknown key: defaults takes partitions"),
			}},
		{"key given twice", `{"location_column":"a","location_column":"b","columns":{"PIN":"code","PIN":"name"}}`,
			[]importfile.Problem{
				problem(0, "location_column", "this key is given twice"),
				problem(0, "columns.PIN", "this key is given twice"),
			}},
		{"values of the wrong type", `{"columns":[],"authority":{"Manager":1},"location_column":5,"protected_user_numbers":{},"defaults":[1]}`,
			[]importfile.Problem{
				problem(0, "columns", "columns must be an object of strings"),
				problem(0, "authority.Manager", "the value must be a string"),
				problem(0, "location_column", "location_column must be a string"),
				problem(0, "protected_user_numbers", "protected_user_numbers must be an array of whole numbers"),
				problem(0, "defaults", "defaults must be an object"),
			}},
		{"column mapped to no field", `{"columns":{"PIN":"pin","Full Name":"Name","Site":"location"}}`,
			[]importfile.Problem{
				problem(0, `columns["Full Name"]`, `"Name" `+notField),
				problem(0, "columns.PIN", `"pin" `+notField),
				problem(0, "columns.Site", `"location" `+notField),
			}},
		{"field mapped twice", `{"columns":{"PIN":"code","Code":"code","Pass":"code"}}`,
			[]importfile.Problem{
				problem(0, "columns.PIN", `columns "Code" and "PIN" both map to code`),
				problem(0, "columns.Pass", `columns "Code" and "Pass" both map to code`),
			}},
		{"columns differing in case or spaces", `{"columns":{"PIN":"code","pin ":"name"}}`,
			[]importfile.Problem{problem(0, `columns["pin "]`, `"PIN" and "pin " are the same column: columns are matched ignoring case and surrounding spaces`)}},
		{"column names that are not names", `{"columns":{"":"name"," ":"code","a\tb":"email"}}`,
			[]importfile.Problem{
				problem(0, `columns[""]`, "a column name must not be empty"),
				problem(0, `columns[" "]`, "a column name must not be empty"),
				problem(0, `columns["a\tb"]`, "a column name must not contain control characters (found U+0009)"),
			}},
		{"authority mapped to no authority", `{"authority":{"Manager":"admin","Boss":"Master"}}`,
			[]importfile.Problem{
				problem(0, "authority.Boss", `"Master" is not an authority: use master, standard, arm_only, duress or guest`),
				problem(0, "authority.Manager", `"admin" is not an authority: use master, standard, arm_only, duress or guest`),
			}},
		{"authority values differing in case", `{"authority":{"Manager":"master","manager":"master"}}`,
			[]importfile.Problem{problem(0, "authority.manager", `"Manager" and "manager" are the same authority value: authority values are matched ignoring case and surrounding spaces`)}},
		{"location column also mapped", `{"columns":{"Site":"name"},"location_column":"site"}`,
			[]importfile.Problem{problem(0, "location_column", `"site" is also mapped by columns.Site: a column gives either the location or a field`)}},
		{"location column named as a field", `{"location_column":"Email"}`,
			[]importfile.Problem{problem(0, "location_column", `"Email" is the name of a standard field: the location needs a column of its own`)}},
		{"location column empty", `{"location_column":""}`,
			[]importfile.Problem{problem(0, "location_column", "location_column must not be empty: leave it out when the file has no location column")}},
		{"protected user numbers", `{"protected_user_numbers":[0,1,10000,1,"2",2.5,99999999999999999999]}`,
			[]importfile.Problem{
				problem(0, "protected_user_numbers[4]", "must be a whole number"),
				problem(0, "protected_user_numbers[5]", "must be a whole number"),
				problem(0, "protected_user_numbers[6]", "is far out of range"),
				problem(0, "protected_user_numbers[0]", "user number 0 is outside 1 to 9999"),
				problem(0, "protected_user_numbers[2]", "user number 10000 is outside 1 to 9999"),
				problem(0, "protected_user_numbers[3]", "user number 1 is listed twice (also at [1])"),
			}},
		{"default partitions", `{"defaults":{"partitions":[0,1,33,1]}}`,
			[]importfile.Problem{
				problem(0, "defaults.partitions[0]", "partition 0 is outside 1 to 32"),
				problem(0, "defaults.partitions[2]", "partition 33 is outside 1 to 32"),
				problem(0, "defaults.partitions[3]", "partition 1 is listed twice (also at [1])"),
			}},
		{"default partitions empty", `{"defaults":{"partitions":[]}}`,
			[]importfile.Problem{problem(0, "defaults.partitions", "defaults.partitions must list at least one partition: leave it out for none")}},
		{"not an object", `["columns"]`,
			[]importfile.Problem{problem(0, "", "the control file must be a JSON object")}},
		{"syntax error", "{\n  \"columns\": {\"PIN\": \"code\",}\n}",
			[]importfile.Problem{problem(0, "", "the control file is not valid JSON at line 2, column 28: invalid character ',' at start of value")}},
		{"ends early", `{"columns": {"PIN": "code"}`,
			[]importfile.Problem{problem(0, "", "the control file is not valid JSON: it ends before its last value is complete")}},
		{"two values", `{} {}`,
			[]importfile.Problem{problem(0, "", "the control file must hold one JSON object and nothing after it")}},
		{"nested too deeply", `{"columns":{"a":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}}`,
			[]importfile.Problem{problem(0, "", "the control file is nested more than 16 levels deep")}},
		{"empty", " \n",
			[]importfile.Problem{problem(0, "", "the control file is empty")}},
		{"not UTF-8", "{\"columns\":{\"Nom\":\"name\",\"Pr\xe9nom\":\"email\"}}",
			[]importfile.Problem{problem(0, "", "the control file is not UTF-8 (the first byte that is not is on line 1): save it as UTF-8")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctl, err := importfile.ParseControl([]byte(tt.data))
			if !reflect.DeepEqual(ctl, importfile.Control{}) {
				t.Errorf("got %+v with the problems, want the zero Control", ctl)
			}
			assertProblems(t, problemsOf(t, err, "control").List, tt.want)
		})
	}
}

func TestParseControl_Limit_256KiB(t *testing.T) {
	pad := func(n int) []byte {
		data := []byte(`{"columns":{"PIN":"code"}}`)
		return append(data, bytes.Repeat([]byte(" "), n-len(data))...)
	}
	if _, err := importfile.ParseControl(pad(importfile.MaxControlBytes)); err != nil {
		t.Errorf("256 KiB: %v", err)
	}
	_, err := importfile.ParseControl(pad(importfile.MaxControlBytes + 1))
	assertProblems(t, problemsOf(t, err, "control").List,
		[]importfile.Problem{problem(0, "", "the control file is 262145 bytes; it may be at most 262144 (256 KiB)")})
}
