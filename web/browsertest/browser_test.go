package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Widths the console must work at, and the height of the window the
// tests drive it in. Screenshots are full-page, so the height only
// decides what is above the fold.
const (
	phoneWidth     = 390
	tabletWidth    = 820
	desktopWidth   = 1280
	viewportHeight = 900
)

// waitLimit bounds every wait for the page. It is generous: the machines
// that run these tests are often busy with other work, and a wait that
// succeeds returns as soon as its condition holds.
const waitLimit = 30 * time.Second

// chromium finds the browser: chromium on the PATH, or Debian's
// /usr/bin/chromium. Without one the test skips, except in CI, where a
// missing browser would silently hide every console test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, so the web console cannot be tested; CI needs it (.ci/run installs it with apt-get install chromium)")
	}
	t.Skip("chromium is not installed; install it (apt-get install chromium) to run the web console's browser tests")
	return ""
}

// browser is one headless Chromium with one tab, on a fresh profile,
// showing the console served at base.
type browser struct {
	t     *testing.T
	tab   context.Context
	base  string
	shots string

	mu      sync.Mutex
	console []string
	// problems are what the page should never do: throw an exception
	// nothing caught, or break its content security policy.
	problems []string
}

// openBrowser starts Chromium for the test; it is closed when the test
// ends. What the page writes to its console (errors, refused requests)
// is logged if the test fails, and an uncaught exception or a breach of
// the page's content security policy fails it.
func openBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(desktopWidth, viewportHeight),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	b := &browser{t: t, tab: tab, base: base, shots: screenshotDir(t)}
	// The first action starts the browser, and the browser lives as long
	// as the context of that action, so it gets the tab's own context.
	if err := chromedp.Do(tab, chromedp.EmulateViewport(desktopWidth, viewportHeight)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Listen(tab, b.noteConsole); err != nil {
		t.Fatalf("follow the page's console: %v", err)
	}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Errorf("the page failed: %s", p)
		}
		if !t.Failed() {
			return
		}
		for _, line := range b.console {
			t.Logf("browser console: %s", line)
		}
	})
	return b
}

// noteConsole keeps what the page logs. It runs in the tab's event loop,
// so it only records.
func (b *browser) noteConsole(ev any) {
	var line string
	problem := false
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		line, problem = "exception: "+ev.ExceptionDetails.Text, true
		if ex := ev.ExceptionDetails.Exception; ex != nil && ex.Description != "" {
			line += " " + ex.Description
		}
	case *runtime.EventConsoleAPICalled:
		parts := []string{string(ev.Type) + ":"}
		for _, arg := range ev.Args {
			if arg.Value != nil {
				parts = append(parts, string(arg.Value))
			} else {
				parts = append(parts, arg.Description)
			}
		}
		line = strings.Join(parts, " ")
	case *log.EventEntryAdded:
		line = fmt.Sprintf("%s %s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	problem = problem || strings.Contains(line, "Content Security Policy")
	b.mu.Lock()
	defer b.mu.Unlock()
	b.console = append(b.console, line)
	if problem {
		b.problems = append(b.problems, line)
	}
}

// run runs actions in the tab, failing the test with what was being
// done if they fail or take longer than waitLimit.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, waitLimit)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// fail ends the test with a message, the page's text and a screenshot
// of what the page showed, so that a failure in CI can be understood.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, 5*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	if err == nil {
		b.t.Logf("the page said:\n%s", clip(text, 3000))
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		name := filepath.Join(b.shots, "FAILED-"+strings.ReplaceAll(b.t.Name(), "/", "-")+".png")
		if os.WriteFile(name, png, 0o644) == nil {
			b.t.Logf("screenshot of the failure: %s", name)
		}
	}
	b.t.Fatalf(format, args...)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// open loads the console at a fragment path such as "/locations".
func (b *browser) open(path string) {
	b.t.Helper()
	b.run("open "+path, chromedp.Navigate(b.base+"/#"+path))
}

// reload reloads the page, as a person pressing F5 would.
func (b *browser) reload() {
	b.t.Helper()
	b.run("reload the page", chromedp.Reload())
}

// waitFor waits until the JavaScript expression is truthy, failing the
// test with what was awaited if it does not become so within waitLimit.
func (b *browser) waitFor(what, expression string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, waitLimit+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expression,
		chromedp.WithPollingTimeout(waitLimit), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		if errors.Is(err, chromedp.ErrPollingTimeout) {
			b.fail("waited %v for %s", waitLimit, what)
		}
		b.fail("waiting for %s: %v", what, err)
	}
}

// evaluate returns the value of a JavaScript expression on the page.
func evaluate[T any](b *browser, expression string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, waitLimit)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		b.fail("evaluate %s: %v", clip(expression, 200), err)
	}
	return v
}

// click clicks an element with the mouse, as a person would, once it is
// visible.
func (b *browser) click(what string, sel chromedp.JSPath) {
	b.t.Helper()
	b.run("click "+what, chromedp.Click(sel))
}

// typeInto types text into a control, key by key.
func (b *browser) typeInto(what string, sel chromedp.JSPath, text string) {
	b.t.Helper()
	b.run("type into "+what, chromedp.SendKeys(sel, text))
}

// unnamedControls is an expression listing the visible controls that
// assistive technology would announce without a name, and whether the
// page's main part lacks its one heading.
const unnamedControls = `(() => {
  const name = ` + accessibleName + `;
  const visible = (el) => el.getClientRects().length > 0;
  const found = [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
    .filter((el) => visible(el) && !name(el) && !el.getAttribute('title'))
    .map((el) => el.outerHTML.slice(0, 120));
  const headings = document.querySelectorAll('main h1').length;
  if (headings !== 1) found.push(headings + ' h1 headings in main');
  return found;
})()`

