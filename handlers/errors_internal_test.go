package handlers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/panelsync/panelsync/api"
)

// errorCodes returns every error code models declares, read from its
// source so that a new code cannot be left out of this check.
func errorCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../models/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range spec.Names {
			if !strings.HasPrefix(name.Name, "Code") || i >= len(spec.Values) {
				continue
			}
			if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				v, _ := strconv.Unquote(lit.Value)
				codes = append(codes, v)
			}
		}
		return true
	})
	if len(codes) == 0 {
		t.Fatal("found no error codes in models/errors.go; the parse is broken")
	}
	return codes
}

// TestErrorCodes_OneStatusEach_AsTheContractDocumentsThem keeps the status
// table, the titles and the ErrorCode schema of openapi.yaml in step: a
// client reading the document learns every code the server can send, and
// the status it comes with.
func TestErrorCodes_OneStatusEach_AsTheContractDocumentsThem(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				ErrorCode struct {
					Description string   `yaml:"description"`
					Enum        []string `yaml:"enum"`
				} `yaml:"ErrorCode"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	schema := doc.Components.Schemas.ErrorCode
	documented := map[string]int{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (\\d{3}) \\|$").FindAllStringSubmatch(schema.Description, -1) {
		documented[m[1]], _ = strconv.Atoi(m[2])
	}
	for _, code := range errorCodes(t) {
		status, ok := problemStatus(code)
		if !ok {
			t.Errorf("%s has no status in problemStatus", code)
		}
		if _, ok := problemTitle(code); !ok {
			t.Errorf("%s has no title in problemTitle", code)
		}
		if got, ok := documented[code]; !ok || got != status {
			t.Errorf("openapi.yaml's ErrorCode table gives %s status %d, the server %d", code, got, status)
		}
		if !slices.Contains(schema.Enum, code) {
			t.Errorf("openapi.yaml's ErrorCode enum lacks %s", code)
		}
	}
	if len(schema.Enum) != len(documented) {
		t.Errorf("openapi.yaml's ErrorCode enum has %d codes, its table %d", len(schema.Enum), len(documented))
	}
}
