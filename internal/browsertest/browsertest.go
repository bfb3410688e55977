// Package browsertest drives a headless Chromium (Debian package
// "chromium", /usr/bin/chromium) from tests with chromedp: start it, open
// pages, click, fill and wait by CSS selector, and take screenshots.
//
// Start fails the test (never skips) when Chromium is missing or cannot
// start. The browser runs with a fresh profile and without any background
// networking (the test machines have no internet). Every page's uncaught
// exceptions and Content-Security-Policy violations are collected;
// Browser.CheckPageErrors fails the test on them.
//
// Selectors are CSS selectors (document.querySelector). Waiting is done by
// polling from Go with Runtime.evaluate, not with chromedp.Poll, whose
// injected new Function() a strict CSP (no 'unsafe-eval') refuses.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultPath is where Debian's chromium package puts the browser;
// KMGATE_CHROMIUM overrides it.
const DefaultPath = "/usr/bin/chromium"

// Browser is one headless Chromium with one tab.
type Browser struct {
	t   testing.TB
	ctx context.Context
	// Timeout bounds each step (an action, a wait).
	Timeout time.Duration
	// ScreenshotDir is where Screenshot writes (default: a temp dir).
	ScreenshotDir string

	log *pageLog
}

// pageLog collects the page errors, shared by every With copy.
type pageLog struct {
	mu     sync.Mutex
	errors []string
}

// With returns the browser reporting failures to t (a subtest); it
// drives the same tab.
func (b *Browser) With(t testing.TB) *Browser {
	c := *b
	c.t = t
	return &c
}

// Start launches Chromium with a fresh profile; Cleanup stops it.
func Start(t testing.TB) *Browser {
	t.Helper()
	path := os.Getenv("KMGATE_CHROMIUM")
	if path == "" {
		path = DefaultPath
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("browsertest: Chromium is not installed at %s (%v): apt-get install -y chromium (scripts/test.sh does it)", path, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	for _, f := range []string{"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
		"disable-background-networking", "disable-component-update", "disable-sync", "disable-default-apps",
		"disable-extensions", "no-default-browser-check", "disable-dev-shm-usage", "mute-audio", "hide-scrollbars"} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{t: t, ctx: ctx, Timeout: 20 * time.Second, ScreenshotDir: t.TempDir(), log: &pageLog{}}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser and binds it to its context: give
	// it the tab's own context, not one with a deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browsertest: Chromium (%s) could not start: %v", path, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			text := m.String()
			if m.IsException() || strings.Contains(text, "Content Security Policy") {
				b.log.mu.Lock()
				b.log.errors = append(b.log.errors, text)
				b.log.mu.Unlock()
			}
		}
	}()
	return b
}

// Context is the tab's context, for chromedp actions this package lacks.
func (b *Browser) Context() context.Context { return b.ctx }

// Do runs chromedp actions within Timeout; what names them in a failure.
func (b *Browser) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v%s", what, err, b.pageState())
	}
}

// Open navigates to url and waits for the page to load.
func (b *Browser) Open(url string) {
	b.t.Helper()
	b.Do("open "+url, chromedp.Navigate(url))
}

// Eval evaluates a JavaScript expression in the page and decodes its
// value into out (nil: ignore it).
func (b *Browser) Eval(expr string, out any) {
	b.t.Helper()
	if err := b.eval(expr, out); err != nil {
		b.t.Fatalf("browser: evaluating %s: %v%s", expr, err, b.pageState())
	}
}

