// Package web holds the static files the server sends to browsers: the
// web console served at /, the API reference page at /docs and the
// assets it loads from /docs/assets/. They are embedded so that the
// binary needs nothing on disk and the pages work on a server without
// internet access.
package web

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

// console holds the web console: index.html and the scripts, styles and
// images it loads. It runs without a build step, so these files are what
// the browser receives.
//
//go:embed console
var console embed.FS

// Console returns the web console's files, rooted so that "index.html"
// is the page itself. An embedded file system is read-only, so every
// caller sees the same files.
func Console() fs.FS {
	sub, err := fs.Sub(console, "console")
	if err != nil {
		// fs.Sub fails only for an invalid path name, and "console" is a
		// valid one, so this cannot happen with the embedded tree.
		return console
	}
	return sub
}

// docsHTML is kept as a string, which is immutable, so no caller can
// change the page that the others receive.
//
//go:embed docs.html
var docsHTML string

// assets holds what the page loads. The renderer is vendored rather than
// loaded from a CDN so that the docs work offline and the page's content
// security policy can refuse every other origin.
//
//go:embed assets
var assets embed.FS

// DocsHTML returns the API reference page served at /docs. It renders
// /openapi.yaml in the browser with the script it loads from
// /docs/assets/redoc.standalone.js. Each call returns a new copy that the
// caller may keep or change.
func DocsHTML() []byte {
	return []byte(docsHTML)
}

// Asset returns the file served as /docs/assets/{name} and its content
// type. Only plain file names are looked up: a name with a slash, or one
// that names no asset, reports ok false, so a request can never reach a
// file outside the assets.
func Asset(name string) (data []byte, contentType string, ok bool) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return nil, "", false
	}
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		return nil, "", false
	}
	return b, ContentType(name), true
}

// ContentType names the media type of a file the server sends by its
// extension, from a fixed table rather than the operating system's MIME
// tables, which differ between machines.
func ContentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json":
		return "application/json"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}
