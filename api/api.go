// Package api holds openapi.yaml, the description of the HTTP API that the
// apps are built against. It is embedded so that the binary serves the
// very document it was built with, and can never drift from a copy on
// disk.
package api

import _ "embed"

// openAPI is kept as a string, which is immutable, so no caller can
// change the document that the others receive.
//
//go:embed openapi.yaml
var openAPI string

// OpenAPI returns the OpenAPI 3.1 document as YAML. Each call returns a
// new copy that the caller may keep or change.
func OpenAPI() []byte {
	return []byte(openAPI)
}
