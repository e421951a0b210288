package importfile_test

import (
	"reflect"
	"testing"

	"github.com/panelsync/panelsync/syncer/importfile"
)

func TestParseJSON_ArrayAndUsersObject_BecomeRecords(t *testing.T) {
	users := `[
		{"external_id": 1001, "name": " Ann Lee ", "email": "ann@example.com", "user_number": 7,
		 "authority": "Master", "partitions": [3, 1, 3], "schedule": "Mon-Fri", "code": "0123"},
		{"name": "Bob", "user_number": "0008", "email": null, "partitions": null, "code": null},
		{"NAME": "Cy", "User_Number": 9, "partitions": []}
	]`
	want := []importfile.Record{
		{Row: 1, ExternalID: "1001", Name: "Ann Lee", Email: "ann@example.com", UserNumber: 7, Authority: "master", Partitions: []int{1, 3}, Schedule: "Mon-Fri", Code: "0123"},
		{Row: 2, Name: "Bob", UserNumber: 8, Authority: "standard"},
		{Row: 3, Name: "Cy", UserNumber: 9, Authority: "standard"},
	}
	for name, data := range map[string]string{
		"array":           users,
		"users object":    `{"users": ` + users + `}`,
		"byte order mark": "\xEF\xBB\xBF" + users,
	} {
		t.Run(name, func(t *testing.T) {
			got := parseOK(t, []byte(data), importfile.FormatJSON, importfile.Control{})
			if !reflect.DeepEqual(got, want) {
				t.Errorf("records:\n%+v\nwant:\n%+v", got, want)
			}
		})
	}
}

