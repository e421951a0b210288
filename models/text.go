package models

import (
	"strings"
	"unicode/utf8"
)

// Label checks a name, group or label a person typed: trimmed, at most
// maxRunes characters, valid UTF-8 and free of control characters (U+0000
// to U+001F and U+007F), which would let one value forge lines in logs,
// CSV downloads and mails. required refuses an empty value. It returns the
// trimmed value, or an invalid_request error naming field.
func Label(field, value string, maxRunes int, required bool) (string, error) {
	v := strings.TrimSpace(value)
	if !utf8.ValidString(v) {
		return "", FieldError(field, "%s must be valid UTF-8", field)
	}
	if required && v == "" {
		return "", FieldError(field, "%s must not be empty", field)
	}
	if i := strings.IndexFunc(v, isControl); i >= 0 {
		return "", FieldError(field, "%s must not contain control characters (found U+%04X)", field, []rune(v[i:])[0])
	}
	if utf8.RuneCountInString(v) > maxRunes {
		return "", FieldError(field, "%s must be at most %d characters", field, maxRunes)
	}
	return v, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
