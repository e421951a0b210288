package web_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/web"
)

// TestConsole_NamesEveryEventType keeps the Event Log's type menu in step
// with the server: a type the server writes but the console does not name
// could not be chosen as a filter.
func TestConsole_NamesEveryEventType(t *testing.T) {
	src, err := fs.ReadFile(web.Console(), "js/eventlog.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range models.EventTypes() {
		if !strings.Contains(string(src), "'"+typ+"':") {
			t.Errorf("js/eventlog.js gives no label to the event type %s", typ)
		}
	}
}

// TestConsole_EveryPageTheRouterNamesExists catches a route whose module
// was renamed or never written: the page would fail only when visited.
func TestConsole_EveryPageTheRouterNamesExists(t *testing.T) {
	files := web.Console()
	mainJS, err := fs.ReadFile(files, "js/main.js")
	if err != nil {
		t.Fatal(err)
	}
	modules := 0
	for _, part := range strings.Split(string(mainJS), "module: './")[1:] {
		name := part[:strings.Index(part, "'")]
		modules++
		if _, err := fs.Stat(files, "js/"+name); err != nil {
			t.Errorf("main.js routes to js/%s, which the console does not have", name)
		}
	}
	if modules < 10 {
		t.Fatalf("found only %d page modules in main.js; the route table's form changed", modules)
	}
}