func TestParseJSON_ControlFile_MapsKeysAndLocation(t *testing.T) {
	ctl := importfile.Control{
		Columns:           map[string]string{"fullName": "name", "slot": "user_number", "pin": "code", "role": "authority", "hr_ref": ""},
		Authority:         map[string]string{"Manager": "master"},
		LocationColumn:    "siteNo",
		DefaultPartitions: []int{1},
	}
	data := `[{"fullName":"Ann","slot":2,"pin":"1234","role":"manager","hr_ref":{"any":"thing"},"siteNo":101},
	          {"fullName":"Bob","slot":2,"siteNo":"102"}]`
	got := parseOK(t, []byte(data), importfile.FormatJSON, ctl)
	want := []importfile.Record{
		{Row: 1, Location: "101", Name: "Ann", UserNumber: 2, Authority: "master", Partitions: []int{1}, Code: "1234"},
		{Row: 2, Location: "102", Name: "Bob", UserNumber: 2, Authority: "standard", Partitions: []int{1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records:\n%+v\nwant:\n%+v", got, want)
	}
}

func TestParseJSON_EachRule_ReportsRowColumnAndMessage(t *testing.T) {
	const shape = `the data file must be a JSON array of users, or an object whose only key is "users"`
	tests := []struct {
		name string
		ctl  importfile.Control
		data string
		want []importfile.Problem
	}{
		{"missing required keys", importfile.Control{},
			`[{"name":"Ann","user_number":1},{"email":"bob@example.com"}]`,
			[]importfile.Problem{
				problem(2, "name", "name is required"),
				problem(2, "user_number", "user_number is required"),
			}},
		{"missing mapped keys are named as the control file names them", importfile.Control{Columns: map[string]string{"fullName": "name"}, LocationColumn: "site"},
			`[{"user_number":1}]`,
			[]importfile.Problem{
				problem(1, "site", "the location must not be empty"),
				problem(1, "fullName", "name is required"),
			}},
		{"user is not an object", importfile.Control{},
			`[{"name":"Ann","user_number":1}, 5, "Bob", [1], null]`,
			[]importfile.Problem{
				problem(2, "", "each user must be a JSON object"),
				problem(3, "", "each user must be a JSON object"),
				problem(4, "", "each user must be a JSON object"),
				problem(5, "", "each user must be a JSON object"),
			}},
		{"values of the wrong type", importfile.Control{},
			`[{"name":5,"user_number":true,"email":["a@example.com"],"authority":{"x":1},"schedule":1,"code":1234,"partitions":"1;2"}]`,
			[]importfile.Problem{
				problem(1, "name", "name must be a string"),
				problem(1, "user_number", "user_number must be a whole number from 1 to 9999"),
				problem(1, "email", "email must be a string"),
				problem(1, "authority", "authority must be a string"),
				problem(1, "schedule", "schedule must be a string"),
				problem(1, "code", "code must be a string of 4 to 8 digits"),
				problem(1, "partitions", "partitions must be an array of whole numbers, such as [1, 2]"),
			}},
		{"user number not whole", importfile.Control{},
			`[{"name":"Ann","user_number":1.0},{"name":"Bob","user_number":-2},{"name":"Cy","user_number":1e3}]`,
			[]importfile.Problem{
				problem(1, "user_number", `user_number must be a whole number from 1 to 9999, got "1.0"`),
				problem(2, "user_number", `user_number must be a whole number from 1 to 9999, got "-2"`),
				problem(3, "user_number", `user_number must be a whole number from 1 to 9999, got "1e3"`),
			}},
		{"bad partitions, first one reported", importfile.Control{},
			`[{"name":"Ann","user_number":1,"partitions":[1,"2",33]},{"name":"Bob","user_number":2,"partitions":[0]},
			  {"name":"Cy","user_number":3,"partitions":[[1]]},{"name":"Di","user_number":4,"partitions":[1.5]},
			  {"name":"Ed","user_number":5,"partitions":[null]}]`,
			[]importfile.Problem{
				problem(1, "partitions", `partitions must be whole numbers from 1 to 32, got "2"`),
				problem(2, "partitions", `partitions must be whole numbers from 1 to 32, got "0"`),
				problem(3, "partitions", `partitions must be whole numbers from 1 to 32, got an array or object`),
				problem(4, "partitions", `partitions must be whole numbers from 1 to 32, got "1.5"`),
				problem(5, "partitions", `partitions must be whole numbers from 1 to 32, got null`),
			}},
		{"key twice", importfile.Control{},
			`[{"name":"Ann","user_number":1,"name":"Annie"},{"Name":"Bob","name":"Bobby","user_number":2}]`,
			[]importfile.Problem{
				problem(1, "name", `key "name" appears twice in this user`),
				problem(2, "name", `keys "Name" and "name" both give name`),
			}},
		{"unknown key reported once", importfile.Control{},
			`[{"name":"Ann","user_number":1,"colour":"red"},{"name":"Bob","user_number":2,"Colour":"blue","size":{"a":[1]}}]`,
			[]importfile.Problem{
				problem(1, "colour", `unknown column "colour": it is not a standard field (external_id, name, email, user_number, authority, partitions, schedule, code) and the control file does not map it`),
				problem(2, "size", `unknown column "size": it is not a standard field (external_id, name, email, user_number, authority, partitions, schedule, code) and the control file does not map it`),
			}},
		{"escaped keys are read unescaped", importfile.Control{},
			`[{"n\u0061me":"Ann","user_number":1,"\u0000":1}]`,
			[]importfile.Problem{
				problem(1, `"\x00"`, `unknown column "\x00": it is not a standard field (external_id, name, email, user_number, authority, partitions, schedule, code) and the control file does not map it`),
			}},
		{"control characters in escaped strings", importfile.Control{},
			`[{"name":"Ann\nLee","user_number":1}]`,
			[]importfile.Problem{problem(1, "name", "name must not contain control characters (found U+000A)")}},
		{"user number twice", importfile.Control{},
			`[{"name":"Ann","user_number":1},{"name":"Bob","user_number":"1"}]`,
			[]importfile.Problem{problem(2, "user_number", "user number 1 appears on rows 1 and 2")}},
		{"syntax error in a user", importfile.Control{},
			`[{"name":"Ann","user_number":1},
			  {"name":"Bob","user_number":2,"code":0424}]`,
			[]importfile.Problem{
				// The decoder reads 0 as a number before it meets the 4.
				problem(2, "code", "code must be a string of 4 to 8 digits"),
				problem(2, "", "the data file is not valid JSON at line 2, column 44"),
			}},
		{"syntax error between users", importfile.Control{},
			`[{"name":"Ann","user_number":1} {"name":"Bob","user_number":2}]`,
			[]importfile.Problem{problem(0, "", "the data file is not valid JSON at line 1, column 33")}},
		{"ends early", importfile.Control{},
			`[{"name":"Ann","user_number":1}`,
			[]importfile.Problem{problem(0, "", "the data file is not valid JSON: it ends before its last value is complete")}},
		{"ends inside a user", importfile.Control{},
			`[{"name":"Ann","user_number":1},{"name":"B`,
			[]importfile.Problem{problem(2, "", "the data file is not valid JSON: it ends before its last value is complete")}},
		{"something after the array", importfile.Control{},
			`[{"name":"Ann","user_number":1}] []`,
			[]importfile.Problem{problem(0, "", "the data file must hold one JSON value and nothing after it")}},
		{"object without users", importfile.Control{},
			`{"people":[]}`,
			[]importfile.Problem{problem(0, "", shape)}},
		{"users object with another key", importfile.Control{},
			`{"users":[{"name":"Ann","user_number":1}],"count":1}`,
			[]importfile.Problem{problem(0, "", shape)}},
		{"users not an array", importfile.Control{},
			`{"users":{"name":"Ann"}}`,
			[]importfile.Problem{problem(0, "", shape)}},
		{"a string", importfile.Control{},
			`"name,user_number"`,
			[]importfile.Problem{problem(0, "", shape)}},
		{"no users", importfile.Control{},
			`{"users":[]}`,
			[]importfile.Problem{problem(0, "", "the data file lists no users")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertProblems(t, parseProblems(t, []byte(tt.data), importfile.FormatJSON, tt.ctl), tt.want)
		})
	}
}
