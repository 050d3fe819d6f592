package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

var docsScreenshots = flag.String("docs-screenshots", "", "also write the SQLite run's screenshots into this directory (the README shows docs/screenshots)")

// chromium finds the browser; a machine without one fails the tests (.ci/ensure-browser
// installs it), never skips them.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	t.Fatal("no Chromium on this machine: run .ci/ensure-browser (apt-get install chromium fonts-noto-cjk)")
	return ""
}

// newBrowser starts headless Chromium with a fresh profile; it is closed when the test ends.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// tab is one browser tab on one server, recording console errors and failed requests.
type tab struct {
	ctx    context.Context
	server *server
	mu     sync.Mutex
	// problems are console errors, exceptions and failed requests since the last check.
	problems []string
	// stageCommands are the stage commands sent since the last call of sent.
	stageCommands []string
}

func newTab(t testing.TB, browser context.Context, s *server) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	tb := &tab{ctx: ctx, server: s}
	messages := chromedp.Console(ctx)
	responses := chromedp.Events(ctx, network.ResponseReceived)
	failures := chromedp.Events(ctx, network.LoadingFailed)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			u := ev.Request.URL
			if ev.Request.Method != "POST" || !strings.HasSuffix(u, "/stage") || !strings.Contains(u, "/v1/deals/") {
				continue
			}
			deal := strings.TrimSuffix(u[strings.Index(u, "/v1/deals/")+len("/v1/deals/"):], "/stage")
			tb.mu.Lock()
			tb.stageCommands = append(tb.stageCommands, fmt.Sprintf("%s If-Match %v", deal, ev.Request.Headers["If-Match"]))
			tb.mu.Unlock()
		}
	}()
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				tb.problem("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1)
			}
		}
	}()
	go func() {
		for ev, err := range responses {
			if err != nil {
				return
			}
			if ev.Response != nil && ev.Response.Status >= 400 {
				tb.problem("request %s answered %d", ev.Response.URL, ev.Response.Status)
			}
		}
	}()
	go func() {
		for ev, err := range failures {
			if err != nil {
				return
			}
			if !ev.Canceled {
				tb.problem("request failed: %s", ev.ErrorText)
			}
		}
	}()
	return tb
}

// sent returns the stage commands the page sent since the last call ("DEAL If-Match VALUE"),
// once the page is done: the requests were sent before the page showed their outcome.
func (tb *tab) sent(t testing.TB) []string {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	sent := tb.stageCommands
	tb.stageCommands = nil
	return sent
}

func (tb *tab) problem(format string, args ...any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.problems = append(tb.problems, fmt.Sprintf(format, args...))
}

// clean fails the test for every console error and failed request seen since the last call.
func (tb *tab) clean(t testing.TB) {
	t.Helper()
	tb.mu.Lock()
	problems := tb.problems
	tb.problems = nil
	tb.mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
}

// forget drops what was seen: a step that fails requests on purpose (a refused token).
func (tb *tab) forget() {
	tb.mu.Lock()
	tb.problems = nil
	tb.mu.Unlock()
}

// do runs actions with a bound, so a condition that never holds fails instead of hanging.
func (tb *tab) do(t testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v\n%s", err, tb.state())
	}
}

// state tells what the page shows and what went wrong in it, for a failure's message.
func (tb *tab) state() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + '\n' + document.querySelector('#status').textContent + '\n' + document.querySelector('main').outerHTML.slice(0, 1500)`))
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return fmt.Sprintf("page (%v): %s\nproblems: %s", err, page, strings.Join(tb.problems, "\n"))
}

func eval[T any](t testing.TB, tb *tab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.80s: %v", expr, err)
	}
	return v
}

func text(t testing.TB, tb *tab, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 90*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// signIn opens the console and signs in with token.
func (tb *tab) signIn(t testing.TB, token string) {
	t.Helper()
	tb.clean(t) // what went wrong before signing out is reported
	tb.do(t, chromedp.Navigate(tb.server.url+"/"),
		chromedp.Evaluate[chromedp.Void](`sessionStorage.clear(); localStorage.setItem('crm.lang', 'en')`),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#token")))
	// A request the page of the previous user had under way when its token was cleared is
	// answered 401, as it should be: signing out is no failure of the page.
	tb.forget()
	tb.do(t, chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`main[data-page]`)))
	if href := eval[string](t, tb, `location.href`); strings.Contains(href, token) {
		t.Fatalf("the token is in the URL: %s", href)
	}
}

// open shows a page of the console (a hash route such as "board" or "contacts/ID") and waits
// until it has drawn its data.
func (tb *tab) open(t testing.TB, route string) {
	t.Helper()
	js := fmt.Sprintf(`(() => {
		const m = document.querySelector('main'); delete m.dataset.page;
		const want = '#/' + %q;
		if (location.hash === want) window.dispatchEvent(new HashChangeEvent('hashchange')); else location.hash = want;
	})()`, route)
	tb.do(t, chromedp.Evaluate[chromedp.Void](js), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`main[data-page=%q]`, route))))
}

// waitRender runs action, which makes the current page draw itself again, and waits for it.
func (tb *tab) waitRender(t testing.TB, action chromedp.Action[chromedp.Void]) {
	t.Helper()
	tb.do(t, chromedp.Evaluate[chromedp.Void](`delete document.querySelector('main').dataset.page`), action,
		chromedp.WaitVisible(chromedp.CSS(`main[data-page]`)))
}

// screenshot writes the page as a test artifact (testdata/screenshots, ignored by git) and,
// with -docs-screenshots, into the README's directory.
func (tb *tab) screenshot(t testing.TB, backend, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 90*time.Second)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(80))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	ext := ".jpg"
	if bytes.HasPrefix(img, []byte("\x89PNG")) {
		ext = ".png"
	}
	dirs := []string{filepath.Join("testdata", "screenshots", backend)}
	if *docsScreenshots != "" && backend == "sqlite" {
		dirs = append(dirs, *docsScreenshots)
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+ext), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// accessible runs axe-core (testdata/axe, from npm) on the page and fails for every serious or
// critical violation.
func (tb *tab) accessible(t testing.TB) {
	t.Helper()
	if !eval[bool](t, tb, `typeof axe !== 'undefined'`) {
		src, err := os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js"))
		if err != nil {
			t.Fatal(err)
		}
		_ = eval[chromedp.Void](t, tb, string(src))
	}
	var result struct {
		Passes     int      `json:"passes"`
		Violations []string `json:"violations"`
	}
	raw := eval[[]byte](t, tb, `axe.run(document, { resultTypes: ['violations'] }).then(r => ({ passes: r.passes.length, violations: r.violations
		.filter(v => v.impact === 'serious' || v.impact === 'critical')
		.map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')) }))`)
	if err := json.Unmarshal(raw, &result); err != nil {
		t.Fatalf("axe answer %s: %v", raw, err)
	}
	if result.Passes == 0 {
		t.Error("axe checked nothing")
	}
	for _, v := range result.Violations {
		t.Errorf("axe: %s", v)
	}
}

func contains(t testing.TB, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: %q lacks %q", what, got, w)
		}
	}
}
