package importfile_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/panelsync/panelsync/syncer/importfile"
)

// maskFuzzControls are the controls FuzzMaskCodes masks with: those the
// Parse fuzz targets use, and two that move the code to another column.
func maskFuzzControls() []importfile.Control {
	return append(fuzzControls(),
		importfile.Control{Columns: map[string]string{"code": ""}},
		importfile.Control{Columns: map[string]string{"code": "external_id", "Secret": "code"}, LocationColumn: "site"},
	)
}

// FuzzMaskCodes masks whatever the fuzzer makes, in either format, with
// any of maskFuzzControls. MaskCodes must not panic; it must mask every
// file Parse accepts; and every file it masks must read back with the same
// rows and cells, but for codes, which read CodeMask.
func FuzzMaskCodes(f *testing.F) {
	csvSeeds := []string{
		"name,user_number\nAnn,5\n",
		"\xEF\xBB\xBFexternal_id,name,email,user_number,authority,partitions,schedule,code\r\nE-1,\"Lee, Ann\",ann@example.com,7,Master,\"1;2\",Mon-Fri,0123\r\n",
		"name,user_number,partitions,code\nAnn,1,1,1234\n\n\"Bob\",2,\"1\r\r\n2\",\" \"\n",
		"site,name,user_number,code,secret\r\nNorth,Ann,1,E-1,1234\r\nSouth,Bob,1,,\r\n",
		"Full Name,Slot,PIN,Notes,authority\nAnn,3,1234,\"x\ry\",Manager\nBob,4,,,\n",
		"name,user_number,code\n\"Ann,5\n",
		"name,user_number,code\nAnn,5,12\"34\n",
		"code\n\"\"\n1234\n",
		"Ann,5,1234\n",
		"",
		string(importfile.GenerateCSV(20, 3, 1)),
	}
	jsonSeeds := []string{
		`[{"name":"Ann","user_number":5,"code":"1234"}]`,
		`{"users":[{"external_id":1,"name":" Ann ","email":"ann@example.com","user_number":"7","authority":"Master","partitions":[2,1,2],"schedule":"x","code":"0123"}]}`,
		`[{"site":"North","name":"Ann","user_number":1,"code":null},{"site":101,"name":"Bob","user_number":2,"code":" ","secret":"5678"}]`,
		`[{"Full Name":"Ann","Slot":3,"PIN":"1234","Notes":{"code":[1234]},"authority":"manager"}]`,
		`[{"name":"Ann","user_number":1,"code":"1234","code":"5678"},{"c\u006fde":"\u0031234","name":"Bob","user_number":2}]`,
		`[{"name":"Ann","user_number":1,"code":1234}]`,
		`[{"name":"Ann","user_number":1,"code":"1234"}`,
		`[{"name":"Ann","user_number":1}] 1234`,
		`[1234]`,
		"\xEF\xBB\xBF[]",
	}
	for _, seeds := range []struct {
		json  bool
		files []string
	}{{false, csvSeeds}, {true, jsonSeeds}} {
		for _, seed := range seeds.files {
			for pick := range len(maskFuzzControls()) {
				f.Add([]byte(seed), seeds.json, uint8(pick))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool, pick uint8) {
		controls := maskFuzzControls()
		ctl := controls[int(pick)%len(controls)]
		format := importfile.FormatCSV
		if asJSON {
			format = importfile.FormatJSON
		}
		records, parseErr := importfile.Parse(data, format, ctl)
		masked, err := importfile.MaskCodes(data, format, ctl)
		if err != nil {
			var problems *importfile.Problems
			switch {
			case masked != nil:
				t.Fatalf("got %d bytes with the error %v", len(masked), err)
			case !errors.As(err, &problems):
				t.Fatalf("got %T %v, want *Problems", err, err)
			case parseErr == nil:
				t.Fatalf("MaskCodes refuses a file Parse accepts: %v", err)
			}
			return
		}
		if asJSON {
			checkMaskedJSON(t, data, masked, ctl)
		} else {
			checkMaskedCSV(t, data, masked, ctl)
		}
		if parseErr != nil {
			return
		}
		var rows int
		if asJSON {
			rows = len(mustReadJSONUsers(t, masked))
		} else {
			rows = len(mustReadCSVCells(t, masked)) - 1
		}
		if rows != len(records) {
			t.Fatalf("the masked file has %d rows, Parse found %d", rows, len(records))
		}
	})
}

// checkMaskedJSON checks a masked JSON file against the file it came from:
// the same users with the same keys in the same order and the same values,
// but for the codes, which read CodeMask. A code that is null or a string
// of spaces holds nothing and stays as it is.
func checkMaskedJSON(t *testing.T, data, masked []byte, ctl importfile.Control) {
	t.Helper()
	original := mustReadJSONUsers(t, data)
	got := mustReadJSONUsers(t, masked)
	if len(got) != len(original) {
		t.Fatalf("%d users came back, want %d", len(got), len(original))
	}
	for i, user := range original {
		if len(got[i]) != len(user) {
			t.Fatalf("user %d has %d keys, want %d", i+1, len(got[i]), len(user))
		}
		for j, member := range user {
			want := member
			if givesCode(ctl, member.Key) && holdsJSONCode(t, member.Value) {
				want.Value = `"` + importfile.CodeMask + `"`
			}
			if got[i][j].Key != want.Key || got[i][j].Value != want.Value {
				// The value may be a code: it is left out.
				t.Fatalf("user %d, key %d (%q) differs from what is wanted", i+1, j+1, member.Key)
			}
		}
	}
}

// holdsJSONCode reports whether a code's value could spell a code: any
// value but null and a string of nothing but spaces.
func holdsJSONCode(t *testing.T, value string) bool {
	t.Helper()
	switch jsontext.Value(value).Kind() {
	case 'n':
		return false
	case '"':
		text, err := jsontext.AppendUnquote(nil, value)
		if err != nil {
			t.Fatalf("unquoting a value read back: %v", err)
		}
		return strings.TrimSpace(string(text)) != ""
	}
	return true
}
