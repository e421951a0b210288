package importfile_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/syncer/importfile"
)

// lines joins lines into a file with LF line ends.
func lines(l ...string) []byte { return []byte(strings.Join(l, "\n") + "\n") }

// problem builds an expected problem.
func problem(row int, column, message string) importfile.Problem {
	return importfile.Problem{Row: row, Column: column, Message: message}
}

// parseOK parses a data file that must be valid.
func parseOK(t *testing.T, data []byte, format importfile.Format, ctl importfile.Control) []importfile.Record {
	t.Helper()
	records, err := importfile.Parse(data, format, ctl)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, listProblems(err))
	}
	return records
}

// problemsOf returns the *Problems err must be, from the named file.
func problemsOf(t *testing.T, err error, file string) *importfile.Problems {
	t.Helper()
	var problems *importfile.Problems
	if !errors.As(err, &problems) {
		t.Fatalf("got error %v (%T), want *importfile.Problems", err, err)
	}
	if problems.File != file {
		t.Fatalf("problems are about the %s file, want the %s file: %v", problems.File, file, err)
	}
	return problems
}

// parseProblems parses a data file that must be refused, and returns its
// problems. It checks what every refusal must be: no records, and a
// *Problems about the data file.
func parseProblems(t *testing.T, data []byte, format importfile.Format, ctl importfile.Control) []importfile.Problem {
	t.Helper()
	records, err := importfile.Parse(data, format, ctl)
	if records != nil {
		t.Errorf("got %d records with the problems, want none", len(records))
	}
	return problemsOf(t, err, "data").List
}

// assertProblems compares problems with what is wanted, in order.
func assertProblems(t *testing.T, got, want []importfile.Problem) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", formatProblems(got), formatProblems(want))
	}
}

func formatProblems(list []importfile.Problem) string {
	var b strings.Builder
	for _, p := range list {
		b.WriteString("  ")
		b.WriteString(strings.TrimSpace(strings.Join([]string{strconv.Itoa(p.Row), "|", p.Column, "|", p.Message}, " ")))
		b.WriteString("\n")
	}
	return b.String()
}

func listProblems(err error) string {
	var problems *importfile.Problems
	if errors.As(err, &problems) {
		return formatProblems(problems.List)
	}
	return ""
}