// overflow is an expression giving how many pixels the page is wider than
// the window: a page that works at a width never scrolls sideways.
const overflow = `document.documentElement.scrollWidth - document.documentElement.clientWidth`

// screenshots saves the page as it is now at each width the console
// supports, as <page>-<width>.png, then puts the desktop width back. On
// the way it checks what a person at each width, or with a screen reader,
// would trip over: a control without a name, a page that scrolls
// sideways.
func (b *browser) screenshots(page string) {
	b.t.Helper()
	if unnamed := evaluate[[]string](b, unnamedControls); len(unnamed) > 0 {
		b.fail("the %s page has controls without an accessible name, or not one heading: %v", page, unnamed)
	}
	for _, width := range []int64{phoneWidth, tabletWidth, desktopWidth} {
		var opts []chromedp.EmulateViewportOption
		if width == phoneWidth {
			opts = append(opts, chromedp.EmulateMobile)
		}
		ctx, cancel := context.WithTimeout(b.tab, waitLimit)
		err := chromedp.Do(ctx,
			chromedp.EmulateViewport(width, viewportHeight, opts...),
			// Two animation frames: the page has laid itself out at
			// the new width and painted it.
			chromedp.Evaluate[chromedp.Void](`new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))`, chromedp.EvalAwaitPromise))
		var png []byte
		if err == nil {
			if wider := evaluate[float64](b, overflow); wider > 1 {
				b.fail("the %s page is %.0f px wider than a %d px window", page, wider, width)
			}
			png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		}
		cancel()
		if err != nil {
			b.fail("screenshot %s at %d px: %v", page, width, err)
		}

		name := filepath.Join(b.shots, fmt.Sprintf("%s-%d.png", page, width))
		if err := os.WriteFile(name, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.run("restore the desktop width", chromedp.EmulateViewport(desktopWidth, viewportHeight))
}

// screenshotDir is where screenshots go: $PANELSYNC_SCREENSHOTS, or
// screenshots/ at the repository root (ignored by git).
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PANELSYNC_SCREENSHOTS")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot folder: %v", err)
	}
	return dir
}

// repoRoot is the folder holding go.mod, above the test's working
// folder (the package's own).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// js quotes a Go string as a JavaScript string literal.
func js(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// accessibleName is a JavaScript function giving an element's name as
// assistive technology reads it, for the controls the console uses: its
// aria-label, the elements its aria-labelledby names, its <label>, or its
// text.
const accessibleName = `(el) => {
  const squash = (s) => (s || '').replace(/\s+/g, ' ').trim();
  if (el.getAttribute('aria-label')) return squash(el.getAttribute('aria-label'));
  const by = el.getAttribute('aria-labelledby');
  if (by) return squash(by.split(/\s+/).map((id) => document.getElementById(id)?.textContent).join(' '));
  if (el.labels && el.labels.length) return squash([...el.labels].map((l) => l.textContent).join(' '));
  return squash(el.textContent);
}`

// finder finds what a person would look for, by name, inside a part of
// the page: root is a JavaScript expression giving that part.
type finder struct{ root string }

// onPage finds on the part of the page a person can use: an open modal
// dialog makes everything behind it inert.
func onPage() finder {
	return finder{root: `(document.querySelector('dialog[open]') || document)`}
}

// in finds inside the first element css selects.
func in(css string) finder {
	return within(chromedp.JSPath(fmt.Sprintf(`document.querySelector(%s)`, js(css))))
}

// within finds inside the element sel finds.
func within(sel chromedp.JSPath) finder {
	return finder{root: fmt.Sprintf(`(%s || document.createDocumentFragment())`, sel)}
}

// css finds the first element under the finder's root that css selects.
func (f finder) css(css string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(`%s.querySelector(%s)`, f.root, js(css)))
}

// named is the first of the elements css selects under the finder's
// root whose accessible name is name.
func (f finder) named(css, name string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(`[...%s.querySelectorAll(%s)].find((el) => (%s)(el) === %s)`,
		f.root, js(css), accessibleName, js(name)))
}

// labelStarting is the first of the elements css selects under the
// finder's root whose accessible name starts with prefix, for labels that
// add a detail after their words, such as "All Locations (3)".
func (f finder) labelStarting(css, prefix string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(`[...%s.querySelectorAll(%s)].find((el) => (%s)(el).startsWith(%s))`,
		f.root, js(css), accessibleName, js(prefix)))
}

// control finds a form control by its label, such as "E-mail" or "All
// Locations".
func (f finder) control(name string) chromedp.JSPath {
	return f.named("input, select, textarea", name)
}

// button finds a button, or a link styled as one, by its name, such as
// "SYNC USERS".
func (f finder) button(name string) chromedp.JSPath {
	return f.named("button, a.button, [role=button]", name)
}

// link finds a link by its text, such as "Go to Events".
func (f finder) link(name string) chromedp.JSPath {
	return f.named("a[href]", name)
}

// heading is an expression true when the page's h1 reads text.
func heading(text string) string {
	return fmt.Sprintf(`document.querySelector('main h1')?.textContent.trim() === %s`, js(text))
}

// present is an expression true when sel finds an element.
func present(sel chromedp.JSPath) string {
	return fmt.Sprintf(`Boolean(%s)`, sel)
}
