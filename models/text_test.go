package models

import "testing"

func TestLabel_RefusesControlCharactersAndChecksLength(t *testing.T) {
	cases := []struct {
		name     string
		in       string
		max      int
		required bool
		want     string
		wantErr  bool
	}{
		{"trimmed", "  Harbour Office ", 40, true, "Harbour Office", false},
		{"unicode kept", "Bäckerei Müller", 40, true, "Bäckerei Müller", false},
		{"newline refused", "Harbour\nOffice", 40, true, "", true},
		{"nul refused", "Harbour\x00", 40, true, "", true},
		{"escape refused", "\x1b[31mred", 40, true, "", true},
		{"delete refused", "a\x7fb", 40, true, "", true},
		{"tab refused", "a\tb", 40, true, "", true},
		{"empty refused when required", "   ", 40, true, "", true},
		{"empty allowed when optional", "", 40, false, "", false},
		{"exactly at the limit", "abcde", 5, true, "abcde", false},
		{"one over the limit", "abcdef", 5, true, "", true},
		{"invalid utf-8", "a\xffb", 40, true, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Label("name", tc.in, tc.max, tc.required)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Label(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err != nil {
				if ErrorCode(err) != CodeInvalidRequest {
					t.Fatalf("code %q, want invalid_request", ErrorCode(err))
				}
				return
			}
			if got != tc.want {
				t.Fatalf("Label(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