func (b *Browser) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr))
	if err != nil {
		if errors.Is(err, chromedp.ErrJSUndefined) || errors.Is(err, chromedp.ErrJSNull) {
			raw = json.RawMessage("null")
		} else {
			return err
		}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// q is a JavaScript string literal.
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// WaitFor polls a JavaScript expression until it is true; what names the
// condition in a failure.
func (b *Browser) WaitFor(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(b.Timeout)
	var last error
	for time.Now().Before(deadline) {
		var ok bool
		if last = b.eval("!!("+expr+")", &ok); last == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("browser: waited %s for %s (last error: %v)%s", b.Timeout, what, last, b.pageState())
}

// WaitVisible waits until an element matching sel is shown.
func (b *Browser) WaitVisible(sel string) {
	b.t.Helper()
	b.WaitFor(sel+" to be visible", fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e && e.checkVisibility(); })()`, q(sel)))
}

// WaitGone waits until no element matches sel.
func (b *Browser) WaitGone(sel string) {
	b.t.Helper()
	b.WaitFor(sel+" to be gone", fmt.Sprintf(`!document.querySelector(%s)`, q(sel)))
}

// WaitText waits until the text of the element matching sel contains
// want, and returns that text.
func (b *Browser) WaitText(sel, want string) string {
	b.t.Helper()
	b.WaitFor(fmt.Sprintf("%s to contain %q", sel, want), fmt.Sprintf(`(document.querySelector(%s)?.textContent || '').includes(%s)`, q(sel), q(want)))
	return b.Text(sel)
}

// WaitValue waits until the form control matching sel has the value want.
func (b *Browser) WaitValue(sel, want string) {
	b.t.Helper()
	b.WaitFor(fmt.Sprintf("%s to have the value %q", sel, want), fmt.Sprintf(`document.querySelector(%s)?.value === %s`, q(sel), q(want)))
}

// Text returns the text content of the element matching sel.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	var s string
	b.Eval(fmt.Sprintf(`document.querySelector(%s)?.textContent ?? ''`, q(sel)), &s)
	return s
}

// Value returns the value of the form control matching sel.
func (b *Browser) Value(sel string) string {
	b.t.Helper()
	var s string
	b.Eval(fmt.Sprintf(`document.querySelector(%s)?.value ?? ''`, q(sel)), &s)
	return s
}

// Click waits for sel to be visible and clicks it (a real mouse click).
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.WaitVisible(sel)
	b.Do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// Fill replaces the value of the input, textarea or select matching sel
// and fires input and change events, as typing or picking does.
func (b *Browser) Fill(sel, value string) {
	b.t.Helper()
	b.WaitVisible(sel)
	b.Eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.focus(); e.value = %s;
		e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return e.value; })()`, q(sel), q(value)), nil)
}

// SetChecked checks or unchecks the checkbox matching sel by clicking it
// when its state differs.
func (b *Browser) SetChecked(sel string, on bool) {
	b.t.Helper()
	var cur bool
	b.WaitVisible(sel)
	b.Eval(fmt.Sprintf(`document.querySelector(%s).checked`, q(sel)), &cur)
	if cur != on {
		b.Click(sel)
	}
}

// Screenshot writes the whole page as ScreenshotDir/name.png and returns
// the path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.ScreenshotDir, name+".png")
	if err := os.MkdirAll(b.ScreenshotDir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// PageErrors returns the uncaught exceptions and CSP violations so far.
func (b *Browser) PageErrors() []string {
	b.log.mu.Lock()
	defer b.log.mu.Unlock()
	return append([]string(nil), b.log.errors...)
}

// CheckPageErrors fails the test when a page threw or broke its CSP.
func (b *Browser) CheckPageErrors() {
	b.t.Helper()
	if errs := b.PageErrors(); len(errs) > 0 {
		b.t.Errorf("browser: the page reported %d error(s):\n\t%s", len(errs), strings.Join(errs, "\n\t"))
	}
}

// pageState describes the page for a failure message: URL, errors and
// the start of the visible text.
func (b *Browser) pageState() string {
	var st struct {
		URL  string `json:"url"`
		Text string `json:"text"`
	}
	if b.eval(`({url: location.href, text: (document.body?.innerText || '').slice(0, 1500)})`, &st) != nil {
		return ""
	}
	s := fmt.Sprintf("\n\tpage %s\n\ttext: %s", st.URL, strings.ReplaceAll(st.Text, "\n", " | "))
	if errs := b.PageErrors(); len(errs) > 0 {
		s += "\n\tpage errors: " + strings.Join(errs, "; ")
	}
	return s
}
